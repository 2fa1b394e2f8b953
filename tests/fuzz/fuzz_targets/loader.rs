//! `loader` fuzz target: see `routecfg::fuzzing::loader` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::loader(data));
