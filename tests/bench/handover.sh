#!/usr/bin/env bash
# Gateway HA handover time: two agents on one Lease (real kube-apiserver
# 1.20, real network namespaces), the leader killed (SIGKILL: the lease must
# expire) and stopped (SIGTERM: it releases the lease). Runs the e2e
# scenario RUNS times and prints each figure next to the reference:
# client-go's bound for the same settings (lease 15 s + one 2 s retry after
# a crash; one 2 s retry after a release), as a ratio. Asserts nothing
# about time.
#
#   tests/bench/handover.sh            (RUNS=3)
#
# Needs root and .ci/setup-kube.sh, like the e2e tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "handover.sh: needs root (ip netns)" >&2; exit 1; }
RUNS=${RUNS:-3}
export ROUTECFG_SHARED=${ROUTECFG_SHARED:-$(cd .. && pwd)/shared}
printf '%-28s %10s %14s %7s\n' "handover" "routecfg" "client-go bound" "ratio"
for run in $(seq 1 "$RUNS"); do
    out=$(cargo test --quiet --test binding_e2e two_gateways_on_one_lease -- --nocapture 2>&1) || {
        echo "$out" | tail -40 >&2
        echo "handover.sh: run $run failed" >&2
        exit 1
    }
    kill_s=$(sed -n 's/.*SIGKILL of the leader: \([0-9.]*\) s.*/\1/p' <<<"$out")
    term_s=$(sed -n 's/.*SIGTERM of the leader (released): \([0-9.]*\) s.*/\1/p' <<<"$out")
    [ -n "$kill_s" ] && [ -n "$term_s" ] || { echo "$out" | tail -20 >&2; exit 1; }
    awk -v k="$kill_s" -v t="$term_s" -v r="$run" 'BEGIN {
        printf "%-28s %8.1f s %12.1f s %7.2f\n", "run " r ": leader killed", k, 17, k / 17;
        printf "%-28s %8.1f s %12.1f s %7.2f\n", "run " r ": leader stopped", t, 2, t / 2;
    }'
done
