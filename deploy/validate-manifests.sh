#!/usr/bin/env bash
# Checks routecfg's own manifests against a real kube-apiserver:
# - static/crd.yaml installs (structural, established) and accepts every
#   Rome fixture from shared/fixtures/rome without pruning a field;
# - it still rejects what it should (bad CIDRs/IPs/scopes, duplicates, ...)
#   and accepts IPv6, which Liqo's own definition does not;
# - every manifest in deploy/ and deploy/examples/ passes
#   `kubectl apply --dry-run=server`;
# - rbac.yaml grants exactly what the agent needs (SubjectAccessReviews and a
#   real service-account token);
# - deploy/routecfg.service parses cleanly (systemd-analyze verify).
#
# etcd and kube-apiserver run inside a private network namespace made by
# this script (`unshare --net`, loopback only), so fixed ports cannot clash
# and no traffic leaves it. Needs root, etcd, openssl, kubectl and the
# kube-apiserver built by .ci/setup-kube.sh; fails loudly without them.
#
# Output ends with "N passed, N failed"; exit status 0 only if none failed.
#
# Environment:
#   ROUTECFG_KUBE_APISERVER  kube-apiserver binary
#                            (default /var/cache/routecfg/kube-apiserver-1.20.2/kube-apiserver)
#   ROUTECFG_SHARED          the shared/ folder (default: ../shared or
#                            ../../shared next to the checkout)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APISERVER=${ROUTECFG_KUBE_APISERVER:-/var/cache/routecfg/kube-apiserver-1.20.2/kube-apiserver}

die() { printf 'validate-manifests: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (private network namespace, etcd, kube-apiserver)"
for tool in etcd openssl kubectl unshare ip python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (run .ci/setup-kube.sh)"
done
[ -x "$APISERVER" ] || die "kube-apiserver not found at $APISERVER: run .ci/setup-kube.sh first"

if [ -z "${ROUTECFG_SHARED:-}" ]; then
    for d in "$ROOT/../shared" "$ROOT/../../shared"; do
        if [ -d "$d/fixtures/rome" ]; then ROUTECFG_SHARED=$(cd "$d" && pwd); break; fi
    done
fi
FIXTURES=${ROUTECFG_SHARED:-}/fixtures/rome
[ -d "$FIXTURES" ] || die "fixtures not found (set ROUTECFG_SHARED to the shared/ folder)"
mapfile -t FIXTURE_FILES < <(find "$FIXTURES" -name '*.yaml' | sort)
[ ${#FIXTURE_FILES[@]} -gt 0 ] || die "no fixtures under $FIXTURES"

# Re-run inside a fresh network namespace of our own.
if [ "${ROUTECFG_VALIDATE_NETNS:-}" != 1 ]; then
    export ROUTECFG_VALIDATE_NETNS=1 ROUTECFG_SHARED
    exec unshare --net -- "$0" "$@"
fi
ip link set lo up

WORK=$(mktemp -d /tmp/routecfg-validate.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- start etcd + kube-apiserver ---------------------------------------------
mkdir -p "$WORK/certs"
openssl genrsa -out "$WORK/sa.key" 2048 2>/dev/null
openssl rsa -in "$WORK/sa.key" -pubout -out "$WORK/sa.pub" 2>/dev/null
ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$ADMIN_TOKEN,admin,admin,system:masters" >"$WORK/tokens.csv"

etcd --data-dir "$WORK/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
"$APISERVER" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
    --cert-dir="$WORK/certs" --token-auth-file="$WORK/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$WORK/sa.pub" \
    --service-account-signing-key-file="$WORK/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount \
    >"$WORK/apiserver.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: $WORK/certs/apiserver.crt
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
EOF
k() { kubectl --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }

ready=0
for _ in $(seq 1 120); do
    if [ -f "$WORK/certs/apiserver.crt" ] && k get --raw /readyz >/dev/null 2>&1; then
        ready=1
        break
    fi
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || {
            tail -n 20 "$WORK/etcd.log" "$WORK/apiserver.log" >&2
            die "etcd or kube-apiserver exited early"
        }
    done
    sleep 1
done
[ "$ready" = 1 ] || { tail -n 30 "$WORK/apiserver.log" >&2; die "kube-apiserver not ready after 120 s"; }
echo "kube-apiserver $("$APISERVER" --version 2>&1 | awk '{print $2}') ready"

# --- test helpers --------------------------------------------------------------
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok: $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
# expect_ok DESC CMD... : CMD must succeed.
expect_ok() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$desc"; else bad "$desc: $out"; fi
}
# expect_reject DESC REGEX CMD... : CMD must fail with a message matching REGEX.
expect_reject() {
    local desc=$1 pattern=$2 out
    shift 2
    if out=$("$@" 2>&1); then
        bad "$desc: accepted, should have been rejected"
    elif grep -qiE -- "$pattern" <<<"$out"; then
        ok "$desc (rejected: $(grep -iE -m1 -o -- ".{0,60}$pattern.{0,80}" <<<"$out" | head -n 1))"
    else
        bad "$desc: rejected, but not for /$pattern/: $out"
    fi
}
# check DESC CMD... : CMD must succeed (a condition, output not shown).
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else bad "$desc"; fi
}
# --validate=false: the API server itself must refuse, not kubectl.
dry_run_stdin() { k apply --dry-run=server --validate=false -f - <<<"$1"; }
# A RouteConfiguration in liqo from a flow-style spec.table.
rc() { printf 'apiVersion: networking.liqo.io/v1beta1\nkind: RouteConfiguration\nmetadata: {name: %s, namespace: liqo}\nspec: {table: %s}\n' "$1" "$2"; }
# A JSON document of the YAML file/stdin as kubectl reads it, minus metadata.
spec_json() { k create --dry-run=client -o json -f "$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"], sort_keys=True))'; }

