#!/usr/bin/env bash
# The DaemonSet on a real cluster (tests/cluster/up.sh): prints figures,
# asserts nothing about time (fails only if something never converges).
#
#   tests/bench/cluster.sh
#
# Figures, each next to a reference DaemonSet of the same shape (hostNetwork,
# the pause image, same tolerations) run on the same cluster first, so the
# ratio shows what routecfg adds to what kubelet + containerd cost anyway:
#   - `kubectl apply -f deploy/` -> every fabric pod Ready and the seed's
#     node table applied on every node (the RouteConfiguration and its CRD
#     exist beforehand, so the time is the agent's start, not CRD setup);
#   - rollout (changed pod-template annotation) start -> complete;
#   - pings lost between test namespaces during the rollout (every 10 ms
#     from each node to a remote pod behind the seed's table; target 0).
#
# Environment: NODES=1|2 (default 1), ROUTECFG_IMAGE_ARCHIVE (default: run
# deploy/build-image.sh), ROUTECFG_SHARED. Needs root and .ci/setup-kube.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "cluster.sh: needs root" >&2; exit 1; }
NODES=${NODES:-1}
shared=${ROUTECFG_SHARED:-}
if [ -z "$shared" ]; then
    d=$PWD
    while [ "$d" != / ] && [ ! -d "$d/shared/fixtures" ]; do d=$(dirname "$d"); done
    shared=$d/shared
fi
FIXTURE=$shared/fixtures/rome/node/milan-node-gw.yaml
[ -f "$FIXTURE" ] || { echo "cluster.sh: $FIXTURE missing; set ROUTECFG_SHARED" >&2; exit 1; }
ARCHIVE=${ROUTECFG_IMAGE_ARCHIVE:-$(deploy/build-image.sh | tail -n 1)}

