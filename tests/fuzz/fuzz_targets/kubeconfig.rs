//! `kubeconfig` fuzz target: see `routecfg::fuzzing::kubeconfig` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| routecfg::fuzzing::kubeconfig(data));
