#!/usr/bin/env bash
# Agent benchmark against a real kube-apiserver + etcd. Prints figures;
# asserts nothing about time (it fails only when the agent does not
# converge at all).
#
#   tests/bench/agent.sh
#
# Environment:
#   CHANGES=200       spec changes timed (kubectl patch -> route in kernel)
#   REPAIRS=100       hand deletions timed (deleted -> re-added), with the
#                     API server running and again with it stopped (SIGSTOP)
#   OBJECTS=100 ROUTES_PER_OBJECT=100   size of the memory figure
#   IDLE_SECONDS=60   length of the idle CPU measurement
#   FLOOD_SECONDS=60 FLOOD_WRITERS=2   watch-event flood: writers patch an
#                     annotation of the OBJECTS objects round-robin for this
#                     long (each patch is one MODIFIED event for the agent;
#                     metadata only, so no kernel work), while the agent's
#                     CPU and RSS are measured
#   ROUTECFG_CACHE    where .ci/setup-kube.sh put kube-apiserver
#   CRD=PATH          the CRD to install (default: upstream's, from shared/)
#
# Like the test harness (tests/common/kube.rs), etcd and kube-apiserver run
# in a network namespace of their own with a bridge, and the agent runs in a
# second namespace wired into it; nothing touches the host's network. Kernel
# times come from `ip monitor route` lines stamped as they are read.
# Needs root and .ci/setup-kube.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "agent.sh: needs root (ip netns)" >&2; exit 1; }

CHANGES=${CHANGES:-200}
REPAIRS=${REPAIRS:-100}
OBJECTS=${OBJECTS:-100}
ROUTES_PER_OBJECT=${ROUTES_PER_OBJECT:-100}
IDLE_SECONDS=${IDLE_SECONDS:-60}
FLOOD_SECONDS=${FLOOD_SECONDS:-60}
FLOOD_WRITERS=${FLOOD_WRITERS:-2}
APISERVER=${ROUTECFG_CACHE:-/var/cache/routecfg}/kube-apiserver-1.20.2/kube-apiserver
# The team's shared/ directory sits beside one of the checkout's ancestors
# (as tests/common/mod.rs finds it); ROUTECFG_SHARED overrides.
shared=${ROUTECFG_SHARED:-}
if [ -z "$shared" ]; then
    d=$PWD
    while [ "$d" != / ] && [ ! -d "$d/shared/fixtures" ]; do d=$(dirname "$d"); done
    shared=$d/shared
fi
CRD=${CRD:-$shared/upstream/routeconfigurations.networking.liqo.io.yaml}
for tool in "$APISERVER" /usr/bin/etcd /usr/bin/kubectl /usr/bin/openssl /usr/bin/curl; do
    [ -x "$tool" ] || { echo "agent.sh: $tool missing: run .ci/setup-kube.sh" >&2; exit 1; }
done
[ -f "$CRD" ] || { echo "agent.sh: CRD not found at $CRD (set CRD=...)" >&2; exit 1; }

say() { echo "agent.sh: $*" >&2; }

say "building routecfg (release)"
cargo build --release --quiet
bin=$PWD/target/release/routecfg

