#!/usr/bin/env bash
# A real one- (or two-) node Kubernetes 1.20 cluster for the tests, entirely
# inside network namespaces this script creates, one per node plus one for
# the control plane. The host's network is never configured: the only thing
# on the host's side is a socat listener on 127.0.0.1 forwarding into the
# control-plane namespace, so the host can reach the API server.
#
#   tests/cluster/up.sh [--nodes 1|2] DIR
#
# DIR (created if missing, must not hold a running cluster) receives all
# state, certificates, logs (DIR/logs/) and:
#   DIR/admin.kubeconfig         admin, reachable from the host (the LAST
#                                line printed on stdout is its path)
#   DIR/admin-inside.kubeconfig  admin, reachable from inside the namespaces
#   DIR/nodes                    "<node name> <network namespace>" per line
#   DIR/pids, DIR/netns, DIR/cgroups   what tests/cluster/down.sh undoes
# On failure everything started so far is stopped again (down.sh).
#
# Control plane (namespace <tag>-cp, bridge 198.18.0.1/24, the `kubernetes`
# service IP 10.96.0.1 on its loopback): etcd, kube-apiserver on :443,
# kube-controller-manager, kube-scheduler. Nodes (namespace <tag>-n<i>,
# 198.18.0.1<i>/24): containerd + kubelet, named rome-worker and
# rome-control-plane after the seed. Each node's containerd and kubelet share
# a private mount namespace, so their mounts never reach the host. No CNI:
# every pod the tests run uses hostNetwork (see tests/README.md).
#
# Needs root and .ci/setup-kube.sh (binaries, containerd, runc). The image
# from deploy/build-image.sh is imported when ROUTECFG_IMAGE_ARCHIVE names
# its archive (default: target/image/routecfg.oci.tar if present).
# Environment: ROUTECFG_CACHE (as setup-kube.sh), ROUTECFG_SA_MAX_EXPIRATION
# (kube-apiserver --service-account-max-token-expiration, e.g. 1h).
set -Eeuo pipefail