work=$(mktemp -d /tmp/routecfg-bench-cluster.XXXXXX)
gw=rcbench-gw-$$
pingers=()
cleanup() {
    local p
    for p in "${pingers[@]}"; do kill "$p" 2>/dev/null || true; done
    tests/cluster/down.sh "$work/cluster" >/dev/null 2>&1 || echo "cluster.sh: down.sh failed; state in $work" >&2
    ip netns del "$gw" 2>/dev/null || true
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

echo "cluster.sh: starting a $NODES-node cluster" >&2
KUBECONFIG=$(ROUTECFG_IMAGE_ARCHIVE=$ARCHIVE tests/cluster/up.sh --nodes "$NODES" "$work/cluster" | tail -n 1)
export KUBECONFIG
k() { kubectl --cache-dir "$work/cluster/kubectl-cache" "$@" 2>&1 | grep -v '^Warning: ' || return "${PIPESTATUS[0]}"; }
mapfile -t node_ns < <(awk '{print $2}' "$work/cluster/nodes")

# A gateway namespace behind every node's seed link (as tests/cluster.rs).
ip netns add "$gw"
ip -n "$gw" link set lo up
ip -n "$gw" addr add 10.61.0.1/32 dev lo
i=0
for ns in "${node_ns[@]}"; do
    i=$((i + 1))
    ip -n "$gw" link add "liqo.node$i" type veth peer name liqo.qvqc52kfnb netns "$ns"
    ip -n "$gw" link set "liqo.node$i" up
    ip -n "$gw" addr add 10.80.0.3/32 dev "liqo.node$i"
    ip -n "$gw" route add "10.80.0.1$i/32" dev "liqo.node$i"
    ip -n "$ns" link set liqo.qvqc52kfnb up
    ip -n "$ns" addr add "10.80.0.1$i/32" dev liqo.qvqc52kfnb noprefixroute
done

all_reach() {
    local ns
    for ns in "${node_ns[@]}"; do
        ip netns exec "$ns" ping -n -q -c 1 -W 1 10.61.0.1 >/dev/null 2>&1 || return 1
    done
}
wait_until() { # what limit-seconds command...
    local what=$1 limit=$2 deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@"; do
        ((SECONDS < deadline)) || { echo "cluster.sh: gave up waiting for $what" >&2; exit 1; }
        sleep 0.05
    done
}
start_pingers() {
    pingers=()
    : >"$work/pings"
    local ns
    for ns in "${node_ns[@]}"; do
        ip netns exec "$ns" ping -n -q -i 0.01 -W 1 10.61.0.1 >>"$work/pings" 2>&1 &
        pingers+=($!)
    done
}
stop_pingers() { # prints "lost sent"
    local p
    for p in "${pingers[@]}"; do kill -INT "$p"; done
    for p in "${pingers[@]}"; do wait "$p" || true; done
    pingers=()
    awk -F', ' '/packets transmitted/ { split($1, a, " "); split($2, b, " "); s += a[1]; r += b[1] }
        END { print s - r, s }' "$work/pings"
}
rollout() { # namespace daemonset -> seconds
    local t0 t1
    t0=$(now)
    k -n "$1" patch ds "$2" --type=merge \
        -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"bench/rollout\":\"$t0\"}}}}}" >/dev/null
    k -n "$1" rollout status "ds/$2" --timeout=300s >/dev/null
    t1=$(now)
    secs "$t0" "$t1"
}

# --- reference: a pause DaemonSet of the same shape ---------------------------
k create namespace bench-ref >/dev/null
ref_ds=$(cat <<'EOF'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: reference, namespace: bench-ref}
spec:
  selector: {matchLabels: {app: reference}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {app: reference}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 10
      containers:
      - name: pause
        image: localhost/routecfg-pause:1.20.2
        imagePullPolicy: Never
        securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
EOF
)
# The reference's first apply also creates the ServiceAccount token, default
# namespace objects etc.; its own DaemonSet is timed from its apply.
t0=$(now)
k apply -f - <<<"$ref_ds" >/dev/null
k -n bench-ref rollout status ds/reference --timeout=300s >/dev/null
ref_ready=$(secs "$t0" "$(now)")
ref_rollout=$(rollout bench-ref reference)
k delete namespace bench-ref --wait=true >/dev/null

# --- routecfg -------------------------------------------------------------------
k apply -f deploy/examples/namespace.yaml >/dev/null
k create namespace liqo-tenant-milan >/dev/null
k apply -f deploy/crd.yaml >/dev/null
k wait --for condition=established crd/routeconfigurations.networking.liqo.io --timeout=60s >/dev/null
k apply -f "$FIXTURE" >/dev/null
all_reach && { echo "cluster.sh: remote pod reachable before routecfg ran" >&2; exit 1; }
ds_ready() {
    local want ready
    read -r want ready <<<"$(k -n liqo get ds routecfg-fabric \
        -o 'jsonpath={.status.desiredNumberScheduled} {.status.numberReady}' 2>/dev/null)"
    [ -n "$want" ] && [ "$want" -gt 0 ] && [ "$want" = "$ready" ]
}
t0=$(now)
k apply -f deploy/ >/dev/null
t_tables='' t_ready=''
deadline=$((SECONDS + 300))
while [ -z "$t_tables" ] || [ -z "$t_ready" ]; do
    ((SECONDS < deadline)) || { echo "cluster.sh: fabric pods not Ready with tables in 300 s" >&2; exit 1; }
    [ -z "$t_tables" ] && all_reach && t_tables=$(now)
    [ -z "$t_ready" ] && ds_ready && t_ready=$(now)
    sleep 0.05
done
tables_applied=$(secs "$t0" "$t_tables")
agent_ready=$(secs "$t0" "$t_ready")

start_pingers
sleep 1
agent_rollout=$(rollout liqo routecfg-fabric)
wait_until "traffic after the rollout" 60 all_reach
sleep 1
read -r lost sent <<<"$(stop_pingers)"

echo
printf 'routecfg DaemonSet on a real cluster (%d node(s), kubelet 1.20 + containerd %s)\n' \
    "$NODES" "$(containerd --version | awk '{print $3}')"
printf '%-46s %10s %14s %8s\n' "" "routecfg" "reference" "ratio"
printf '%-46s %9ss %13ss %8s\n' "kubectl apply -> every pod Ready" \
    "$agent_ready" "$ref_ready" "$(ratio "$agent_ready" "$ref_ready")"
printf '%-46s %9ss %14s\n' "kubectl apply -> tables applied on every node" \
    "$tables_applied" "-"
printf '%-46s %9ss %13ss %8s\n' "rollout start -> complete" \
    "$agent_rollout" "$ref_rollout" "$(ratio "$agent_rollout" "$ref_rollout")"
printf '%-46s %10s %14s\n' "pings lost during the rollout (every 10 ms)" \
    "$lost of $sent" "target 0"
echo "(reference: a hostNetwork pause DaemonSet of the same shape on the same cluster, but"
echo " without probes; routecfg's Ready waits for its first readiness probe, period 5 s)"
