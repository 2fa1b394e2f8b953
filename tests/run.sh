#!/usr/bin/env bash
# The whole test suite, setup included, on a fresh Debian bookworm machine
# of this project's kind. Needs root (network namespaces, apt).
#
#   tests/run.sh            setup + lint + all tests + release builds
#
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: needs root (network namespaces, apt-get)" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

# Tests read the team's shared fixtures (../shared next to the checkout).
# A clone elsewhere finds them through ROUTECFG_SHARED.
if [ -z "${ROUTECFG_SHARED:-}" ]; then
    for dir in "$PWD/../shared" "$PWD/../../shared" /work/shared; do
        if [ -d "$dir/fixtures" ]; then
            ROUTECFG_SHARED=$(cd "$dir" && pwd)
            export ROUTECFG_SHARED
            break
        fi
    done
fi
[ -n "${ROUTECFG_SHARED:-}" ] || { echo "tests/run.sh: shared/ fixtures not found; set ROUTECFG_SHARED" >&2; exit 1; }

step "system packages"
need=()
for pkg in iproute2 iputils-ping procps; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

step "kube-apiserver + etcd for end-to-end tests"
.ci/setup-kube.sh

step "static musl binary and scratch image"
ROUTECFG_CHECK_EXPECT=$'576843759\tmilan' deploy/build-static.sh
deploy/build-image.sh

step "manifests against a real kube-apiserver"
deploy/validate-manifests.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "tests (unit, kernel in namespaces, API server end to end)"
cargo test --all-targets --no-fail-fast -- --test-threads=2

step "a real cluster: the DaemonSet on kubelet + containerd (tests/cluster.rs)"
cargo clippy --test cluster -- -D warnings
cargo test --test cluster

step "fuzz targets: build each and fuzz it for 20 s (tests/fuzz/)"
tests/fuzz/smoke.sh 20

echo
echo "all tests passed"
