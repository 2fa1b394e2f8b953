//! `apply`, `diff` and `cleanup`: the run-once commands that read
//! RouteConfigurations from files, with no API server involved.

use super::args::{Args, Spec};
use super::common::{KERNEL_FLAGS, KernelOpts, Output, specs};
use crate::engine::{Engine, Report, Scope};
use crate::model::desired::{self, Desired};
use crate::model::load;
use crate::model::selector::{Selector, SelectorSet};
use crate::model::validate::{MAX_ROUTES, MAX_RULES, Policy};
use crate::plan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

const INPUT_FLAGS: &[Spec] = &[
    Spec::value("file").short('f'),
    Spec::value("selector").short('l'),
    Spec::switch("prune"),
    Spec::switch("allow-match-all"),
    Spec::value("max-rules"),
    Spec::value("max-routes"),
    Spec::value("max-file-size"),
];

/// `apply`'s own: the trial mode.
const CONFIRM_FLAGS: &[Spec] = &[Spec::value("confirm"), Spec::value("checkpoint-dir")];

/// Help lines for the input flags `apply` and `diff` share.
macro_rules! input_limits_help {
    () => {
        "      --allow-match-all  accept rules with no src, dst, iif, oif or fwmark
                         (they capture all traffic; warned on every run)
      --max-rules N      most rules in one object (default 10000)
      --max-routes N     most routes in one object (default 200000)
      --max-file-size B  largest input file read, in bytes (default 64 MiB)
"
    };
}

pub const APPLY_HELP: &str = concat!(
    "\
Usage: routecfg apply -f PATH [-f PATH...] [options]

Makes this host's policy routing match the RouteConfigurations in PATH
(files or directories of YAML/JSON; `-` reads stdin), then exits.

  -f, --file PATH        input file or directory (repeatable)
  -l, --selector SEL     only objects matching this label selector
                         (repeatable: an object matching any is taken)
      --prune            also remove every table carrying routecfg's mark
                         that the input does not name (refused, changing
                         nothing, when some input cannot be read)
      --protocol N       ownership mark (rtm_protocol), default 114
      --rt-tables PATH   iproute2 table-name file to keep in sync
                         (default /etc/iproute2/rt_tables; `none` disables)
  -o, --output FORMAT    text (default) or json
      --confirm SECONDS  trial: save a checkpoint of every rule and route
                         the apply could change, apply, then wait; unless
                         `routecfg confirm` runs within SECONDS (from any
                         shell), the checkpoint is restored exactly, even
                         if this process or its session is gone
      --checkpoint-dir DIR  where the checkpoint lives (default
                         $ROUTECFG_CHECKPOINT_DIR, else /run/routecfg)
",
    input_limits_help!(),
    "
Exit status: 0 when every object is applied (with --confirm: and the
trial confirmed), 1 when some object is invalid or has pending routes
(with --confirm: or the trial was rolled back), 2 on usage or system
errors (with --confirm: another checkpoint pending, rollback failed).
"
);

pub const DIFF_HELP: &str = concat!(
    "\
Usage: routecfg diff -f PATH [-f PATH...] [options]
       routecfg diff --checkpoint [--checkpoint-dir DIR] [-o json]

Prints, as `ip rule`/`ip route` commands, what `apply` would change,
without changing anything.

  -f, --file PATH        input file or directory (repeatable)
  -l, --selector SEL     only objects matching this label selector
      --prune            include removal of tables the input does not name
      --protocol N       ownership mark (rtm_protocol), default 114
  -o, --output FORMAT    text (default) or json
      --checkpoint       show what `routecfg rollback` would change
",
    input_limits_help!(),
    "
Warnings are the ones `apply` would print.
Exit status: 0 in sync, 1 changes pending, 2 on errors (with
--checkpoint: also when no checkpoint is pending).
"
);

pub const CLEANUP_HELP: &str = "\
Usage: routecfg cleanup [options]

Removes every rule, route, table and rt_tables line carrying routecfg's
ownership mark. Nothing without the mark is touched.

      --protocol N       ownership mark (rtm_protocol), default 114
      --rt-tables PATH   table-name file (default /etc/iproute2/rt_tables)
  -o, --output FORMAT    text (default) or json
