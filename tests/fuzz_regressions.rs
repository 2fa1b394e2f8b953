//! Replays every fuzz seed and every input the fuzzer once broke an
//! invariant with (`tests/fuzz/regressions/TARGET/`) through the same
//! checks the fuzz targets run, in an ordinary `cargo test`.

use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("loader", routecfg::fuzzing::loader),
    ("desired", routecfg::fuzzing::desired),
    ("selector", routecfg::fuzzing::selector),
    ("kubeconfig", routecfg::fuzzing::kubeconfig),
    ("watch", routecfg::fuzzing::watch),
    ("http", routecfg::fuzzing::http),
    ("netlink", routecfg::fuzzing::netlink),
    ("rt_tables", routecfg::fuzzing::rt_tables),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    v.sort();
    v
}

#[test]
fn every_seed_and_regression_input_passes_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let targets = fuzz.join("fuzz_targets");
    for entry in std::fs::read_dir(&targets).expect("tests/fuzz/fuzz_targets") {
        let name = entry.expect("entry").path();
        let name = name.file_stem().and_then(|s| s.to_str()).expect("name");
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz target {name} has no replay here"
        );
    }
    for (target, check) in TARGETS {
        let seeds = files(&fuzz.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for input in seeds
            .iter()
            .chain(&files(&fuzz.join("regressions").join(target)))
        {
            let bytes = std::fs::read(input).expect("read input");
            let result = std::panic::catch_unwind(|| check(&bytes));
            assert!(
                result.is_ok(),
                "{target}: {} breaks an invariant",
                input.display()
            );
        }
    }
}
