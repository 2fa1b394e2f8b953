//! `explain`: asks the kernel where a packet goes and names the object,
//! rule and route of ours behind the answer (or says it is not ours).

use super::args::{Args, Spec};
use super::common::Output;
use crate::explain::{self, Decider, Flow, Origins, origin};
use crate::kernel::Netlink;
use crate::model::desired;
use crate::model::load;
use crate::model::selector::{Selector, SelectorSet};
use crate::routing::DEFAULT_PROTOCOL;
use crate::rt_tables::RtTables;
use std::collections::BTreeMap;
use std::path::PathBuf;

const FLAGS: &[Spec] = &[
    Spec::value("file").short('f'),
    Spec::value("selector").short('l'),
    Spec::value("protocol"),
    Spec::value("metrics-addr"),
    Spec::value("status-addr"),
    Spec::value("rt-tables"),
    Spec::value("output").short('o'),
    Spec::switch("help").short('h'),
];

pub const EXPLAIN_HELP: &str = "\
Usage: routecfg explain DST [from SRC] [iif DEV] [oif DEV] [mark N] [options]

Asks the kernel where a packet goes (`ip route get fibmatch`), finds the
rule that sent it there (rules tried in priority order, as the kernel
does), and names the RouteConfiguration behind it: object, table, index in
spec.table.rules[] and in rules[i].routes[], and their targetRefs. Says so
when routecfg did not decide: the main or local table, a foreign table,
or no route at all. Without `iif` the packet is one this host sends.

  -f, --file PATH          map tables to objects from these files
                           (repeatable) instead of the running agent
  -l, --selector SEL       with -f: only objects matching this selector
      --protocol N         with -f: ownership mark, default 114
      --status-addr ADDR   the agent to ask (for its /origins): its
                           --status-addr, or its --metrics-addr when it
                           has none (default 127.0.0.1:8114;
                           --metrics-addr is a synonym)
      --rt-tables PATH     names for tables no object owns (default
                           /etc/iproute2/rt_tables; `none`: numbers)
  -o, --output FORMAT      text (default) or json

Exit status: 0 when the kernel has a route, 1 when it has none, 2 on
usage or system errors.
";

pub fn explain(argv: &[String]) -> i32 {
    let args = match Args::parse(argv, FLAGS) {
        Ok(a) if a.has("help") => return super::help(EXPLAIN_HELP),
        Ok(a) => a,
        Err(e) => return super::usage(&e, EXPLAIN_HELP),
    };
    let flow = match Flow::parse(&args.positional) {
        Ok(f) => f,
        Err(e) => return super::usage(&e, EXPLAIN_HELP),
    };
    let output = match args.value("output") {
        None | Some("text") => Output::Text,
        Some("json") => Output::Json,
        Some(other) => {
            return super::usage(
                &format!("--output {other:?}: expected text or json"),
                EXPLAIN_HELP,
            );
        }
    };
    let (origins, protocol) = if args.has("file") {
        match from_files(&args) {
            Ok(x) => x,
            Err(e) => return super::usage(&e, EXPLAIN_HELP),
        }
    } else {
        let addr = args
            .value("status-addr")
            .or_else(|| args.value("metrics-addr"))
            .unwrap_or(super::agent::DEFAULT_STATUS_ADDR);
        match from_agent(addr) {
            Ok(x) => x,
            Err(e) => {
                return super::fatal(&format!(
                    "asking the agent at {addr}: {e} (or give -f PATH)"
                ));
            }
        }
    };
    let mut netlink = match Netlink::open() {
        Ok(n) => n,
        Err(e) => return super::fatal(&format!("netlink: {e}")),
    };
    let names = table_names(args.value("rt-tables"));
    let name = |id: u32| names.get(&id).cloned();
    let e = match explain::ask(&mut netlink, &flow, &origins, protocol, &name) {
        Ok(e) => e,
        Err(e) => return super::fatal(&e.to_string()),
    };
    match output {
        Output::Json => match serde_json::to_string_pretty(&e) {
            Ok(s) => println!("{s}"),
            Err(err) => return super::fatal(&format!("cannot encode the answer: {err}")),
        },
        Output::Text => print!("{}", explain::render(&e)),
    }
    if e.decided_by == Decider::None { 1 } else { 0 }
}

/// Table names from an iproute2 file; a missing or unreadable file just
/// leaves the numbers.
fn table_names(path: Option<&str>) -> BTreeMap<u32, String> {
    let path = match path {
        Some("none") => return BTreeMap::new(),
        Some(p) => p,
        None => crate::rt_tables::DEFAULT_PATH,
    };
    match RtTables::new(PathBuf::from(path)).names() {
        Ok(names) => names.into_iter().collect(),
        Err(e) => {
            log::debug!("table names from {path}: {e}");
            BTreeMap::new()
        }
    }
}

/// The map from files, as `apply -f` would build the tables; unreadable
/// or invalid objects are reported and left out.
fn from_files(args: &Args) -> Result<(Origins, u8), String> {
    let protocol = args.number::<u8>("protocol")?.unwrap_or(DEFAULT_PROTOCOL);
    let paths: Vec<PathBuf> = args.values("file").iter().map(PathBuf::from).collect();
    let selectors = args
        .values("selector")
        .iter()
        .map(|s| Selector::parse(s).map_err(|e| format!("--selector {s:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut objects, errors) = load::load_paths(&paths);
    for e in &errors {
        eprintln!("warning: {e}");
    }
    if !selectors.is_empty() {
        let set = SelectorSet(selectors);
        objects.retain(|o| set.matches(&o.metadata.labels));
    }
    let d = desired::build(&objects, protocol);
    for f in &d.failures {
        eprintln!("warning: {f}");
    }
    Ok((origin::build(&objects, &d.tables), protocol))
}

/// The map the running agent publishes on `/origins`.
fn from_agent(addr: &str) -> Result<(Origins, u8), String> {
    let body = super::agent::fetch(addr, "/origins")?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("answered something unexpected: {e}"))?;
    let origins = v.get("origins").ok_or("its /origins has no \"origins\"")?;
    let origins: Origins = serde_json::from_value(origins.clone())
        .map_err(|e| format!("unreadable \"origins\": {e}"))?;
    let protocol = v
        .get("protocol")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(DEFAULT_PROTOCOL);
    Ok((origins, protocol))
}
