#!/usr/bin/env bash
# Engine benchmark (issue: routing engine). Prints figures; asserts nothing
# about time. In a fresh network namespace per size, applies a
# gw-node-shaped table (one link-scope route + N /32 routes via a gateway,
# like the seed's rome-worker-gw-node) and compares with `ip -batch` adding
# the same routes, in the same run.
#
#   tests/bench/engine.sh [N ...]      default: 1000 10000 100000
#
# Needs root (network namespaces). Only the benchmark's own namespaces
# are touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "engine.sh: needs root (ip netns)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || {
    apt-get install -y -qq --no-install-recommends time >/dev/null
}

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 100000)

cargo build --release --quiet
bin=$PWD/target/release/routecfg
work=$(mktemp -d)
ns=rcfg-bench-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# gen N PCT_CHANGED > json: the table as a RouteConfiguration in JSON.
gen() {
    awk -v n="$1" -v pct="$2" 'BEGIN {
        printf "{\"apiVersion\":\"networking.liqo.io/v1beta1\",\"kind\":\"RouteConfiguration\",";
        printf "\"metadata\":{\"name\":\"bench-gw-node\",\"namespace\":\"liqo\"},";
        printf "\"spec\":{\"table\":{\"name\":\"bench-worker\",\"rules\":[";
        printf "{\"dst\":\"10.80.0.2/32\",\"routes\":[{\"dev\":\"liqo.bench\",\"dst\":\"10.80.0.2/32\",\"scope\":\"link\"}]},";
        printf "{\"dst\":\"10.80.0.3/32\",\"routes\":[{\"dev\":\"liqo.bench\",\"dst\":\"10.80.0.3/32\",\"scope\":\"link\"}]},";
        printf "{\"iif\":\"liqo-tunnel\",\"routes\":[";
        changed = int(n * pct / 100);
        for (i = 0; i < n; i++) {
            gw = (i < changed) ? "10.80.0.3" : "10.80.0.2";
            printf "%s{\"dst\":\"10.%d.%d.%d/32\",\"gw\":\"%s\"}", (i ? "," : ""), 100 + int(i / 65536), int(i / 256) % 256, i % 256, gw;
        }
        printf "]}]}}}\n";
    }'
}

# batch N TABLE > file: the same routes as `ip -batch` lines.
batch() {
    awk -v n="$1" -v t="$2" 'BEGIN {
        printf "route add 10.80.0.2/32 dev liqo.bench scope link table %d\n", t;
        printf "route add 10.80.0.3/32 dev liqo.bench scope link table %d\n", t;
        for (i = 0; i < n; i++)
            printf "route add 10.%d.%d.%d/32 via 10.80.0.2 table %d\n", 100 + int(i / 65536), int(i / 256) % 256, i % 256, t;
    }'
}

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# run_timed CMD...: runs CMD, sets $ms (wall), $cpu (user+sys ms; steadier
# than wall on a shared machine) and $rss (peak KiB).
run_timed() {
    local t0
    t0=$(date +%s%N)
    /usr/bin/time -f '%M %U %S' -o "$work/rss" "$@" >"$work/out" 2>&1 || {
        echo "command failed: $*" >&2; cat "$work/out" >&2; exit 1; }
    ms=$(ms_since "$t0")
    read -r rss u s < <(tail -n1 "$work/rss")
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%d", (u + s) * 1000 }')
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.2f", a / b }'; }

printf '%-8s %14s %14s %14s %14s %7s %8s %8s %10s\n' routes cold_ms noop_ms 1pct_ms ipbatch_ms ratio rss_cold rss_noop routes/s
printf '%-8s %14s %14s %14s %14s %7s %8s %8s %10s\n' '' '(wall/cpu)' '(wall/cpu)' '(wall/cpu)' '(wall/cpu)' '' MiB MiB ''
for n in "${sizes[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link add liqo.bench type veth peer name bench.peer
    ip -n "$ns" link set liqo.bench up
    ip -n "$ns" link set bench.peer up
    gen "$n" 0 >"$work/table.json"
    gen "$n" 1 >"$work/table-1pct.json"
    batch "$n" 4242 >"$work/batch.txt"

    run_timed ip netns exec "$ns" "$bin" apply -f "$work/table.json" --rt-tables none
    cold=$ms; cold_cpu=$cpu; cold_rss=$rss
    run_timed ip netns exec "$ns" "$bin" apply -f "$work/table.json" --rt-tables none
    noop=$ms; noop_cpu=$cpu; noop_rss=$rss
    run_timed ip netns exec "$ns" "$bin" apply -f "$work/table-1pct.json" --rt-tables none
    pct=$ms; pct_cpu=$cpu
    count=$(ip -n "$ns" route show table "$("$bin" table-id bench-worker | cut -f1)" | wc -l)
    [ "$count" -eq $((n + 2)) ] || { echo "expected $((n + 2)) routes, kernel has $count" >&2; exit 1; }
    run_timed ip -n "$ns" -batch "$work/batch.txt"
    ipb=$ms; ipb_cpu=$cpu
    mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
    printf '%-8s %14s %14s %14s %14s %7s %8s %8s %10s\n' "$n" "$cold/$cold_cpu" "$noop/$noop_cpu" \
        "$pct/$pct_cpu" "$ipb/$ipb_cpu" "$(ratio "$cold" "$ipb")" "$(mib "$cold_rss")" "$(mib "$noop_rss")" \
        "$(awk -v n="$n" -v ms="$cold" 'BEGIN { if (ms == 0) ms = 1; printf "%d", n * 1000 / ms }')"
done
cat <<'NOTE'

ratio = routecfg cold apply / `ip -batch` adding the same routes, wall time
(same run; both parse their input and talk netlink; <= 1.0 means routecfg is
at least as fast). cpu = user + sys of the process (10 ms resolution).
Upstream algorithm on this machine kind (shared/notes/measurements.md):
  1,000 routes: 448 ms cold, 1,232 ms no-op;  2,000: 1,761 ms cold, 4,697 ms no-op.
NOTE
