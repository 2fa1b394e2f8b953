//! `http` fuzz target: see `routecfg::fuzzing::http` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::http(data));
