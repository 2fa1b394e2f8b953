//! `watch` fuzz target: see `routecfg::fuzzing::watch` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::watch(data));