work=$(mktemp -d)
api=rcfg-bench-api-$$
node=rcfg-bench-node-$$
api_ip=198.18.0.1
node_ip=198.18.0.2
cleanup() {
    # Only processes this script started live in these namespaces.
    for ns in "$node" "$api"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    for _ in $(seq 100); do
        [ -z "$(ip netns pids "$node" 2>/dev/null)$(ip netns pids "$api" 2>/dev/null)" ] && break
        sleep 0.1
    done
    for ns in "$node" "$api"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -n "${KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# wait_until DESCRIPTION SECONDS CMD...: polls CMD until it succeeds.
wait_until() {
    local what=$1 limit=$2 start
    shift 2
    start=$SECONDS
    until "$@"; do
        if ((SECONDS - start > limit)); then
            say "gave up waiting for $what"
            [ -f "$work/agent.log" ] && tail -n 20 "$work/agent.log" >&2
            exit 1
        fi
        sleep 0.01
    done
}

# --- network: the API namespace with a bridge, the node wired into it ----
ip netns add "$api"
ip netns add "$node"
ip -n "$api" link set lo up
ip -n "$node" link set lo up
ip -n "$api" link add br0 type bridge
ip -n "$api" addr add "$api_ip/24" dev br0
ip -n "$api" link set br0 up
ip -n "$api" link add v0 type veth peer name kapi netns "$node"
ip -n "$api" link set v0 master br0 up
ip -n "$node" addr add "$node_ip/24" dev kapi
ip -n "$node" link set kapi up
# The node's own link for the routes' gateways (a veth whose peer stands in
# for the far end).
ip -n "$node" link add bench0 type veth peer name bench0p
ip -n "$node" addr add 10.90.0.1/24 dev bench0
ip -n "$node" link set bench0p up
ip -n "$node" link set bench0 up

# --- etcd and kube-apiserver ---------------------------------------------
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$token,admin,admin,system:masters" >"$work/tokens.csv"
mkdir -p "$work/certs"
ip netns exec "$api" /usr/bin/etcd --data-dir="$work/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 >"$work/etcd.log" 2>&1 &
ip netns exec "$api" "$APISERVER" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$api_ip" --secure-port=6443 \
    --cert-dir="$work/certs" --token-auth-file="$work/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$work/sa.pub" --service-account-signing-key-file="$work/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount >"$work/apiserver.log" 2>&1 &
cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: https://$api_ip:6443
    certificate-authority: $work/certs/apiserver.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: bench
  context: {cluster: bench, user: admin}
current-context: bench
EOF
kc() { ip netns exec "$api" /usr/bin/kubectl --kubeconfig="$work/kubeconfig" --cache-dir="$work/kcache" "$@"; }
ready() { kc --request-timeout=5s get --raw /readyz >/dev/null 2>&1; }
say "starting etcd and kube-apiserver"
wait_until "kube-apiserver /readyz" 90 ready
kc apply -f "$CRD" >/dev/null 2>&1
kc wait --for=condition=Established --timeout=60s crd/routeconfigurations.networking.liqo.io >/dev/null
serves() { kc get routeconfigurations.networking.liqo.io -A -o name >/dev/null 2>&1; }
wait_until "the RouteConfiguration API" 30 serves
kc create namespace liqo >/dev/null

# --- the agent -----------------------------------------------------------
RUST_LOG=info ip netns exec "$node" "$bin" run --kubeconfig "$work/kubeconfig" \
    --role fabric --host-name bench --rt-tables "$work/rt_tables" \
    --metrics-addr 127.0.0.1:9433 >"$work/agent.log" 2>&1 &
agent=$!
agent_ready() { grep -qs "listed 0 object" "$work/agent.log"; }
wait_until "the agent's first list" 30 agent_ready
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$agent/status"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$agent/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$agent/stat"; }
rss_empty=$(rss_kib)

# --- 1. spec change -> route in the kernel -------------------------------
lat_table=$("$bin" table-id lat | cut -f1)
cat >"$work/lat.json" <<EOF
{"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
 "metadata": {"name": "lat", "namespace": "liqo",
              "labels": {"networking.liqo.io/route-category": "fabric"}},
 "spec": {"table": {"name": "lat", "rules": [
   {"dst": "10.71.0.0/16", "routes": [{"dst": "10.71.255.255/32", "gw": "10.90.0.2"}]}]}}}
EOF
mon="$work/monitor.txt"
: >"$mon"
# Every route event, stamped when read (ip flushes each line).
ip -n "$node" monitor route | while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done >"$mon" &
sleep 0.5
kc apply -f "$work/lat.json" >/dev/null
in_kernel() { ip -n "$node" route show table "$lat_table" | grep -q "^$1 "; }
wait_until "the first route" 30 in_kernel 10.71.255.255
# stamp_of DST FROM_LINE [Deleted]: monitor time of DST's add (or delete).
stamp_of() {
    awk -v d="$1" -v from="$2" -v del="${3:-}" 'NR > from {
        if (del == "" && $2 == d) { print $1; exit }
        if (del != "" && $2 == "Deleted" && $3 == d) { print $1; exit }
    }' "$mon"
}
seen() { [ -n "$(stamp_of "$1" "$2" "${3:-}")" ]; }