# --- CRD -------------------------------------------------------------------------
CRD=routeconfigurations.networking.liqo.io
expect_ok "CRD applies" k apply -f "$ROOT/static/crd.yaml"
expect_ok "CRD is established" k wait --for condition=established --timeout=60s "crd/$CRD"
crd_conditions=$(k get crd "$CRD" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}')
if grep -qE 'NonStructuralSchema=True|NamesAccepted=False' <<<"$crd_conditions"; then
    bad "CRD conditions: $crd_conditions"
else
    ok "CRD schema is structural and names accepted ($crd_conditions)"
fi
served=0
for _ in $(seq 1 30); do
    if k get routeconfigurations -A >/dev/null 2>&1; then served=1; break; fi
    sleep 1
done
check "routeconfigurations served within 30 s of the CRD" [ "$served" = 1 ]
expect_ok "namespace liqo (examples/namespace.yaml)" k apply -f "$ROOT/deploy/examples/namespace.yaml"
for ns in $(sed -n 's/^ *namespace: *//p' "${FIXTURE_FILES[@]}" | sort -u) liqo-tenant-milan; do
    k get namespace "$ns" >/dev/null 2>&1 || k create namespace "$ns" >/dev/null
done

# --- fixtures: accepted, and stored without losing a field --------------------
for f in "${FIXTURE_FILES[@]}"; do
    name=${f#"$FIXTURES"/}
    expect_ok "fixture $name: apply --dry-run=server" k apply --dry-run=server -f "$f"
    if ! out=$(k create -f "$f" 2>&1); then
        bad "fixture $name: create: $out"
        continue
    fi
    want=$(spec_json "$f")
    got=$(k get -f "$f" -o json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"], sort_keys=True))')
    if [ "$want" = "$got" ]; then ok "fixture $name: stored spec equals the file"; else bad "fixture $name: stored spec differs (pruned?): $got"; fi
done
table_col=$(k get rcfg -n liqo rome-worker-gw-node --no-headers -o custom-columns=T:.spec.table.name)
printed=$(k get rcfg -n liqo rome-worker-gw-node)
if grep -q 'TABLE' <<<"$printed" && grep -q "$table_col" <<<"$printed" && grep -q 'CATEGORY' <<<"$printed" \
    && grep -q gateway <<<"$printed"; then
    ok "printer columns show table and category"
else
    bad "printer columns: $printed"
fi
expect_ok "short names rcnf,rcnfg,rcfg,routecfg" k get rcnf,rcnfg,rcfg,routecfg -A
expect_ok "category liqo lists them" k get liqo -A

# --- schema: IPv6 and limits accepted ---------------------------------------
expect_ok "IPv6 rule, route, gateway and source" dry_run_stdin "$(rc v6 '{name: v6, rules: [{dst: "fd00::/64", src: "fd01::/64", iif: eth0, routes: [{dst: "fd02::/64", gw: "fe80::1", src: "fd00::2", dev: eth0, onlink: true, scope: link}]}]}')"
expect_ok "fwmark/priority at 0 and 2^32-1, 15-byte names, targetRefs" dry_run_stdin "$(rc lim '{name: lim, targetRef: {kind: Node, name: n1}, rules: [{fwmark: 4294967295, priority: 0, oif: abcdefghijklmno, targetRef: {kind: InternalNode, name: n1}, routes: [{dst: 10.0.0.0/8, scope: nowhere, targetRef: {kind: Pod, name: p, namespace: liqo, uid: u}}]}, {fwmark: 0, priority: 4294967295, routes: [{dst: 0.0.0.0/0, gw: 10.0.0.1}]}]}')"

# --- schema: ECMP next hops (upstream's nextHops) -------------------------------
expect_ok "nextHops: IPv4 with weights 0 and 255, duplicates, a route-level dev" dry_run_stdin "$(rc ecmp1 '{name: ecmp1, rules: [{routes: [{dst: 10.8.0.0/16, dev: ignored0, nextHops: [{gw: 10.1.0.2, dev: a0}, {gw: 10.1.0.2, dev: a0, weight: 0}, {gw: 10.2.0.2, dev: a1, weight: 255}]}]}]}')"
expect_ok "nextHops: IPv6, one next hop" dry_run_stdin "$(rc ecmp2 '{name: ecmp2, rules: [{routes: [{dst: "fd33::/64", nextHops: [{gw: "fd01::2", dev: a0}]}]}]}')"
if out=$(k create -f - <<<"$(rc ecmp3 '{name: ecmp3, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{gw: 10.1.0.2, dev: a0}, {gw: 10.2.0.2, dev: a1, weight: 4}]}]}]}')" 2>&1); then
    hops=$(k get -n liqo rcfg ecmp3 -o json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"]["table"]["rules"][0]["routes"][0]["nextHops"], sort_keys=True))')
    want='[{"dev": "a0", "gw": "10.1.0.2", "weight": 0}, {"dev": "a1", "gw": "10.2.0.2", "weight": 4}]'
    if [ "$hops" = "$want" ]; then ok "nextHops stored, not pruned, weight defaulted to 0"; else bad "nextHops stored as $hops"; fi
else
    bad "nextHops object create: $out"
fi
expect_reject "nextHops and gw together" 'routes.*must not validate the schema' dry_run_stdin "$(rc ecmp4 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, gw: 10.1.0.1, nextHops: [{gw: 10.1.0.2, dev: a0}]}]}]}')"
expect_reject "nextHops empty" 'nextHops' dry_run_stdin "$(rc ecmp5 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: []}]}]}')"
expect_reject "next hop without dev" 'nextHops.*dev' dry_run_stdin "$(rc ecmp6 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{gw: 10.1.0.2}]}]}]}')"
expect_reject "next hop without gw" 'nextHops.*gw' dry_run_stdin "$(rc ecmp7 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{dev: a0}]}]}]}')"
expect_reject "next hop weight 256" 'weight' dry_run_stdin "$(rc ecmp8 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{gw: 10.1.0.2, dev: a0, weight: 256}]}]}]}')"
expect_reject "next hop weight -1" 'weight' dry_run_stdin "$(rc ecmp9 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{gw: 10.1.0.2, dev: a0, weight: -1}]}]}]}')"
expect_reject "next hop gw not an IP" 'nextHops.*gw' dry_run_stdin "$(rc ecmp10 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{gw: x, dev: a0}]}]}]}')"
expect_reject "next hop dev over 15 bytes" 'nextHops.*dev' dry_run_stdin "$(rc ecmp11 '{name: t, rules: [{routes: [{dst: 10.8.0.0/16, nextHops: [{gw: 10.1.0.2, dev: abcdefghijklmnop}]}]}]}')"

# --- schema: rejections -------------------------------------------------------
expect_reject "rule dst not a CIDR" 'rules.*dst' dry_run_stdin "$(rc bad1 '{name: t, rules: [{dst: 10.0.0.0/33, routes: [{dst: 10.0.0.0/8}]}]}')"
expect_reject "route dst not a CIDR" 'routes.*dst' dry_run_stdin "$(rc bad2 '{name: t, rules: [{routes: [{dst: 10.0.0.1}]}]}')"
expect_reject "gw not an IP" 'gw' dry_run_stdin "$(rc bad3 '{name: t, rules: [{routes: [{dst: 10.0.0.0/8, gw: gateway.local}]}]}')"
expect_reject "gw is a CIDR" 'gw' dry_run_stdin "$(rc bad4 '{name: t, rules: [{routes: [{dst: 10.0.0.0/8, gw: 10.0.0.1/32}]}]}')"
expect_reject "route src not an IP" 'routes.*src' dry_run_stdin "$(rc bad5 '{name: t, rules: [{routes: [{dst: 10.0.0.0/8, src: x}]}]}')"
expect_reject "scope outside the enum" 'scope' dry_run_stdin "$(rc bad6 '{name: t, rules: [{routes: [{dst: 10.0.0.0/8, scope: universe}]}]}')"
expect_reject "no rules" 'rules' dry_run_stdin "$(rc bad7 '{name: t, rules: []}')"
expect_reject "no table name" 'name' dry_run_stdin "$(rc bad8 '{rules: [{routes: [{dst: 10.0.0.0/8}]}]}')"
expect_reject "table name with a space" 'name' dry_run_stdin "$(rc bad9 '{name: "a b", rules: [{routes: [{dst: 10.0.0.0/8}]}]}')"
expect_reject "rule without routes" 'routes' dry_run_stdin "$(rc bad10 '{name: t, rules: [{dst: 10.0.0.0/8}]}')"
expect_reject "route without dst" 'dst' dry_run_stdin "$(rc bad11 '{name: t, rules: [{routes: [{gw: 10.0.0.1}]}]}')"
expect_reject "two routes with one dst in a rule" 'duplicate' dry_run_stdin "$(rc bad12 '{name: t, rules: [{routes: [{dst: 10.0.0.0/8, gw: 10.0.0.1}, {dst: 10.0.0.0/8, gw: 10.0.0.2}]}]}')"
expect_reject "interface name over 15 bytes" 'iif' dry_run_stdin "$(rc bad13 '{name: t, rules: [{iif: abcdefghijklmnop, routes: [{dst: 10.0.0.0/8}]}]}')"
expect_reject "negative fwmark" 'fwmark' dry_run_stdin "$(rc bad14 '{name: t, rules: [{fwmark: -1, routes: [{dst: 10.0.0.0/8}]}]}')"
expect_reject "priority over 2^32-1" 'priority' dry_run_stdin "$(rc bad15 '{name: t, rules: [{priority: 4294967296, routes: [{dst: 10.0.0.0/8}]}]}')"

# --- status subresource ----------------------------------------------------------
OBJ=(-n liqo routeconfiguration/rome-worker-gw-node)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
expect_ok "status: conditions of two hosts" k patch "${OBJ[@]}" --subresource=status --type=merge \
    -p "{\"status\":{\"conditions\":[{\"host\":\"gw-a\",\"type\":\"Applied\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},{\"host\":\"gw-b\",\"type\":\"Applied\",\"status\":\"False\",\"lastTransitionTime\":\"$now\"}]}}"
hosts=$(k get "${OBJ[@]}" -o jsonpath='{.status.conditions[*].host}')
check "status stored for both hosts (got '$hosts')" [ "$hosts" = "gw-a gw-b" ]
expect_ok "status write leaves spec alone" test "$(spec_json "$FIXTURES/gateway/rome-worker-gw-node.yaml")" = \
    "$(k get "${OBJ[@]}" -o json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"], sort_keys=True))')"
