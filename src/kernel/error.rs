//! Errors of the kernel layer: every failure names the object it was about
//! (in `ip` words) and the errno the kernel gave, so a status message or a
//! log line is actionable without a packet capture.

use std::fmt;

/// What went wrong, coarsely: callers decide between "retry later",
/// "report and move on" and "reopen the socket" on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The kernel refused the request; `errno` says why.
    Kernel,
    /// A route or link helper named an interface that does not exist, so
    /// the request was never sent.
    LinkNotFound,
    /// Talking to the netlink socket failed (open, send, receive, timeout).
    Socket,
    /// The kernel's answer could not be understood (malformed, truncated,
    /// or missing).
    Protocol,
}

/// A failed kernel operation.
///
/// `context` is the operation in `ip` words (for example
/// `route 10.0.0.0/24 via 10.1.0.1 table 1234`), `ext_ack` the kernel's own
/// explanation when it gave one (for example `Nexthop has invalid gateway`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    pub errno: Option<i32>,
    pub kind: ErrorKind,
    pub context: String,
    pub ext_ack: Option<String>,
}

impl KernelError {
    /// An errno answer from the kernel.
    pub fn kernel(errno: i32, context: impl Into<String>, ext_ack: Option<String>) -> Self {
        KernelError {
            errno: Some(errno),
            kind: ErrorKind::Kernel,
            context: context.into(),
            ext_ack,
        }
    }

    /// A route or helper named a link that is not there.
    pub fn link_not_found(context: impl Into<String>, link: &str) -> Self {
        KernelError {
            errno: None,
            kind: ErrorKind::LinkNotFound,
            context: context.into(),
            ext_ack: Some(format!("link {link} not found")),
        }
    }

    /// A socket-level failure.
    pub fn socket(err: &std::io::Error, context: impl Into<String>) -> Self {
        KernelError {
            errno: err.raw_os_error(),
            kind: ErrorKind::Socket,
            context: context.into(),
            ext_ack: if err.raw_os_error().is_none() {
                Some(err.to_string())
            } else {
                None
            },
        }
    }

    /// An answer we could not make sense of.
    pub fn protocol(context: impl Into<String>, detail: impl Into<String>) -> Self {
        KernelError {
            errno: None,
            kind: ErrorKind::Protocol,
            context: context.into(),
            ext_ack: Some(detail.into()),
        }
    }

    /// The symbolic errno (`ENETUNREACH`), because numbers differ between
    /// architectures and names are what people search for.
    /// A missing link reads as `ENODEV` (what the kernel would have said),
    /// an unintelligible answer as `EPROTO`.
    pub fn errno_name(&self) -> &'static str {
        match (self.errno, self.kind) {
            (Some(e), _) => errno_name(e),
            (None, ErrorKind::LinkNotFound) => "ENODEV",
            (None, _) => "EPROTO",
        }
    }

    /// Whether the failure is expected to heal by itself once other state
    /// appears (a link being created, a rule or address making the gateway
    /// reachable, a link coming up), so the caller should retry later rather
    /// than report a hard error. An unreachable gateway reads ENETUNREACH for
    /// IPv4 (ext ack "Nexthop has invalid gateway") and EHOSTUNREACH for
    /// IPv6; a link that exists but is down reads ENETDOWN.
    pub fn is_pending(&self) -> bool {
        match self.kind {
            ErrorKind::LinkNotFound => true,
            ErrorKind::Kernel => matches!(
                self.errno,
                Some(libc::ENODEV | libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN)
            ),
            ErrorKind::Socket | ErrorKind::Protocol => false,
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.context)?;
        match (self.errno, self.kind) {
            (Some(e), _) => {
                write!(f, "{} ({})", errno_name(e), errno_text(e))?;
                if let Some(ack) = &self.ext_ack {
                    write!(f, ": {ack}")?;
                }
                Ok(())
            }
            (None, _) => f.write_str(self.ext_ack.as_deref().unwrap_or("failed")),
        }
    }
}

impl std::error::Error for KernelError {}

/// The C library's description of an errno, without Rust's
/// " (os error N)" suffix.
fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Symbolic name of the errnos netlink route requests can produce.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::ENOLINK => "ENOLINK",
        libc::EPROTO => "EPROTO",
        libc::EBADMSG => "EBADMSG",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPFNOSUPPORT => "EPFNOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENETRESET => "ENETRESET",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => "EUNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_errno_and_text() {
        let e = KernelError::kernel(
            libc::ENETUNREACH,
            "route 10.60.0.1/32 via 10.80.0.2 dev liqo.x table 123",
            None,
        );
        assert_eq!(
            e.to_string(),
            "route 10.60.0.1/32 via 10.80.0.2 dev liqo.x table 123: ENETUNREACH (Network is unreachable)"
        );
        assert!(e.is_pending());
    }

    #[test]
    fn display_carries_ext_ack() {
        let e = KernelError::kernel(
            libc::EINVAL,
            "route 10.0.0.0/8 src 10.9.9.9 table 7",
            Some("Invalid prefsrc address".into()),
        );
        assert_eq!(
            e.to_string(),
            "route 10.0.0.0/8 src 10.9.9.9 table 7: EINVAL (Invalid argument): Invalid prefsrc address"
        );
        assert!(!e.is_pending());
        assert_eq!(e.errno_name(), "EINVAL");
        assert!(KernelError::kernel(libc::EHOSTUNREACH, "x", None).is_pending());
    }

    #[test]
    fn link_not_found_is_pending_and_reads_enodev() {
        let e = KernelError::link_not_found("route 10.0.0.0/8 dev x table 7", "x");
        assert!(e.is_pending());
        assert_eq!(e.errno_name(), "ENODEV");
        assert_eq!(
            e.to_string(),
            "route 10.0.0.0/8 dev x table 7: link x not found"
        );
    }

    #[test]
    fn enodev_from_kernel_is_pending_eexist_is_not() {
        assert!(KernelError::kernel(libc::ENODEV, "x", None).is_pending());
        assert!(!KernelError::kernel(libc::EEXIST, "x", None).is_pending());
        // A socket-level ENODEV is not a routing condition.
        let io = std::io::Error::from_raw_os_error(libc::ENODEV);
        assert!(!KernelError::socket(&io, "x").is_pending());
    }

    #[test]
    fn unknown_errno_has_a_name() {
        assert_eq!(errno_name(4000), "EUNKNOWN");
        assert_eq!(errno_name(libc::ESRCH), "ESRCH");
    }
}