say "timing $CHANGES spec changes"
: >"$work/changes.txt"
for ((i = 1; i <= CHANGES; i++)); do
    dst="10.71.$((i / 256)).$((i % 256))"
    from=$(wc -l <"$mon")
    t0=$EPOCHREALTIME
    kc patch routeconfigurations.networking.liqo.io lat -n liqo --type=json \
        -p "[{\"op\":\"replace\",\"path\":\"/spec/table/rules/0/routes/0/dst\",\"value\":\"$dst/32\"}]" >/dev/null
    t1=$EPOCHREALTIME
    wait_until "route $dst" 30 seen "$dst" "$from"
    echo "$t0 $t1 $(stamp_of "$dst" "$from")" >>"$work/changes.txt"
done

say "timing $REPAIRS hand deletions"
: >"$work/repairs.txt"
for ((k = 1; k <= REPAIRS; k++)); do
    from=$(wc -l <"$mon")
    ip -n "$node" route del "$dst/32" table "$lat_table"
    wait_until "repair of $dst" 30 seen "$dst" "$from"
    echo "$(stamp_of "$dst" "$from" Deleted) $(stamp_of "$dst" "$from")" >>"$work/repairs.txt"
done

# --- 1b. the same hand deletions while kube-apiserver is stopped ---------
# SIGSTOP: connections stay open and nothing answers. A link goes first, so
# an object flips to not-applied and its status and Event writes are stuck
# behind the stopped server while the repairs are timed.
apiserver_pid=""
for pid in $(ip netns pids "$api"); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = kube-apiserver ] && apiserver_pid=$pid
done
[ -n "$apiserver_pid" ] || { say "kube-apiserver pid not found"; exit 1; }
ip -n "$node" link add flip0 type veth peer name flip0p
ip -n "$node" link set flip0p up
ip -n "$node" link set flip0 up
cat >"$work/flip.json" <<EOF
{"apiVersion": "networking.liqo.io/v1beta1", "kind": "RouteConfiguration",
 "metadata": {"name": "flip", "namespace": "liqo",
              "labels": {"networking.liqo.io/route-category": "fabric"}},
 "spec": {"table": {"name": "flip", "rules": [
   {"dst": "10.69.0.0/16", "routes": [{"dst": "10.69.0.0/16", "dev": "flip0", "scope": "link"}]}]}}}
EOF
kc apply -f "$work/flip.json" >/dev/null
flip_says() {
    [ "$(kc get routeconfigurations.networking.liqo.io flip -n liqo \
        -o jsonpath='{.status.conditions[0].status}')" = "$1" ]
}
wait_until "flip Applied=True" 30 flip_says True
say "timing $REPAIRS hand deletions with kube-apiserver stopped"
kill -STOP "$apiserver_pid"
ip -n "$node" link del flip0
sleep 1
: >"$work/repairs_stopped.txt"
for ((k = 1; k <= REPAIRS; k++)); do
    from=$(wc -l <"$mon")
    ip -n "$node" route del "$dst/32" table "$lat_table"
    wait_until "repair of $dst (API server stopped)" 30 seen "$dst" "$from"
    echo "$(stamp_of "$dst" "$from" Deleted) $(stamp_of "$dst" "$from")" >>"$work/repairs_stopped.txt"
done
kill -CONT "$apiserver_pid"
t_cont=$EPOCHREALTIME
wait_until "flip Applied=False after SIGCONT" 120 flip_says False
t_status=$EPOCHREALTIME
for pid in $(ip netns pids "$node"); do [ "$pid" = "$agent" ] || kill "$pid" 2>/dev/null || true; done

# percentiles FILE EXPR: p50/p99/max (ms) of EXPR over the file's columns.
percentiles() {
    awk "{ print ($2) * 1000 }" "$1" | sort -n | awk '{ v[NR] = $1 } END {
        p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1];
        printf "p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms   (n=%d)", p50, p99, v[NR], NR }'
}