# (Duplicate (host, type) keys are not tested: kube-apiserver 1.20 checks
# list keys only on writes of the main resource, not of /status.)
expect_reject "status: value outside True/False/Unknown" 'status' k patch "${OBJ[@]}" --subresource=status --type=merge \
    -p '{"status":{"conditions":[{"host":"gw-a","type":"Applied","status":"Maybe"}]}}'

# --- every manifest: server-side dry run ------------------------------------------
expect_ok "kubectl apply --dry-run=server -f deploy/" k apply --dry-run=server -f "$ROOT/deploy/"
expect_ok "kubectl apply --dry-run=server -f deploy/examples/" k apply --dry-run=server -f "$ROOT/deploy/examples/"
for f in "$ROOT"/deploy/*.yaml "$ROOT"/deploy/examples/*.yaml; do
    expect_ok "dry run ${f#"$ROOT"/}" k apply --dry-run=server -f "$f"
done

# --- RBAC: exactly what the agent needs ---------------------------------------------
expect_ok "rbac.yaml applies" k apply -f "$ROOT/deploy/rbac.yaml"
SA=system:serviceaccount:liqo:routecfg
can_as() { [ "$(k auth can-i --as="$1" "${@:2}" 2>/dev/null)" = yes ]; }
can() { can_as "$SA" "$@"; }
# Not "! can": a failing kubectl must not count as a denial.
cannot() { [ "$(k auth can-i --as="$SA" "$@" 2>/dev/null)" = no ]; }
for verb in get list watch; do
    check "SA may $verb routeconfigurations" can "$verb" routeconfigurations.networking.liqo.io -A
done
for verb in get update patch; do
    check "SA may $verb routeconfigurations/status" \
        can "$verb" routeconfigurations.networking.liqo.io --subresource=status -n liqo-tenant-milan
done
for verb in create patch; do
    check "SA may $verb events" can "$verb" events -n liqo-tenant-milan
done
for denied in "create routeconfigurations.networking.liqo.io" "update routeconfigurations.networking.liqo.io" \
    "patch routeconfigurations.networking.liqo.io" "delete routeconfigurations.networking.liqo.io" \
    "get secrets" "list pods" "create pods" "update nodes" "delete events"; do
    # shellcheck disable=SC2086
    check "SA may not $denied" cannot $denied -n liqo
done
if token=$(k create token routecfg -n liqo 2>&1); then
    expect_ok "SA token lists RouteConfigurations" k --token="$token" get routeconfigurations -A
    expect_reject "SA token cannot delete a RouteConfiguration" 'forbidden' \
        k --token="$token" delete -n liqo routeconfiguration/rome-worker-gw-node --dry-run=server
else
    bad "kubectl create token: $token"
fi
expect_ok "examples/rbac-finalizer.yaml applies" k apply -f "$ROOT/deploy/examples/rbac-finalizer.yaml"
check "with rbac-finalizer.yaml the SA may patch (finalizers)" can patch routeconfigurations.networking.liqo.io -n liqo
gw_sa=system:serviceaccount:liqo-tenant-milan:routecfg-gateway
expect_ok "gateway example RBAC applies" k apply -f - <<<"$(python3 - "$ROOT/deploy/examples/gateway-example.yaml" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---\n")
print("\n---\n".join(d for d in docs if "kind: Deployment" not in d))
PY
)"
check "gateway sidecar SA may watch routeconfigurations" can_as "$gw_sa" watch routeconfigurations.networking.liqo.io -A

# --- systemd unit ------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    unit_dir=$WORK/unit
    mkdir -p "$unit_dir"
    sed "s#/usr/local/bin/routecfg#$(command -v true)#" "$ROOT/deploy/routecfg.service" >"$unit_dir/routecfg.service"
    if out=$(systemd-analyze verify "$unit_dir/routecfg.service" 2>&1) && [ -z "$out" ]; then
        ok "routecfg.service: systemd-analyze verify clean"
    else
        bad "routecfg.service: $out"
    fi
else
    bad "systemd-analyze missing: cannot check routecfg.service"
fi

echo
echo "validate-manifests: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
