//! `apply --confirm`, `confirm`, `rollback`, `diff --checkpoint` and the
//! hidden `checkpoint-timer` the trial leaves running.

use super::args::{Args, Spec};
use crate::checkpoint::store::{DEFAULT_DIR, DIR_ENV, Outcome, Store, now_unix_ms};
use crate::checkpoint::{self, record::Checkpoint};
use crate::engine::Engine;
use crate::kernel::Netlink;
use crate::plan;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FLAGS: &[Spec] = &[
    Spec::value("checkpoint-dir"),
    Spec::switch("checkpoint"),
    Spec::value("output").short('o'),
    Spec::switch("help").short('h'),
];

pub const CONFIRM_HELP: &str = "\
Usage: routecfg confirm [--checkpoint-dir DIR]

Keeps what the pending `routecfg apply --confirm SECONDS` applied: its
checkpoint is dropped and nothing is rolled back.

Exit status: 0 confirmed, 2 when nothing is pending (it says how the last
checkpoint ended) or on errors.
";

pub const ROLLBACK_HELP: &str = "\
Usage: routecfg rollback [--checkpoint-dir DIR]

Restores the pending checkpoint of `routecfg apply --confirm` now: saved
routes are written back with NLM_F_REPLACE, saved rules are added before
stale rules are removed, all in one batch; only the tables the checkpoint
saved are touched.

Exit status: 0 restored, 2 when nothing is pending or a change failed.
";

/// The checkpoint directory: `--checkpoint-dir`, else the environment,
/// else /run/routecfg.
pub fn dir(args: &Args) -> PathBuf {
    if let Some(d) = args.value("checkpoint-dir") {
        return PathBuf::from(d);
    }
    match std::env::var_os(DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_DIR),
    }
}

/// A trial that was started: its checkpoint is pending.
pub struct Trial {
    store: Store,
    cp: Checkpoint,
    secs: u64,
}

/// Saves the checkpoint and starts the timer, before anything changes.
/// On failure returns the exit status (nothing was changed).
pub fn begin(
    engine: &mut Engine,
    dir: &Path,
    tables: &[u32],
    protocol: u8,
    secs: u64,
) -> Result<Trial, i32> {
    let store = Store::new(dir.to_path_buf());
    match store.pending() {
        Ok(Some(p)) => {
            return Err(super::fatal(&format!(
                "checkpoint {} is pending (rolls back in {} s): `routecfg confirm` or `routecfg rollback` it first",
                p.id,
                p.deadline_unix_ms
                    .saturating_sub(crate::checkpoint::store::now_unix_ms())
                    / 1000
            )));
        }
        Ok(None) => {}
        Err(e) => return Err(super::fatal(&e)),
    }
    let cp = checkpoint::capture(engine, tables, protocol, Duration::from_secs(secs))
        .map_err(|e| super::fatal(&format!("reading kernel state for the checkpoint: {e}")))?;
    store.create(&cp).map_err(|e| super::fatal(&e))?;
    if let Err(e) = checkpoint::spawn_timer(dir, &cp.id) {
        // Without a timer there is no trial: drop the checkpoint again.
        if let Ok(Some(claimed)) = store.claim(Some(&cp.id)) {
            let _ = checkpoint::confirm(&store, claimed);
        }
        return Err(super::fatal(&format!("{e}; nothing was applied")));
    }
    log::info!(
        "checkpoint {}: {} table(s), {} rule(s), {} route(s) saved in {}",
        cp.id,
        cp.tables.len(),
        cp.rules.len(),
        cp.routes.len(),
        store.pending_path().display()
    );
    Ok(Trial { store, cp, secs })
}

