//! Leaving the host's network namespace for a private one that lives
//! exactly as long as the process.

use crate::kernel::errno_name;
use std::fmt;

/// What a user must provide when no private namespace can be made; shown
/// verbatim so the fix is one copy-paste away.
pub const NEEDS: &str = "routecfg demo needs root, or unprivileged user namespaces \
(sysctl kernel.unprivileged_userns_clone=1 where that setting exists, \
user.max_user_namespaces > 0, and no AppArmor/SELinux policy forbidding them)";

/// How the namespace was entered, for the output's first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entered {
    /// As root: a new network namespace only.
    Root,
    /// As an ordinary user: a user namespace in which the caller is root,
    /// owning a new network namespace.
    UserNamespace { uid: u32, gid: u32 },
}

impl fmt::Display for Entered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entered::Root => f.write_str("private network namespace"),
            Entered::UserNamespace { uid, .. } => write!(
                f,
                "private user + network namespace (uid {uid} is root only inside it)"
            ),
        }
    }
}

/// A step of entering the namespace that failed, with the errno name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterError {
    pub step: String,
    pub detail: String,
}

impl fmt::Display for EnterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

/// Moves this process into a new, empty network namespace (and, without
/// root, a user namespace mapping the caller to root inside it).
///
/// Must be called before any netlink socket is opened: a socket stays in
/// the namespace it was created in. The process must be single-threaded.
pub fn enter_private() -> Result<Entered, EnterError> {
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        unshare(libc::CLONE_NEWNET, "unshare(CLONE_NEWNET)")?;
        return Ok(Entered::Root);
    }
    unshare(
        libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
        "unshare(CLONE_NEWUSER | CLONE_NEWNET)",
    )?;
    // gid_map may only be written once setgroups is denied (an
    // unprivileged writer must not gain the power to drop groups).
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("0 {gid} 1"))?;
    Ok(Entered::UserNamespace { uid, gid })
}

fn unshare(flags: libc::c_int, step: &str) -> Result<(), EnterError> {
    // SAFETY: unshare takes plain flags and touches no memory of ours.
    // routecfg is single-threaded (the demo starts no thread), so the whole
    // process moves into the new namespaces; CLONE_NEWUSER would refuse a
    // multi-threaded caller with EINVAL rather than misbehave.
    let rc = unsafe { libc::unshare(flags) };
    if rc == 0 {
        return Ok(());
    }
    Err(EnterError {
        step: step.to_string(),
        detail: describe(&std::io::Error::last_os_error()),
    })
}

fn write_proc(path: &str, value: &str) -> Result<(), EnterError> {
    std::fs::write(path, value).map_err(|e| EnterError {
        step: format!("write {value:?} to {path}"),
        detail: describe(&e),
    })
}

/// `EPERM (permission denied)`: the errno name people search for, and
/// what it means.
fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} ({})", errno_name(n), e.kind()),
        None => e.to_string(),
    }
}
