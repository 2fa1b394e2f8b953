#!/bin/sh
# tests/fuzz/run.sh TARGET SECONDS: builds the targets, then fuzzes TARGET
# for SECONDS, starting from its seeds (seeds/TARGET, and the regression
# inputs) and growing corpus/TARGET. A crash leaves its input in
# artifacts/TARGET/ and exits non-zero: copy it to regressions/TARGET/ once
# fixed, so `cargo test` replays it for ever.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 TARGET SECONDS" >&2; exit 2; }
target=$1 seconds=$2
dir=$(cd "$(dirname "$0")" && pwd)
[ -f "$dir/fuzz_targets/$target.rs" ] || { echo "$0: no target $target (see $dir/fuzz_targets)" >&2; exit 2; }
bin=$("$dir/build.sh")/$target
mkdir -p "$dir/corpus/$target" "$dir/artifacts/$target" "$dir/seeds/$target" "$dir/regressions/$target"
dict=
[ -f "$dir/dict/$target.dict" ] && dict="-dict=$dir/dict/$target.dict"
exec "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3000 \
  -artifact_prefix="$dir/artifacts/$target/" $dict \
  "$dir/corpus/$target" "$dir/seeds/$target" "$dir/regressions/$target"
