#!/bin/sh
# Builds every libFuzzer target on the stable toolchain, as
# `cargo fuzz build -s none` would: SanitizerCoverage through RUSTFLAGS,
# an explicit --target so that build scripts and proc macros are built
# without it. Prints the directory holding the target binaries.
set -eu
cd "$(dirname "$0")"
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --target "$triple" --bins ${FUZZ_JOBS:+-j "$FUZZ_JOBS"} >&2
echo "$PWD/target/$triple/release"
