//! Entry points for the libFuzzer targets in `tests/fuzz`, and for
//! `tests/fuzz_regressions.rs`, which replays the inputs the fuzzer once
//! crashed on in every ordinary `cargo test`. Each takes raw bytes and
//! panics on a broken invariant, never on bad input. Not an API: the
//! linker drops it from the binary.

use crate::model::selector::Selector;
use crate::model::{Policy, build, parse_documents};

/// The file loader: the fast and general paths agree (see
/// [`crate::model::load::check_paths_agree`]).
pub fn loader(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        crate::model::load::check_paths_agree(text);
    }
}

/// Validation and the desired-state build: deterministic, every rule and
/// route carries the mark, and no rule matches all traffic unless the
/// policy allows it.
pub fn desired(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (objects, _) = parse_documents(text, "in");
    let desired = build(&objects, 114);
    assert_eq!(desired, build(&objects, 114), "build is not deterministic");
    for t in &desired.tables {
        for r in &t.rules {
            assert_eq!(r.protocol, 114);
            assert_eq!(r.table, t.id);
            let selects = r.src.is_some()
                || r.dst.is_some()
                || r.iif.is_some()
                || r.oif.is_some()
                || r.fwmark.is_some();
            assert!(
                selects,
                "{}: a rule matching all traffic was built",
                t.owner
            );
        }
        for r in &t.routes {
            assert_eq!(r.table, t.id);
        }
    }
    let policy = Policy {
        allow_match_all: true,
        ..Policy::new(114)
    };
    for o in &objects {
        let _ = crate::model::validate_with(o, &policy);
    }
}

/// Selectors: what is printed (and sent to the API server) parses back
/// to the same selector.
pub fn selector(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = Selector::parse(text) {
        let printed = s.to_string();
        let again = Selector::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again, s, "{text:?} printed as {printed:?}");
    }
}

/// Kubeconfig parsing (files it names resolve under a missing directory).
pub fn kubeconfig(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::kube::config::from_kubeconfig_str(
            text,
            std::path::Path::new("/nonexistent-routecfg-fuzz"),
            None,
        );
    }
}

pub use crate::kernel::fuzzing::parse_all as netlink;
pub use crate::kube::fuzzing::http_response as http;
pub use crate::kube::fuzzing::watch_stream as watch;
pub use crate::rt_tables::fuzzing::check_sync as rt_tables;
