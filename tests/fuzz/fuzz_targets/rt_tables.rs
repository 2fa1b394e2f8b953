//! `rt_tables` fuzz target: see `routecfg::fuzzing::rt_tables` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::rt_tables(data));
