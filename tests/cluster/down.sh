#!/usr/bin/env bash
# Stops the cluster tests/cluster/up.sh started in DIR and removes what it
# created outside DIR: its processes (by the PIDs it recorded, checked
# against their start times), the containers its containerd ran (through
# that containerd, then their shims by PID), the kubelets' cgroups, the pod
# log directories the kubelets wrote under /var/log, and its network
# namespaces. DIR itself (logs, certificates) stays. Idempotent; needs root.
#
#   tests/cluster/down.sh DIR
set -uo pipefail

say() { echo "cluster-down: $*" >&2; }
[[ $# -eq 1 ]] || {
	say "usage: $0 DIR"
	exit 2
}
DIR=$(realpath -m "$1")
[[ -f $DIR/pids ]] || {
	say "$DIR/pids missing: nothing started there"
	exit 0
}
failed=0

# PID of a recorded process if it is still the one up.sh started.
alive() { # pid start
	[[ -r /proc/$1/stat ]] && [[ $(awk '{print $22}' "/proc/$1/stat" 2>/dev/null) == "$2" ]]
}

stop_pid() { # name pid start
	local name=$1 pid=$2 start=$3 i
	alive "$pid" "$start" || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		alive "$pid" "$start" || return 0
		sleep 0.1
	done
	say "$name ($pid) ignored SIGTERM for 10 s: SIGKILL"
	kill -KILL "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		alive "$pid" "$start" || return 0
		sleep 0.1
	done
	say "$name ($pid) still running"
	failed=1
}

stop_matching() { # pattern: stop recorded processes whose name matches
	local name pid start
	while read -r name pid start; do
		# shellcheck disable=SC2053 # glob match on purpose
		[[ $name == $1 ]] && stop_pid "$name" "$pid" "$start"
	done <"$DIR/pids"
}

# 1. kubelets first, so nothing restarts the containers.
stop_matching 'kubelet-*'

# 2. every container of each node, through its own containerd, then any shim
#    left (only shims serving this containerd's socket).
if [[ -f $DIR/nodes ]]; then
	while read -r node _ns; do
		nd=$DIR/$node
		sock=$nd/containerd/containerd.sock
		if [[ -S $sock ]] && ctr -a "$sock" version >/dev/null 2>&1; then
			for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
				ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1
			done
			for id in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
				ctr -a "$sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1
			done
		fi
		for f in "$nd"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
			[[ -f $f ]] || continue
			pid=$(cat "$f")
			if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$sock"; then
				kill -KILL "$pid" 2>/dev/null
			fi
		done
	done <"$DIR/nodes"
fi

# 3. containerds, then the control plane (reverse start order) and the door.
stop_matching 'containerd-*'
for name in socat kube-scheduler kube-controller-manager kube-apiserver etcd; do
	stop_matching "$name"
done

# 4. Pod log directories the kubelets wrote (kubelet 1.20 always uses
#    /var/log/pods and /var/log/containers), by this cluster's pod UIDs:
#    every pod a kubelet was given is in its log (`SyncLoop (ADD, "api"):
#    "name_namespace(uid)"`), deleted ones included.
if [[ -f $DIR/nodes ]]; then
	while read -r node _ns; do
		{
			ls "$DIR/$node/kubelet/pods" 2>/dev/null
			grep -oE 'SyncLoop \(ADD, "api"\): .*' "$DIR/logs/kubelet-$node.log" 2>/dev/null |
				grep -oE '\([0-9a-f-]{36}\)' | tr -d '()'
		} | sort -u | while read -r uid; do
			[[ $uid =~ ^[0-9a-f-]{36}$ ]] || continue
			for d in /var/log/pods/*_"$uid"; do
				[[ -d $d ]] || continue
				find /var/log/containers -maxdepth 1 -lname "$d/*" -delete 2>/dev/null
				rm -rf "$d"
			done
		done
	done <"$DIR/nodes"
fi

# 5. cgroups: the kubelets' roots, deepest first (empty once the processes
#    are gone).
if [[ -f $DIR/cgroups ]]; then
	while read -r cg; do
		[[ -d $cg ]] || continue
		for ((i = 0; i < 20; i++)); do
			find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
			[[ -d $cg ]] || break
			sleep 0.25
		done
		if [[ -d $cg ]]; then
			say "cgroup $cg not removable (processes left: $(cat "$cg/cgroup.procs" 2>/dev/null | wc -l))"
			failed=1
		fi
	done <"$DIR/cgroups"
fi

# 6. network namespaces.
if [[ -f $DIR/netns ]]; then
	while read -r ns; do
		[[ -n $ns ]] || continue
		if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
			ip netns del "$ns" || failed=1
		fi
	done <"$DIR/netns"
fi

if ((failed)); then
	say "done, with the errors above"
	exit 1
fi
: >"$DIR/pids"
say "done"
