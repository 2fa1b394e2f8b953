//! `routecfg demo`: the documentation's Rome gateway in a throw-away
//! network namespace, applied by the real engine, shown as the kernel
//! holds it. The first thing a newcomer runs, so it needs nothing but the
//! binary and prints little.

use super::args::{Args, Spec};
use super::common::Output;
use crate::demo::lookups;
use crate::demo::{netns, seed, show, topology};
use crate::engine::{Engine, Report, Scope};
use crate::explain::{self, Decider, Explanation, origin};
use crate::kernel::{KernelError, RouteFilter};
use crate::model::desired::{self, Desired};
use crate::routing::{DEFAULT_PROTOCOL, Rule};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

const FLAGS: &[Spec] = &[
    Spec::value("output").short('o'),
    Spec::switch("help").short('h'),
];

pub const DEMO_HELP: &str = "\
Usage: routecfg demo [-o text|json]

Rebuilds the Rome gateway of the Liqo RouteConfiguration documentation in
a private network namespace (links liqo-tunnel, liqo.zgdhd2x5fc,
liqo.zqzt5nqktn), applies the documentation's seven RouteConfigurations
(built into the binary) with the same engine as `apply`, and shows the
kernel's rules and routes and where sample traffic goes.

Nothing on this host changes: the namespace vanishes when the command
exits. Needs root, or unprivileged user namespaces.

  -o, --output FORMAT    text (default) or json

Exit status: 0 when everything applied and every lookup was answered,
1 otherwise, 2 when no private namespace could be made.
";

/// Table ids the kernel names itself.
const KERNEL_TABLES: &[(u32, &str)] = &[(253, "default"), (254, "main"), (255, "local")];

#[derive(Serialize)]
struct LinkOut {
    name: &'static str,
    address: Option<&'static str>,
    role: &'static str,
}

#[derive(Serialize)]
struct TableOut {
    name: String,
    id: u32,
    object: String,
    changes: usize,
    pending: Vec<String>,
    errors: Vec<String>,
    rules: Vec<String>,
    routes: Vec<String>,
}

#[derive(Serialize)]
struct LookupOut {
    label: &'static str,
    query: String,
    answer: String,
    table: Option<String>,
    via: Option<String>,
    dev: Option<String>,
    error: Option<String>,
    /// Who decided, as `routecfg explain` says it.
    decided: String,
    object: Option<String>,
    rule: Option<String>,
    route: Option<String>,
}

#[derive(Serialize)]
struct DemoOut {
    namespace: String,
    links: Vec<LinkOut>,
    objects: usize,
    changes: usize,
    protocol: u8,
    tables: Vec<TableOut>,
    lookups: Vec<LookupOut>,
    warnings: Vec<String>,
    ok: bool,
}

pub fn demo(argv: &[String]) -> i32 {
    let args = match Args::parse(argv, FLAGS) {
        Ok(a) if a.has("help") => return super::help(DEMO_HELP),
        Ok(a) if !a.positional.is_empty() => {
            return super::usage(
                &format!("unexpected argument {:?}", a.positional[0]),
                DEMO_HELP,
            );
        }
        Ok(a) => a,
        Err(e) => return super::usage(&e, DEMO_HELP),
    };
    let output = match args.value("output") {
        None | Some("text") => Output::Text,
        Some("json") => Output::Json,
        Some(other) => {
            return super::usage(
                &format!("--output {other:?}: expected text or json"),
                DEMO_HELP,
            );
        }
    };
    // Parse before leaving the host's namespace: a broken build fails
    // without side effects of any kind.
    let objects = match seed::objects() {
        Ok(o) => o,
        Err(e) => return super::fatal(&format!("embedded example: {e}")),
    };
    let desired = desired::build(&objects, DEFAULT_PROTOCOL);

    let entered = match netns::enter_private() {
        Ok(e) => e,
        Err(e) => return needs(&format!("cannot make a private network namespace: {e}")),
    };
    log::debug!("demo: entered {entered}");
    let mut engine = match Engine::new(DEFAULT_PROTOCOL) {
        Ok(e) => e,
        Err(e) => return kernel_failure("netlink", &e),
    };
    if let Err(e) = topology::build(engine.netlink()) {
        let message = format!("building the gateway's links: {e}");
        return if e.is_permission() {
            needs(&message)
        } else {
            super::fatal(&message)
        };
    }
    let report = match engine.apply(&desired.tables, &Scope::default()) {
        Ok(r) => r,
        Err(e) => return kernel_failure("applying", &e),
    };
    let tables = match read_back(&mut engine, &desired, &report) {
        Ok(t) => t,
        Err(e) => return kernel_failure("reading the result back", &e),
    };
    let names = table_names(&desired);
    let origins = origin::build(&objects, &desired.tables);
    let name = |id: u32| names.get(&id).cloned();
    let mut answers = Vec::new();
    for query in lookups::queries() {
        match explain::ask(
            engine.netlink(),
            &query.flow(),
            &origins,
            DEFAULT_PROTOCOL,
            &name,
        ) {
            Ok(e) => answers.push((query.label, e)),
            Err(e) => return kernel_failure("asking where traffic goes", &e),
        }
    }
    let out = DemoOut {
        namespace: entered.to_string(),
        links: topology::LINKS
            .iter()
            .map(|l| LinkOut {
                name: l.name,
                address: (l.name == topology::TUNNEL).then_some(topology::TUNNEL_ADDRESS),
                role: l.role,
            })
            .collect(),
        objects: objects.len(),
        changes: report.changes,
        protocol: DEFAULT_PROTOCOL,
        ok: desired.failures.is_empty()
            && tables
                .iter()
                .all(|t| t.pending.is_empty() && t.errors.is_empty())
            && answers.iter().all(|(_, e)| e.decided_by != Decider::None),
        tables,
        lookups: answers
            .iter()
            .map(|(label, e)| lookup_out(label, e))
            .collect(),
        warnings: desired
            .warnings
            .iter()
            .cloned()
            .chain(desired.failures.iter().map(|f| f.to_string()))
            .collect(),
    };
    let report = match output {
        Output::Json => match serde_json::to_string_pretty(&out) {
            Ok(s) => s + "\n",
            Err(e) => return super::fatal(&format!("cannot encode the result: {e}")),
        },
        Output::Text => text_report(&out),
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`| head`) is not our failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return super::fatal(&format!("writing the report: {e}"));
        }
    }
    if out.ok { 0 } else { 1 }
}

