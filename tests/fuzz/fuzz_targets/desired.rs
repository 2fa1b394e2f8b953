//! `desired` fuzz target: see `routecfg::fuzzing::desired` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::desired(data));