say() { echo "cluster-up: $*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

NODES=1
while [[ $# -gt 0 ]]; do
	case $1 in
	--nodes)
		NODES=${2:-}
		shift 2
		;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[[ $# -eq 1 ]] || die "usage: $0 [--nodes 1|2] DIR"
[[ $NODES == 1 || $NODES == 2 ]] || die "--nodes must be 1 or 2"
[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, cgroups, containerd)"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$(realpath -m "$1")
K8S_VERSION=1.20.2
CACHE_ROOT=${ROUTECFG_CACHE:-/var/cache/routecfg}
bin() { echo "$CACHE_ROOT/$1-$K8S_VERSION/$1"; }
PAUSE_BIN=$CACHE_ROOT/pause-$K8S_VERSION/pause
PAUSE_IMAGE=localhost/routecfg-pause:$K8S_VERSION
IMAGE_ARCHIVE=${ROUTECFG_IMAGE_ARCHIVE:-$ROOT/target/image/routecfg.oci.tar}

for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
	[[ -x $(bin "$b") ]] || die "$(bin "$b") missing: run .ci/setup-kube.sh"
done
[[ -x $PAUSE_BIN ]] || die "$PAUSE_BIN missing: run .ci/setup-kube.sh"
for tool in etcd containerd containerd-shim-runc-v2 runc ctr kubectl openssl socat nsenter unshare ss; do
	command -v "$tool" >/dev/null || die "$tool not found: run .ci/setup-kube.sh"
done
if [[ -s $DIR/pids ]]; then
	die "$DIR already holds a cluster (DIR/pids); run tests/cluster/down.sh $DIR first"
fi

mkdir -p "$DIR/logs" "$DIR/pki"
: >"$DIR/pids"
: >"$DIR/netns"
: >"$DIR/cgroups"
: >"$DIR/nodes"

on_error() {
	say "failed; last lines of the logs in $DIR/logs:"
	local f
	for f in "$DIR"/logs/*.log; do
		[[ -f $f ]] || continue
		echo "--- $f" >&2
		tail -n 15 "$f" >&2
	done
	"$ROOT/tests/cluster/down.sh" "$DIR" >&2 || true
}
trap on_error ERR

# Records a started process by PID and start time (field 22 of
# /proc/PID/stat), so down.sh never signals a recycled PID.
record_pid() {
	local name=$1 pid=$2 start
	start=$(awk '{print $22}' "/proc/$pid/stat")
	echo "$name $pid $start" >>"$DIR/pids"
}

wait_for() {
	local what=$1 timeout=$2
	shift 2
	local deadline=$((SECONDS + timeout)) name pid start
	until "$@" >/dev/null 2>&1; do
		# Every process started so far must still run: fail at once, naming
		# it, rather than at the timeout.
		while read -r name pid start; do
			if [[ $(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null) != "$start" ]]; then
				say "$name (pid $pid) exited while waiting for $what; see $DIR/logs/"
				return 1
			fi
		done <"$DIR/pids"
		if ((SECONDS > deadline)); then
			say "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

# Namespace names derive from DIR so that two clusters (two DIRs) coexist.
TAG=rcc$(echo -n "$DIR" | sha1sum | cut -c1-6)
CP_NS=$TAG-cp
CP_IP=198.18.0.1
SERVICE_IP=10.96.0.1
SERVICE_CIDR=10.96.0.0/24
NODE_NAMES=(rome-worker rome-control-plane)

# --- network namespaces ------------------------------------------------------
say "namespaces $CP_NS and $NODES node(s)"
ip netns add "$CP_NS"
echo "$CP_NS" >>"$DIR/netns"
ip -n "$CP_NS" link set lo up
ip -n "$CP_NS" link add cluster type bridge
ip -n "$CP_NS" addr add "$CP_IP/24" dev cluster
ip -n "$CP_NS" link set cluster up
ip -n "$CP_NS" addr add "$SERVICE_IP/32" dev lo
for ((i = 1; i <= NODES; i++)); do
	ns=$TAG-n$i
	ip netns add "$ns"
	echo "$ns" >>"$DIR/netns"
	ip -n "$ns" link set lo up
	ip -n "$CP_NS" link add "node$i" type veth peer name eth0 netns "$ns"
	ip -n "$CP_NS" link set "node$i" master cluster up
	ip -n "$ns" addr add "198.18.0.1$i/24" dev eth0
	ip -n "$ns" link set eth0 up
	# Pods reach the API server through the `kubernetes` service IP, which
	# lives in the control-plane namespace (there is no kube-proxy).
	ip -n "$ns" route add "$SERVICE_CIDR" via "$CP_IP"
done

# --- certificates, keys and tokens -------------------------------------------
PKI=$DIR/pki
say "certificates in $PKI"
openssl_quiet() { openssl "$@" 2>>"$DIR/logs/openssl.log"; }
openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 7 -subj "/CN=routecfg-test-ca"
issue() { # name subject extensions
	openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2"
	printf '%s\n' "$3" >"$PKI/$1.ext"
	openssl_quiet x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
		-CAcreateserial -days 7 -out "$PKI/$1.crt" -extfile "$PKI/$1.ext"
}
issue apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$CP_IP,IP:$SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
openssl_quiet genrsa -out "$PKI/sa.key" 2048
openssl_quiet rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

token() { openssl rand -hex 16; }
ADMIN_TOKEN=$(token)
KCM_TOKEN=$(token)
SCHED_TOKEN=$(token)
{
	echo "$ADMIN_TOKEN,admin,admin,system:masters"
	echo "$KCM_TOKEN,system:kube-controller-manager,kcm"
	echo "$SCHED_TOKEN,system:kube-scheduler,scheduler"
} >"$PKI/tokens.csv"
declare -A NODE_TOKEN
for ((i = 1; i <= NODES; i++)); do
	name=${NODE_NAMES[i - 1]}
	NODE_TOKEN[$name]=$(token)
	echo "${NODE_TOKEN[$name]},system:node:$name,node-$name,system:nodes" >>"$PKI/tokens.csv"
done
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

kubeconfig() { # file server token
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: routecfg-cluster
  cluster:
    server: $2
    certificate-authority: $PKI/ca.crt
users:
- name: user
  user:
    token: $3
contexts:
- name: routecfg-cluster
  context: {cluster: routecfg-cluster, user: user}
current-context: routecfg-cluster
EOF
	chmod 600 "$1"
}
INSIDE=https://$CP_IP:443
kubeconfig "$DIR/admin-inside.kubeconfig" "$INSIDE" "$ADMIN_TOKEN"
kubeconfig "$DIR/kcm.kubeconfig" "$INSIDE" "$KCM_TOKEN"
kubeconfig "$DIR/scheduler.kubeconfig" "$INSIDE" "$SCHED_TOKEN"

# Not for background processes: `f &` forks a subshell, whose PID is not
# the program's. Those are started as plain commands (nsenter execs them).
in_cp() { nsenter --net="/run/netns/$CP_NS" -- "$@"; }
CP_NSENTER=(nsenter --net="/run/netns/$CP_NS" --)
kubectl_inside() {
	in_cp kubectl --kubeconfig "$DIR/admin-inside.kubeconfig" --cache-dir "$DIR/kubectl-cache" "$@"
}

# --- control plane -------------------------------------------------------------
say "etcd"
"${CP_NSENTER[@]}" etcd --data-dir "$DIR/etcd" --name default \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster default=http://127.0.0.1:2380 >"$DIR/logs/etcd.log" 2>&1 &
record_pid etcd $!

cat >"$DIR/audit-policy.yaml" <<'EOF'
# Who did what: the tests read user, pod binding and user agent from it.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF
say "kube-apiserver"
sa_max=()
if [[ -n ${ROUTECFG_SA_MAX_EXPIRATION:-} ]]; then
	sa_max=(--service-account-max-token-expiration="$ROUTECFG_SA_MAX_EXPIRATION")
fi
"${CP_NSENTER[@]}" "$(bin kube-apiserver)" \
	--etcd-servers=http://127.0.0.1:2379 \
	--bind-address=0.0.0.0 --secure-port=443 --insecure-port=0 --advertise-address="$CP_IP" \
	--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
	--client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
	--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
	--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types=InternalIP \
	--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
	--service-account-extend-token-expiration=false "${sa_max[@]}" \
	--feature-gates=BoundServiceAccountTokenVolume=true \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/logs/audit.log" \
	--profiling=false >"$DIR/logs/kube-apiserver.log" 2>&1 &
record_pid kube-apiserver $!
wait_for "kube-apiserver /readyz" 90 kubectl_inside get --raw /readyz

say "kube-controller-manager, kube-scheduler"
"${CP_NSENTER[@]}" "$(bin kube-controller-manager)" --kubeconfig="$DIR/kcm.kubeconfig" \
	--leader-elect=false --port=0 --secure-port=0 \
	--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
	--use-service-account-credentials=true \
	--feature-gates=BoundServiceAccountTokenVolume=true \
	--profiling=false >"$DIR/logs/kube-controller-manager.log" 2>&1 &
record_pid kube-controller-manager $!
"${CP_NSENTER[@]}" "$(bin kube-scheduler)" --kubeconfig="$DIR/scheduler.kubeconfig" \
	--leader-elect=false --port=0 --secure-port=0 \
	--profiling=false >"$DIR/logs/kube-scheduler.log" 2>&1 &
record_pid kube-scheduler $!

# --- the host's door: 127.0.0.1:PORT -> control-plane namespace :443 -----------
port=36443
while ss -Htln "sport = :$port" | grep -q .; do
	port=$((port + 1))
done
socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" \
	"EXEC:nsenter --net=/run/netns/$CP_NS -- socat STDIO TCP\\:$CP_IP\\:443" \
	>"$DIR/logs/socat.log" 2>&1 &
record_pid socat $!
kubeconfig "$DIR/admin.kubeconfig" "https://127.0.0.1:$port" "$ADMIN_TOKEN"
kubectl_host() { kubectl --kubeconfig "$DIR/admin.kubeconfig" --cache-dir "$DIR/kubectl-cache" "$@"; }
wait_for "the host's door to the API server" 30 kubectl_host get --raw /readyz

# --- the pause image (pod sandboxes) as an OCI archive ---------------------------
make_pause_archive() {
	local work=$DIR/pause-image out=$DIR/pause.oci.tar
	rm -rf "$work"
	mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
	install -m 0755 "$PAUSE_BIN" "$work/rootfs/pause"
	tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" pause
	blob() { # file -> digest; copies into blobs/
		local d
		d=$(sha256sum "$1" | cut -d' ' -f1)
		cp "$1" "$work/oci/blobs/sha256/$d"
		echo "$d"
	}
	local layer config manifest
	layer=$(blob "$work/layer.tar")
	printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$layer" >"$work/config.json"
	config=$(blob "$work/config.json")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
		"$config" "$(stat -c %s "$work/config.json")" "$layer" "$(stat -c %s "$work/layer.tar")" >"$work/manifest.json"
	manifest=$(blob "$work/manifest.json")
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
		"$manifest" "$(stat -c %s "$work/manifest.json")" "$PAUSE_IMAGE" >"$work/oci/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
	tar -C "$work/oci" -cf "$out" oci-layout index.json blobs
	echo "$out"
}
PAUSE_ARCHIVE=$(make_pause_archive)

# --- nodes -------------------------------------------------------------------------
# kubelet insists on these kernel settings and would write them on the host
# (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops are host-wide):
# inside the node's private mount namespace, files holding the values it
# wants are mounted over them, so it finds nothing to change.
KUBELET_SYSCTLS=(vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1)
CGROUP_HIERARCHIES=()
for h in /sys/fs/cgroup/*/; do
	h=${h%/}
	[[ $(stat -f -c %T "$h") == cgroupfs ]] && [[ -f $h/cgroup.procs ]] || continue
	[[ $h == */unified ]] && continue # cgroup v2 part of the hybrid layout: unused
	CGROUP_HIERARCHIES+=("$h")
done

start_node() { # index
	local i=$1 name=${NODE_NAMES[$1 - 1]} ns=$TAG-n$1 node_ip=198.18.0.1$1
	local nd=$DIR/$name
	say "node $name in $ns ($node_ip)"
	mkdir -p "$nd/containerd/root" "$nd/containerd/state" "$nd/containerd/opt" "$nd/cni" \
		"$nd/kubelet" "$nd/kubelet-pki" "$nd/volume-plugins" "$nd/sysctl" "$nd/runc"
	echo "$name $ns" >>"$DIR/nodes"

	# The kubelet's cgroup root: one per node and cluster, in every v1
	# hierarchy (kubelet requires it to exist).
	local cg=/$TAG-$name h
	for h in "${CGROUP_HIERARCHIES[@]}"; do
		mkdir -p "$h$cg"
		echo "$h$cg" >>"$DIR/cgroups"
		if [[ -f $h/cpuset.cpus ]]; then
			cat "$h/cpuset.cpus" >"$h$cg/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h$cg/cpuset.mems"
		fi
	done

	# No CNI plugin is installed: every pod here uses hostNetwork. A
	# placeholder network config makes containerd report the runtime network
	# ready (the node turns Ready); a pod without hostNetwork fails at
	# sandbox creation, loudly, since the plugin binary does not exist.
	cat >"$nd/cni/10-hostnetwork-only.conflist" <<'EOF'
{"cniVersion": "0.4.0", "name": "hostnetwork-only",
 "plugins": [{"type": "routecfg-no-pod-network"}]}
EOF
	local sock=$nd/containerd/containerd.sock
	cat >"$nd/containerd/config.toml" <<EOF
version = 2
root = "$nd/containerd/root"
state = "$nd/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Machines like these run us without CAP_SYS_RESOURCE: no process may
  # lower its oom_score_adj, and runc fails on the kubelet's -998 (pause)
  # and -997 (node-critical pods) with "can't get final child's PID from
  # pipe". This raises every container's value to containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$nd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$nd/cni-bin"
    conf_dir = "$nd/cni"
EOF
	local kv
	local binds=""
	for kv in "${KUBELET_SYSCTLS[@]}"; do
		local key=${kv%%=*}
		local file=$nd/sysctl/${key//\//_}
		echo "${kv#*=}" >"$file"
		binds+="mount --bind '$file' '/proc/sys/$key' && "
	done
	# containerd starts the node's private mount namespace (unshare -m:
	# private propagation, nothing leaks to the host); kubelet joins it.
	unshare -m -- bash -c "${binds} exec nsenter --net=/run/netns/$ns -- containerd --config '$nd/containerd/config.toml'" \
		>"$DIR/logs/containerd-$name.log" 2>&1 &
	local cpid=$!
	record_pid "containerd-$name" "$cpid"
	wait_for "containerd on $name" 30 ctr -a "$sock" version
	ctr -a "$sock" -n k8s.io images import "$PAUSE_ARCHIVE" >>"$DIR/logs/ctr-$name.log" 2>&1
	if [[ -f $IMAGE_ARCHIVE ]]; then
		ctr -a "$sock" -n k8s.io images import "$IMAGE_ARCHIVE" >>"$DIR/logs/ctr-$name.log" 2>&1
	fi

	kubeconfig "$nd/kubelet.kubeconfig" "$INSIDE" "${NODE_TOKEN[$name]}"
	cat >"$nd/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
cgroupRoot: $cg
cgroupsPerQOS: true
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
evictionHard: {memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
# Pod resyncs (and with them the rewrite of projected token volumes) every
# 10 s instead of every minute: the token-rotation check waits for one.
syncFrequency: 10s
EOF
	nsenter --mount="/proc/$cpid/ns/mnt" --net="/run/netns/$ns" -- "$(bin kubelet)" \
		--config="$nd/kubelet-config.yaml" --kubeconfig="$nd/kubelet.kubeconfig" \
		--container-runtime=remote --container-runtime-endpoint="unix://$sock" \
		--root-dir="$nd/kubelet" --cert-dir="$nd/kubelet-pki" \
		--volume-plugin-dir="$nd/volume-plugins" \
		--pod-infra-container-image="$PAUSE_IMAGE" \
		--hostname-override="$name" --node-ip="$node_ip" --v=2 \
		>"$DIR/logs/kubelet-$name.log" 2>&1 &
	record_pid "kubelet-$name" $!
}
for ((i = 1; i <= NODES; i++)); do
	start_node "$i"
done

node_ready() {
	[[ $(kubectl_host get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}
for ((i = 1; i <= NODES; i++)); do
	wait_for "node ${NODE_NAMES[i - 1]} Ready" 120 node_ready "${NODE_NAMES[i - 1]}"
done
# Pods need their namespace's default ServiceAccount (token controller).
wait_for "the default ServiceAccount" 60 kubectl_host -n default get serviceaccount default

trap - ERR
say "up: $NODES node(s); host kubeconfig below, inside one at $DIR/admin-inside.kubeconfig"
echo "$DIR/admin.kubeconfig"
