//! `apply --confirm`: a checkpoint of everything an apply could change,
//! restored exactly unless the operator confirms in time.
//!
//! [`record`] is the file format, [`restore`] the pure restore plan,
//! [`store`] the directory protocol (one pending checkpoint, claimed by
//! exactly one decider). This module is the kernel shell around them and
//! the detached timer process.

pub mod pause;
pub mod record;
pub mod restore;
pub mod store;

use crate::engine::{Engine, Scope};
use crate::kernel::{KernelError, Netlink, RouteFilter};
use crate::routing::Op;
use record::{Checkpoint, RouteRecord, RuleRecord, VERSION};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use store::{Claimed, Outcome, Store, now_unix, now_unix_ms};

/// Saves the rules and routes of `tables` (the apply's own) and of every
/// table that holds anything carrying `protocol`: every rule pointing at
/// one of them and every route in them, whoever wrote it.
pub fn capture(
    engine: &mut Engine,
    tables: &[u32],
    protocol: u8,
    timeout: Duration,
) -> Result<Checkpoint, KernelError> {
    let scope = Scope {
        tables: Some(tables.iter().copied().collect()),
        discover_owned: true,
        ..Scope::default()
    };
    let snapshot = engine.snapshot(&[], &scope)?;
    let affected: BTreeSet<u32> = snapshot.dumped_tables.iter().copied().collect();
    let now = now_unix_ms();
    Ok(Checkpoint {
        version: VERSION,
        id: format!("{}-{}", std::process::id(), store::unique()),
        protocol,
        created_unix_ms: now,
        deadline_unix_ms: now + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        tables: affected.iter().copied().collect(),
        rules: snapshot
            .rules
            .iter()
            .filter(|r| affected.contains(&r.table))
            .map(RuleRecord::of)
            .collect(),
        routes: snapshot.routes.iter().map(RouteRecord::of).collect(),
    })
}

/// What restoring `cp` would change now.
pub fn restore_plan(netlink: &mut Netlink, cp: &Checkpoint) -> Result<Vec<Op>, String> {
    let saved_rules = cp.kernel_rules()?;
    let saved_routes = cp.kernel_routes()?;
    let read = |netlink: &mut Netlink| -> Result<_, KernelError> {
        let rules = netlink.dump_rules()?;
        let mut routes = Vec::new();
        for &table in &cp.tables {
            routes.extend(netlink.dump_routes(RouteFilter {
                table: Some(table),
                protocol: None,
            })?);
        }
        Ok((rules, routes))
    };
    let (now_rules, now_routes) = read(netlink).map_err(|e| e.to_string())?;
    Ok(restore::restore_ops(
        &cp.tables,
        &saved_rules,
        &saved_routes,
        &now_rules,
        &now_routes,
    ))
}

/// Restores `cp` in one batch; the errors of the ops that failed.
pub fn restore(netlink: &mut Netlink, cp: &Checkpoint) -> Result<(usize, Vec<String>), String> {
    let ops = restore_plan(netlink, cp)?;
    let errors: Vec<String> = netlink
        .execute(&ops)
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    Ok((ops.len(), errors))
}

/// Restores a claimed checkpoint and records the outcome.
pub fn roll_back(store: &Store, claimed: Claimed, by: &str) -> Outcome {
    let mut outcome = Outcome {
        id: claimed.cp.id.clone(),
        result: "rolled back".into(),
        by: by.into(),
        at_unix: 0,
        errors: Vec::new(),
    };
    let result = Netlink::open()
        .map_err(|e| format!("netlink: {e}"))
        .and_then(|mut n| restore(&mut n, &claimed.cp));
    match result {
        Ok((changes, errors)) => {
            log::info!(
                "checkpoint {}: rolled back ({by}): {changes} kernel change(s), {} failed",
                claimed.cp.id,
                errors.len()
            );
            if !errors.is_empty() {
                outcome.result = "rollback failed".into();
            }
            outcome.errors = errors;
        }
        Err(e) => {
            outcome.result = "rollback failed".into();
            outcome.errors.push(e);
        }
    }
    outcome.at_unix = now_unix();
    if let Err(e) = store.finish(claimed, &outcome) {
        outcome.errors.push(e);
    }
    outcome
}

/// Keeps the trial's state: the checkpoint is dropped.
pub fn confirm(store: &Store, claimed: Claimed) -> Result<Outcome, String> {
    let outcome = Outcome {
        id: claimed.cp.id.clone(),
        result: "confirmed".into(),
        by: "confirm".into(),
        at_unix: now_unix(),
        errors: Vec::new(),
    };
    store.finish(claimed, &outcome)?;
    Ok(outcome)
}

/// The timer: sleeps until the deadline of checkpoint `id`, then rolls it
/// back, unless it was decided meanwhile (then it just exits).
pub fn run_timer(store: &Store, id: &str) -> i32 {
    let cp = match store.pending() {
        Ok(Some(cp)) if cp.id == id => cp,
        Ok(_) => return 0,
        Err(e) => {
            log::error!("checkpoint {id}: {e}");
            return 2;
        }
    };
    let left = Duration::from_millis(cp.deadline_unix_ms.saturating_sub(now_unix_ms()));
    let deadline = Instant::now() + left;
    log::info!(
        "checkpoint {id}: timer pid {}: rolling back in {left:?} unless confirmed",
        std::process::id()
    );
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        match store.pending() {
            Ok(Some(p)) if p.id == id => {}
            // Confirmed or rolled back by someone else.
            Ok(_) => return 0,
            Err(e) => log::warn!("checkpoint {id}: {e}"),
        }
    }
    match store.claim(Some(id)) {
        Ok(Some(claimed)) => {
            let outcome = roll_back(store, claimed, "timeout");
            if outcome.errors.is_empty() { 0 } else { 1 }
        }
        Ok(None) => 0,
        Err(e) => {
            log::error!("checkpoint {id}: {e}");
            2
        }
    }
}

/// Starts the timer as a process of its own session: it keeps running
/// when the operator's terminal, SSH session or the apply process goes
/// away (no controlling terminal, so no SIGHUP; another process group).
pub fn spawn_timer(dir: &Path, id: &str) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("timer.log"))
        .map_err(|e| format!("opening {}: {e}", dir.join("timer.log").display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(["checkpoint-timer", "--id", id, "--checkpoint-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent; it only fails if the child already leads a process group,
    // which a freshly forked child never does.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting the timer: {e}"))?;
    Ok(child.id())
}
