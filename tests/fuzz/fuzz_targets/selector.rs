//! `selector` fuzz target: see `routecfg::fuzzing::selector` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::selector(data));