# --- 2. memory with many objects -----------------------------------------
total=$((OBJECTS * ROUTES_PER_OBJECT))
say "applying $OBJECTS objects with $total routes"
awk -v n="$OBJECTS" -v r="$ROUTES_PER_OBJECT" 'BEGIN {
    printf "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [";
    for (o = 0; o < n; o++) {
        printf "%s{\"apiVersion\": \"networking.liqo.io/v1beta1\", \"kind\": \"RouteConfiguration\",", (o ? "," : "");
        printf "\"metadata\": {\"name\": \"bench-%d\", \"namespace\": \"liqo\",", o;
        printf "\"labels\": {\"networking.liqo.io/route-category\": \"fabric\"}},";
        printf "\"spec\": {\"table\": {\"name\": \"bench-%d\", \"rules\": [{\"dst\": \"10.%d.%d.0/24\", \"routes\": [", o, 72 + int(o / 256), o % 256;
        for (i = 0; i < r; i++)
            printf "%s{\"dst\": \"10.%d.%d.%d/32\", \"gw\": \"10.90.0.2\"}", (i ? "," : ""), 72 + int(o / 256), o % 256, i;
        printf "]}]}}}";
    }
    printf "]}\n";
}' >"$work/many.json"
t0=$EPOCHREALTIME
kc apply -f "$work/many.json" >/dev/null
t1=$EPOCHREALTIME
all_routes() { [ "$(ip -n "$node" route show table all proto 114 | wc -l)" -ge $((total + 1)) ]; }
wait_until "$total routes in the kernel" 300 all_routes
t2=$EPOCHREALTIME
# Conditions written for every object (status traffic done).
all_applied() {
    [ "$(kc get routeconfigurations.networking.liqo.io -n liqo \
        -o jsonpath='{range .items[*]}{.status.conditions[0].status}{"\n"}{end}' | grep -c True)" -ge $((OBJECTS + 1)) ]
}
wait_until "Applied=True on every object" 300 all_applied
t3=$EPOCHREALTIME
rss_full=$(rss_kib)
hwm_full=$(hwm_kib)

# --- 3. idle CPU ---------------------------------------------------------
say "measuring idle CPU for $IDLE_SECONDS s"
sleep 2
c0=$(cpu_ticks)
sleep "$IDLE_SECONDS"
c1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
rss_idle=$(rss_kib)

# --- 4. watch-event flood ------------------------------------------------
# Writers patch one annotation of the bench objects round-robin through
# curl, each a kept-alive HTTPS connection (a curl config of 200 requests
# per round; kubectl would spend the machine on process starts). Every
# patch changes the object, so the API server sends the agent one MODIFIED
# event of the whole object (~100 routes). Meanwhile the agent's RSS is
# sampled every 0.5 s.
flood_writer() {
    local w=$1 i=0 k o cfg="$work/flood-$w.cfg"
    local end=$((SECONDS + FLOOD_SECONDS))
    while ((SECONDS < end)); do
        : >"$cfg"
        for ((k = 0; k < 200; k++)); do
            i=$((i + 1))
            o=$(((i * FLOOD_WRITERS + w) % OBJECTS))
            # `next` separates requests (one after the last is an error).
            ((k == 0)) || echo next >>"$cfg"
            cat >>"$cfg" <<EOF
url = "https://$api_ip:6443/apis/networking.liqo.io/v1beta1/namespaces/liqo/routeconfigurations/bench-$o"
request = "PATCH"
cacert = "$work/certs/apiserver.crt"
header = "Authorization: Bearer $token"
header = "Content-Type: application/merge-patch+json"
data = "{\"metadata\":{\"annotations\":{\"bench-flood\":\"$w-$i\"}}}"
silent
output = "/dev/null"
write-out = "%{http_code}\\n"
EOF
        done
        ip netns exec "$api" curl -K "$cfg" >>"$work/flood-$w.codes" 2>>"$work/flood.err" || true
    done
}
say "watch-event flood for $FLOOD_SECONDS s ($FLOOD_WRITERS writers)"
: >"$work/flood-rss.txt"
( while :; do rss_kib >>"$work/flood-rss.txt"; sleep 0.5; done ) &
sampler=$!
f0=$(cpu_ticks)
t_flood0=$EPOCHREALTIME
writers=()
for ((w = 0; w < FLOOD_WRITERS; w++)); do flood_writer "$w" & writers+=($!); done
wait "${writers[@]}"
t_flood1=$EPOCHREALTIME
f1=$(cpu_ticks)
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
kill -0 "$agent" 2>/dev/null || { say "the agent died during the flood"; tail -n 20 "$work/agent.log" >&2; exit 1; }
flood_events=$(cat "$work"/flood-*.codes | grep -c '^200$' || true)
flood_failed=$(cat "$work"/flood-*.codes | grep -vc '^200$' || true)
rss_flood_max=$(sort -n "$work/flood-rss.txt" | tail -n 1)
rss_after=$(rss_kib)
# The agent still follows the API after the flood: a spec change lands.
kc patch routeconfigurations.networking.liqo.io lat -n liqo --type=json \
    -p '[{"op":"replace","path":"/spec/table/rules/0/routes/0/dst","value":"10.71.254.254/32"}]' >/dev/null
