//! `netlink` fuzz target: see `routecfg::fuzzing::netlink` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::netlink(data));
