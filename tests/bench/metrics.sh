#!/usr/bin/env bash
# Metrics-port benchmark: repair time of a hand-deleted route while 300
# slow clients (silent, one byte, trickling) keep the agent's metrics port
# full, next to the time with no clients, and /healthz latency meanwhile.
# Prints figures; asserts nothing about time.
#
#   tests/bench/metrics.sh
#
# Environment:
#   REPAIRS=200       hand deletions timed in each situation
#   ROUTECFG_SHARED   the team's shared/ directory (CRD), as for the tests
#
# It runs tests/metrics_e2e.rs on a release build: the test starts its own
# kube-apiserver + etcd and the agent in network namespaces, and stamps the
# kernel's route events as `ip monitor route` reports them.
# Needs root and .ci/setup-kube.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "metrics.sh: needs root (ip netns)" >&2; exit 1; }

REPAIRS=${REPAIRS:-200}
echo "metrics.sh: building and running tests/metrics_e2e.rs (release), $REPAIRS repairs each" >&2
out=$(ROUTECFG_CROWD_REPAIRS=$REPAIRS cargo test --release --quiet --test metrics_e2e \
    -- --test-threads=1 --nocapture 2>/dev/null) || {
    echo "metrics.sh: the test failed; run it without the bench for details:" >&2
    echo "  cargo test --test metrics_e2e -- --nocapture" >&2
    exit 1
}
echo
echo "routecfg metrics-port benchmark (kube-apiserver 1.20.2 + etcd, $(nproc) cores, release build)"
sed -n '/^metrics port under/,/healthz, 300 clients/p' <<<"$out"