/// Waits for the trial's end: confirmed, or rolled back. `applied` is the
/// apply's own exit status.
pub fn wait(t: &Trial, applied: i32) -> i32 {
    eprintln!(
        "routecfg: on trial: `routecfg confirm` keeps this; `routecfg rollback`, or {} s without \
         confirmation, restores the checkpoint (this wait may be interrupted: the timer runs on)",
        t.secs
    );
    loop {
        match t.store.last() {
            Ok(Some(o)) if o.id == t.cp.id => return report(&o, applied),
            Ok(_) => {}
            Err(e) => return super::fatal(&e),
        }
        // The timer should have decided by now; if it is gone (killed),
        // this process rolls back itself rather than wait forever.
        if now_unix_ms() > t.cp.deadline_unix_ms + TIMER_GRACE_MS {
            match t.store.claim(Some(&t.cp.id)) {
                Ok(Some(claimed)) => {
                    let o = checkpoint::roll_back(&t.store, claimed, "timeout, timer gone");
                    return report(&o, applied);
                }
                Ok(None) => {}
                Err(e) => return super::fatal(&e),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long past the deadline the waiting `apply` trusts the timer.
const TIMER_GRACE_MS: u64 = 5_000;

fn report(o: &Outcome, applied: i32) -> i32 {
    eprintln!("routecfg: checkpoint {}: {} ({})", o.id, o.result, o.by);
    for e in &o.errors {
        eprintln!("  error: {e}");
    }
    match o.result.as_str() {
        "confirmed" => applied,
        "rolled back" => 1,
        _ => 2,
    }
}

fn parse(argv: &[String], help: &str) -> Result<Args, i32> {
    match Args::parse(argv, FLAGS) {
        Ok(a) if a.has("help") => Err(super::help(help)),
        Ok(a) if !a.positional.is_empty() => Err(super::usage(
            &format!("unexpected argument {:?}", a.positional[0]),
            help,
        )),
        Ok(a) => Ok(a),
        Err(e) => Err(super::usage(&e, help)),
    }
}

/// Says nothing is pending, and how the last checkpoint ended; exit 2.
fn nothing_pending(store: &Store) -> i32 {
    let last = match store.last() {
        Ok(Some(o)) => format!("; the last one, {}, was {} ({})", o.id, o.result, o.by),
        _ => String::new(),
    };
    super::fatal(&format!(
        "no checkpoint pending in {}{last}",
        store.dir().display()
    ))
}

pub fn confirm(argv: &[String]) -> i32 {
    let args = match parse(argv, CONFIRM_HELP) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let store = Store::new(dir(&args));
    match store.claim(None) {
        Ok(Some(claimed)) => match checkpoint::confirm(&store, claimed) {
            Ok(o) => {
                println!("confirmed checkpoint {}", o.id);
                0
            }
            Err(e) => super::fatal(&e),
        },
        Ok(None) => nothing_pending(&store),
        Err(e) => super::fatal(&e),
    }
}

pub fn rollback(argv: &[String]) -> i32 {
    let args = match parse(argv, ROLLBACK_HELP) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let store = Store::new(dir(&args));
    match store.claim(None) {
        Ok(Some(claimed)) => {
            let o = checkpoint::roll_back(&store, claimed, "rollback");
            println!("checkpoint {}: {}", o.id, o.result);
            for e in &o.errors {
                eprintln!("error: {e}");
            }
            if o.errors.is_empty() { 0 } else { 2 }
        }
        Ok(None) => nothing_pending(&store),
        Err(e) => super::fatal(&e),
    }
}

/// `diff --checkpoint`: what a rollback would change, as `ip` commands.
pub fn diff(argv: &[String]) -> i32 {
    let args = match parse(argv, super::files::DIFF_HELP) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let store = Store::new(dir(&args));
    let cp = match store.pending() {
        Ok(Some(cp)) => cp,
        Ok(None) => return nothing_pending(&store),
        Err(e) => return super::fatal(&e),
    };
    let mut netlink = match Netlink::open() {
        Ok(n) => n,
        Err(e) => return super::fatal(&format!("netlink: {e}")),
    };
    let ops = match checkpoint::restore_plan(&mut netlink, &cp) {
        Ok(ops) => ops,
        Err(e) => return super::fatal(&format!("reading kernel state: {e}")),
    };
    let lines: Vec<String> = ops.iter().map(|op| plan::render(op, &|_| None)).collect();
    if args.value("output") == Some("json") {
        let v = serde_json::json!({ "checkpoint": cp.id, "changes": lines, "in_sync": lines.is_empty() });
        println!("{v}");
    } else {
        for l in &lines {
            println!("{l}");
        }
    }
    if lines.is_empty() { 0 } else { 1 }
}

/// The detached timer (`checkpoint-timer --id ID --checkpoint-dir DIR`).
pub fn timer(argv: &[String]) -> i32 {
    let flags = [Spec::value("id"), Spec::value("checkpoint-dir")];
    let args = match Args::parse(argv, &flags) {
        Ok(a) => a,
        Err(e) => return super::fatal(&e),
    };
    let Some(id) = args.value("id") else {
        return super::fatal("checkpoint-timer: --id is required");
    };
    checkpoint::run_timer(&Store::new(dir(&args)), id)
}