";

/// A count flag: absent is `default`, else 1..=`max`.
fn count(args: &Args, flag: &str, default: u64, max: u64) -> Result<u64, String> {
    match args.number::<u64>(flag)? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(format!("--{flag} {n}: expected 1 to {max}")),
    }
}

/// The validation policy and the file size limit from the flags.
fn input_policy(args: &Args, protocol: u8) -> Result<(Policy, u64), String> {
    let policy = Policy {
        protocol,
        allow_match_all: args.has("allow-match-all"),
        max_rules: count(args, "max-rules", MAX_RULES as u64, 1 << 24)? as usize,
        max_routes: count(args, "max-routes", MAX_ROUTES as u64, 1 << 26)? as usize,
    };
    let max_file = count(args, "max-file-size", load::MAX_FILE_BYTES, 1 << 40)?;
    Ok((policy, max_file))
}

/// Loads, filters and validates the input; prints load and validation
/// problems as it goes.
fn desired_from_args(args: &Args, protocol: u8) -> Result<(Desired, Vec<String>), String> {
    let paths: Vec<PathBuf> = args.values("file").iter().map(PathBuf::from).collect();
    if paths.is_empty() {
        return Err("no input: give at least one -f PATH".into());
    }
    let selectors = args
        .values("selector")
        .iter()
        .map(|s| Selector::parse(s).map_err(|e| format!("--selector {s:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let (policy, max_file) = input_policy(args, protocol)?;
    let (mut objects, load_errors) = load::load_paths_validated(&paths, &policy, max_file);
    if !selectors.is_empty() {
        let set = SelectorSet(selectors);
        objects.retain(|o| set.matches(&o.object.metadata.labels));
    }
    let errors: Vec<String> = load_errors.iter().map(|e| e.to_string()).collect();
    Ok((desired::build_loaded(objects, &policy), errors))
}

#[derive(Serialize)]
struct ObjectLine {
    object: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
    changes: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pending: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

#[derive(Serialize)]
struct ApplyOutput {
    objects: Vec<ObjectLine>,
    removed: Vec<ObjectLine>,
    warnings: Vec<String>,
    changes: usize,
    ok: bool,
}

fn summarize(desired: &Desired, load_errors: Vec<String>, report: &Report) -> ApplyOutput {
    let mut objects = Vec::new();
    for t in &desired.tables {
        let r = report.get(t.id);
        let (changes, pending, errors) = match r {
            Some(r) => (r.changes, r.pending.clone(), r.errors.clone()),
            None => (0, vec![], vec![]),
        };
        let status = if !errors.is_empty() {
            "failed"
        } else if !pending.is_empty() {
            "pending"
        } else {
            "applied"
        };
        objects.push(ObjectLine {
            object: t.owner.clone(),
            status,
            table: Some(t.name.clone()),
            id: Some(t.id),
            changes,
            pending,
            errors,
        });
    }
    for f in &desired.failures {
        objects.push(ObjectLine {
            object: f.object.clone(),
            status: "invalid",
            table: None,
            id: None,
            changes: 0,
            pending: vec![],
            errors: vec![f.to_string()],
        });
    }
    for e in load_errors {
        objects.push(ObjectLine {
            object: String::new(),
            status: "unreadable",
            table: None,
            id: None,
            changes: 0,
            pending: vec![],
            errors: vec![e],
        });
    }
    let removed = report
        .tables
        .iter()
        .filter(|t| t.name.is_empty())
        .map(|t| ObjectLine {
            object: String::new(),
            status: if t.errors.is_empty() {
                "removed"
            } else {
                "failed"
            },
            table: None,
            id: Some(t.id),
            changes: t.changes,
            pending: t.pending.clone(),
            errors: t.errors.clone(),
        })
        .collect::<Vec<_>>();
    let ok = objects.iter().all(|o| o.status == "applied")
        && removed.iter().all(|o| o.errors.is_empty());
    ApplyOutput {
        objects,
        removed,
        warnings: desired.warnings.clone(),
        changes: report.changes,
        ok,
    }
}

fn print_apply(out: &ApplyOutput, output: Output) {
    if output == Output::Json {
        match serde_json::to_string_pretty(out) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("routecfg: cannot encode report: {e}"),
        }
        return;
    }
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    for o in &out.objects {
        match (&o.table, o.id) {
            (Some(name), Some(id)) => println!(
                "{:<8} {}  table {} ({})  {} change(s)",
                o.status, o.object, name, id, o.changes
            ),
            _ => println!("{:<8} {}", o.status, o.object),
        }
        for p in &o.pending {
            println!("         pending: {p}");
        }
        for e in &o.errors {
            println!("         error: {e}");
        }
    }
    for o in &out.removed {
        println!(
            "{:<8} table {}  {} change(s)",
            o.status,
            o.id.unwrap_or(0),
            o.changes
        );
        for e in &o.errors {
            println!("         error: {e}");
        }
    }
    println!("{} kernel change(s)", out.changes);
}

/// Keeps rt_tables in step with what was applied; a failure here is
/// reported but never undoes routing.
fn sync_rt_tables(opts: &KernelOpts, desired: &Desired, report: &Report) -> Result<(), String> {
    let Some(rt) = &opts.rt_tables else {
        return Ok(());
    };
    let report = rt
        .sync_tables(&desired.tables, &report.removed())
        .map_err(|e| format!("rt_tables {}: {e}", rt.path().display()))?;
    for w in &report.warnings {
        eprintln!("warning: rt_tables {}: {w}", rt.path().display());
    }
    Ok(())
}

/// Everything `apply` and `diff` share before touching the kernel: flags,
/// the validated input, the scope and an engine.
struct Prepared {
    opts: KernelOpts,
    desired: Desired,
    load_errors: Vec<String>,
    scope: Scope,
    engine: Engine,
    args: Args,
}

/// Parses flags and input; on failure returns the exit status to use.
fn prepare(argv: &[String], own: &[Spec], help: &str) -> Result<Prepared, i32> {
    let flags = specs(&specs(INPUT_FLAGS, own), KERNEL_FLAGS);
    let args = match Args::parse(argv, &flags) {
        Ok(a) if a.has("help") => return Err(super::help(help)),
        Ok(a) => a,
        Err(e) => return Err(super::usage(&e, help)),
    };
    let opts = KernelOpts::from_args(&args).map_err(|e| super::usage(&e, help))?;
    let (desired, load_errors) =
        desired_from_args(&args, opts.protocol).map_err(|e| super::usage(&e, help))?;
    if args.has("prune") && !load_errors.is_empty() {
        // A document that cannot be read names no table, so prune would
        // take its tables for orphans and tear down routes that work.
        for e in &load_errors {
            eprintln!("error: {e}");
        }
        return Err(super::fatal(
            "--prune refused: some input could not be read (see above); nothing was changed",
        ));
    }
    let scope = Scope {
        discover_owned: args.has("prune"),
        frozen: desired.frozen.iter().copied().collect(),
        ..Scope::default()
    };
    let engine = Engine::new(opts.protocol).map_err(|e| super::fatal(&format!("netlink: {e}")))?;
    Ok(Prepared {
        opts,
        desired,
        load_errors,
        scope,
        engine,
        args,
    })
}

pub fn apply(argv: &[String]) -> i32 {
    let Prepared {
        opts,
        mut desired,
        load_errors,
        scope,
        mut engine,
        args,
    } = match prepare(argv, CONFIRM_FLAGS, APPLY_HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let trial = match args.number::<u64>("confirm") {
        Ok(None) => None,
        Ok(Some(0)) => return super::usage("--confirm 0: give at least one second", APPLY_HELP),
        // A day is far beyond any trial, and keeps the deadline arithmetic
        // far from overflow.
        Ok(Some(secs)) if secs > 86_400 => {
            let e = format!("--confirm {secs}: expected 1 to 86400 seconds");
            return super::usage(&e, APPLY_HELP);
        }
        Ok(Some(secs)) => {
            let ids: Vec<u32> = desired.tables.iter().map(|t| t.id).collect();
            let dir = super::checkpoint::dir(&args);
            match super::checkpoint::begin(&mut engine, &dir, &ids, opts.protocol, secs) {
                Ok(t) => Some(t),
                Err(code) => return code,
            }
        }
        Err(e) => return super::usage(&e, APPLY_HELP),
    };
    // `Engine::apply` in two steps, so that the desired routes can be
    // freed in between: the plan holds copies of those to write, and the
    // report and rt_tables only need the tables' names, ids and owners.
    // With 100,000 routes that is the difference between the desired
    // state and the plan being in memory at once or one after the other.
    let plan = match engine.plan(&desired.tables, &scope) {
        Ok(p) => p,
        Err(e) => return super::fatal(&format!("reading kernel state: {e}")),
    };
    for table in &mut desired.tables {
        table.routes = Vec::new();
    }
    let report = engine.execute(&desired.tables, plan);
    let rt_result = sync_rt_tables(&opts, &desired, &report);
    let out = summarize(&desired, load_errors, &report);
    print_apply(&out, opts.output);
    let code = match rt_result {
        Err(e) => {
            eprintln!("routecfg: {e}");
            1
        }
        Ok(()) if out.ok => 0,
        Ok(()) => 1,
    };
    match trial {
        Some(t) => super::checkpoint::wait(&t, code),
        None => code,
    }
}

pub fn diff(argv: &[String]) -> i32 {
    if argv.iter().any(|a| a == "--checkpoint") {
        return super::checkpoint::diff(argv);
    }
    let Prepared {
        opts,
        desired,
        load_errors,
        scope,
        mut engine,
        ..
    } = match prepare(argv, &[], DIFF_HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    for w in &desired.warnings {
        eprintln!("warning: {w}");
    }
    for e in &load_errors {
        eprintln!("error: {e}");
    }
    for f in &desired.failures {
        eprintln!("error: {f}");
    }
    let plan = match engine.plan(&desired.tables, &scope) {
        Ok(p) => p,
        Err(e) => return super::fatal(&format!("reading kernel state: {e}")),
    };
    let names: BTreeMap<u32, String> = desired
        .tables
        .iter()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let lookup = |id: u32| names.get(&id).cloned();
    let lines: Vec<String> = plan
        .ops
        .iter()
        .map(|op| plan::render(op, &lookup))
        .collect();
    let pending: Vec<String> = plan
        .pending
        .iter()
        .map(|p| format!("table {}: {}", p.table, p.reason))
        .collect();
    if opts.output == Output::Json {
        let v = serde_json::json!({
            "changes": lines,
            "pending": pending,
            "warnings": desired.warnings,
            "in_sync": lines.is_empty(),
        });
        println!("{v}");
    } else {
        for l in &lines {
            println!("{l}");
        }
        for p in &pending {
            println!("# pending: {p}");
        }
    }
    if !load_errors.is_empty() || !desired.failures.is_empty() {
        2
    } else if lines.is_empty() && pending.is_empty() {
        0
    } else {
        1
    }
}

pub fn cleanup(argv: &[String]) -> i32 {
    let args = match Args::parse(argv, KERNEL_FLAGS) {
        Ok(a) if a.has("help") => return super::help(CLEANUP_HELP),
        Ok(a) => a,
        Err(e) => return super::usage(&e, CLEANUP_HELP),
    };
    let opts = match KernelOpts::from_args(&args) {
        Ok(o) => o,
        Err(e) => return super::usage(&e, CLEANUP_HELP),
    };
    let mut engine = match Engine::new(opts.protocol) {
        Ok(e) => e,
        Err(e) => return super::fatal(&format!("netlink: {e}")),
    };
    let scope = Scope {
        discover_owned: true,
        ..Scope::default()
    };
    let report = match engine.apply(&[], &scope) {
        Ok(r) => r,
        Err(e) => return super::fatal(&format!("reading kernel state: {e}")),
    };
    let empty = Desired::default();
    let rt_result = sync_rt_tables(&opts, &empty, &report);
    let out = summarize(&empty, vec![], &report);
    print_apply(&out, opts.output);
    if let Err(e) = rt_result {
        eprintln!("routecfg: {e}");
        return 1;
    }
    if out.ok { 0 } else { 1 }
}