wait_until "a spec change after the flood" 60 in_kernel 10.71.254.254

echo
echo "routecfg agent benchmark (kube-apiserver 1.20.2 + etcd, $(nproc) cores, release build)"
printf '%-44s %s\n' "kubectl patch returned -> route in kernel:" "$(percentiles "$work/changes.txt" '$3 - $2')"
printf '%-44s %s\n' "kubectl patch started  -> route in kernel:" "$(percentiles "$work/changes.txt" '$3 - $1')"
printf '%-44s %s\n' "(kubectl patch itself, start -> return):" "$(percentiles "$work/changes.txt" '$2 - $1')"
printf '%-44s %s\n' "hand deletion -> route back (kernel events):" "$(percentiles "$work/repairs.txt" '$2 - $1')"
printf '%-44s %s\n' "same, kube-apiserver stopped (SIGSTOP):" "$(percentiles "$work/repairs_stopped.txt" '$2 - $1')"
awk -v a="$t_cont" -v b="$t_status" 'BEGIN {
    printf "%-44s %.2f s\n", "SIGCONT -> pending Applied=False written:", b - a }'
echo "  (before the non-blocking client, a repair waited 25.1 s behind status writes here)"
echo "  (kubectl needs a few ms to exit after the API answered: the route is often in"
echo "   the kernel before it returns, hence values around or below zero)"
echo "  (kubectl apply creates the objects one by one; the agent applies them as they come)"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v n="$OBJECTS" -v r="$total" 'BEGIN {
    printf "%-44s %.2f s after kubectl apply started, %.2f s after it returned\n", n " objects / " r " routes in kernel:", c - a, c - b;
    printf "%-44s %.2f s after kubectl apply started, %.2f s after it returned\n", "Applied=True written on all of them:", d - a, d - b }'
awk -v e="$rss_empty" -v f="$rss_full" -v h="$hwm_full" -v n="$OBJECTS" -v r="$total" 'BEGIN {
    printf "%-44s %.1f MiB\n", "RSS, no objects:", e / 1024;
    printf "%-44s %.1f MiB (peak %.1f MiB)\n", "RSS, " n " objects / " r " routes:", f / 1024, h / 1024 }'
awk -v t="$((c1 - c0))" -v hz="$hz" -v s="$IDLE_SECONDS" -v n="$OBJECTS" 'BEGIN {
    printf "%-44s %d ticks = %.2f s CPU in %d s (%.3f%%)\n", "CPU while idle, " n " objects:", t, t / hz, s, 100 * t / hz / s }'
awk -v t="$((f1 - f0))" -v hz="$hz" -v a="$t_flood0" -v b="$t_flood1" -v ev="$flood_events" \
    -v bad="$flood_failed" -v idle="$((c1 - c0))" -v is="$IDLE_SECONDS" 'BEGIN {
    d = b - a;
    printf "%-44s %d ticks = %.2f s CPU in %.1f s (%.2f%%; idle %.3f%%)\n", "CPU during the watch-event flood:", t, t / hz, d, 100 * t / hz / d, 100 * idle / hz / is;
    printf "%-44s %d MODIFIED events in %.1f s = %.0f/s (%d patches refused)\n", "  flood:", ev, d, ev / d, bad;
    if (ev > 0) printf "%-44s %.3f ms\n", "  agent CPU per watch event:", 1000 * t / hz / ev }'
awk -v i="$rss_idle" -v m="$rss_flood_max" -v e="$rss_after" 'BEGIN {
    printf "%-44s %.1f MiB max, %.1f MiB after, next to %.1f MiB idle (x%.2f)\n", "RSS during the watch-event flood:", m / 1024, e / 1024, i / 1024, m / i }'
