#!/bin/sh
# tests/fuzz/smoke.sh [SECONDS]: what CI runs. Builds every target and
# fuzzes each for SECONDS (default 20), so a target that no longer builds,
# or crashes at once, fails the run.
set -eu
seconds=${1:-20}
dir=$(cd "$(dirname "$0")" && pwd)
"$dir/build.sh" >/dev/null
mkdir -p "$dir/artifacts"
failed=
for f in "$dir"/fuzz_targets/*.rs; do
  t=$(basename "$f" .rs)
  echo "== fuzz $t for ${seconds}s" >&2
  if ! "$dir/run.sh" "$t" "$seconds" 2>"$dir/artifacts/$t.log"; then
    tail -n 40 "$dir/artifacts/$t.log" >&2
    failed="$failed $t"
  else
    grep -E '^(Done|#[0-9]+ +DONE)' "$dir/artifacts/$t.log" | tail -n 1 >&2 || true
  fi
done
[ -z "$failed" ] || { echo "fuzz targets failed:$failed" >&2; exit 1; }