/// Reports what the user must change for the demo to run; exit status 2.
fn needs(message: &str) -> i32 {
    eprintln!("routecfg demo: {message}");
    eprintln!("{}", netns::NEEDS);
    2
}

fn kernel_failure(step: &str, e: &KernelError) -> i32 {
    let message = format!("{step}: {e}");
    if matches!(e.errno_name(), "EPERM" | "EACCES") {
        needs(&message)
    } else {
        super::fatal(&message)
    }
}

/// Each desired table's rules and routes as the kernel now holds them.
fn read_back(
    engine: &mut Engine,
    desired: &Desired,
    report: &Report,
) -> Result<Vec<TableOut>, KernelError> {
    let mut rules: Vec<Rule> = engine.netlink().dump_rules()?;
    rules.sort_by_key(|r| r.priority);
    let mut out = Vec::new();
    for table in &desired.tables {
        let routes = engine.netlink().dump_routes(RouteFilter {
            table: Some(table.id),
            protocol: None,
        })?;
        let (changes, pending, errors) = match report.get(table.id) {
            Some(r) => (r.changes, r.pending.clone(), r.errors.clone()),
            None => (0, vec![], vec![]),
        };
        out.push(TableOut {
            name: table.name.clone(),
            id: table.id,
            object: table.owner.clone(),
            changes,
            pending,
            errors,
            rules: rules
                .iter()
                .filter(|r| r.table == table.id)
                .map(|r| show::rule_line(r, &table.name))
                .collect(),
            routes: routes.iter().map(show::route_line).collect(),
        });
    }
    Ok(out)
}

fn table_names(desired: &Desired) -> BTreeMap<u32, String> {
    desired
        .tables
        .iter()
        .map(|t| (t.id, t.name.clone()))
        .chain(KERNEL_TABLES.iter().map(|&(id, n)| (id, n.to_string())))
        .collect()
}

fn lookup_out(label: &'static str, e: &Explanation) -> LookupOut {
    LookupOut {
        label,
        query: e.query.clone(),
        answer: e.answer.clone(),
        table: e.table.clone(),
        via: e.via.map(|g| g.to_string()),
        dev: e.dev.clone(),
        error: (e.decided_by == Decider::None).then(|| e.answer.clone()),
        decided: e.summary.clone(),
        object: e.object.clone(),
        rule: e.rule.clone(),
        route: e.route.clone(),
    }
}

/// The text report; built whole so a closed pipe (`| head`) costs one
/// failed write instead of a panic in `println!`.
fn text_report(out: &DemoOut) -> String {
    // Writing to a String cannot fail: the `let _ =` below drop nothing.
    let mut s = String::new();
    let _ = writeln!(
        s,
        "routecfg demo: the Rome gateway of the Liqo RouteConfiguration docs"
    );
    let _ = writeln!(
        s,
        "in a {}: the host is untouched, and all of it vanishes on exit.",
        out.namespace
    );
    s.push('\n');
    for (i, l) in out.links.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:<7} {:<16} {:<16} {}",
            if i == 0 { "links:" } else { "" },
            l.name,
            l.address.unwrap_or(""),
            l.role
        );
    }
    for w in &out.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "applied {} RouteConfigurations (built in, as in the docs): {} kernel changes.",
        out.objects, out.changes
    );
    let _ = writeln!(
        s,
        "The kernel now holds (as `ip rule` / `ip route show table T` print it; all proto {}):",
        out.protocol
    );
    for t in &out.tables {
        s.push('\n');
        // Most objects are named after their table: then the namespace
        // says all, and the line stays short.
        let object = match t.object.split_once('/') {
            Some((ns, name)) if name == t.name => format!("namespace {ns}"),
            _ => format!("object {}", t.object),
        };
        let _ = writeln!(
            s,
            "table {} ({}): {} changes, {object}",
            t.name, t.id, t.changes
        );
        for line in t.rules.iter().chain(&t.routes) {
            let _ = writeln!(s, "  {line}");
        }
        for p in &t.pending {
            let _ = writeln!(s, "  pending: {p}");
        }
        for e in &t.errors {
            let _ = writeln!(s, "  error: {e}");
        }
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "What traffic takes (the kernel's answers to `ip route get`, explained as `routecfg explain` does):"
    );
    for l in &out.lookups {
        let _ = writeln!(s, "  {}", l.label);
        let _ = writeln!(s, "    {}", l.answer);
        let _ = writeln!(s, "      decided by {}", l.decided);
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "Next: `routecfg apply -f DIR` applies your own objects to this host; `routecfg run` follows a cluster."
    );
    s
}
