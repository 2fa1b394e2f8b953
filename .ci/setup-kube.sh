#!/usr/bin/env bash
# Provides a real kube-apiserver (plus etcd, kubectl, openssl) for the
# end-to-end tests, and the rest of a one-node cluster for tests/cluster/
# (kube-controller-manager, kube-scheduler, kubelet, a pause binary for pod
# sandboxes, containerd and runc). No package registry ships these binaries,
# but Debian bookworm's `kubernetes` source package builds them with Debian's
# Go 1.19 (see shared/notes/kube-apiserver.md). Every binary is cached
# outside the checkout, keyed by version, so only the first run on a machine
# pays for the build (minutes); later runs only check them.
#
# Usage: .ci/setup-kube.sh        (as root; idempotent)
# Progress goes to stderr; the last line on stdout is kube-apiserver's path
# (the others sit next to it: $ROUTECFG_CACHE/<name>-<version>/<name>).
# Environment: ROUTECFG_CACHE overrides the cache root (/var/cache/routecfg).
set -euo pipefail

K8S_VERSION=1.20.2
# The orig tarball of bookworm's kubernetes source package; its name pins the
# upstream release we build (the Debian version string says 1.20.5 for
# packaging reasons, the content is 1.20.2).
ORIG_TARBALL=kubernetes_1.20.5+really1.20.2.orig.tar.gz
CACHE_ROOT=${ROUTECFG_CACHE:-/var/cache/routecfg}
# Built from the same tree, each into $CACHE_ROOT/<name>-$K8S_VERSION/<name>.
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
BIN=$CACHE_ROOT/kube-apiserver-$K8S_VERSION/kube-apiserver
# The pod sandbox ("pause") process, compiled statically from the same tree's
# build/pause/linux/pause.c: containerd needs a sandbox image and no registry
# is reachable from the tests.
PAUSE_BIN=$CACHE_ROOT/pause-$K8S_VERSION/pause
LOG_DIR=$CACHE_ROOT/logs
LOG=$LOG_DIR/kubernetes-$K8S_VERSION-build.log
GO_BIN=/usr/lib/go-1.19/bin
# Everything Go writes lives under the cache root so a rebuild is fast.
GOPATH_DIR=$CACHE_ROOT/gopath-$K8S_VERSION
TREE=$GOPATH_DIR/src/k8s.io/kubernetes
SRC_DIR=$CACHE_ROOT/src
APT_DIR=$CACHE_ROOT/apt

RUNTIME_PKGS=(etcd-server openssl iproute2)
# The node side of tests/cluster/ (containerd pulls in runc), promtool, and
# socat for the host's loopback door into the cluster's namespace.
CLUSTER_PKGS=(containerd runc prometheus socat)
BUILD_PKGS=(golang-1.19-go golang-github-modern-go-reflect2-dev ca-certificates gcc libc6-dev)

say() { echo "setup-kube: $*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

component_bin() {
	echo "$CACHE_ROOT/$1-$K8S_VERSION/$1"
}

component_runs() {
	local bin
	bin=$(component_bin "$1")
	[[ -x $bin ]] && "$bin" --version >/dev/null 2>&1
}

pause_runs() {
	[[ -x $PAUSE_BIN ]] && "$PAUSE_BIN" -v >/dev/null 2>&1
}

# Components (and "pause") missing from the cache, one per line.
missing_components() {
	local c
	for c in "${COMPONENTS[@]}"; do
		component_runs "$c" || echo "$c"
	done
	pause_runs || echo pause
}

# Installs only what is missing, so a warm run never touches apt.
ensure_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	((${#missing[@]} == 0)) && return 0
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Another apt run on the machine must not fail ours: wait for its lock.
	local opts=(-o DPkg::Lock::Timeout=600 -y --no-install-recommends)
	# Fresh images often ship without (or with stale) package lists: update
	# once and retry before giving up.
	if ! apt-get "${opts[@]}" install "${missing[@]}" >&2; then
		apt-get -o DPkg::Lock::Timeout=600 update >&2
		apt-get "${opts[@]}" install "${missing[@]}" >&2
	fi
}

ensure_kubectl() {
	if [[ -x /usr/bin/kubectl ]]; then
		return 0
	fi
	# Note: bookworm's kubernetes-client is kubectl 1.20, which lacks
	# `kubectl create token` (added in 1.24); tests that mint service-account
	# tokens need a newer kubectl at /usr/bin/kubectl.
	ensure_packages kubernetes-client
}

# Mirror URI of the system's bookworm entry (deb822 or one-line format), so
# source downloads take the same route as binary ones.
bookworm_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		uri=$(awk '
			BEGIN { RS = ""; FS = "\n" }
			{
				types = ""; uris = ""; suites = ""; comps = ""
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^Types:/) types = $i
					if ($i ~ /^URIs:/) uris = $i
					if ($i ~ /^Suites:/) suites = $i
					if ($i ~ /^Components:/) comps = $i
				}
				if (types ~ /[ \t]deb([ \t]|$)/ && suites ~ /[ \t]bookworm([ \t]|$)/ && comps ~ /[ \t]main([ \t]|$)/) {
					sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
				}
			}' "$f")
		if [[ -n $uri ]]; then
			echo "$uri"
			return 0
		fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		uri=$(awk '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == "bookworm") { print $i; exit }
			}' "$f")
		if [[ -n $uri ]]; then
			echo "$uri"
			return 0
		fi
	done
	echo "http://deb.debian.org/debian"
}

# Downloads the source tarball with a private APT configuration: a deb-src
# twin of the bookworm entry, with its own lists and cache, so the system's
# apt configuration and state stay untouched.
fetch_source() {
	if [[ -s $SRC_DIR/$ORIG_TARBALL ]]; then
		return 0
	fi
	local mirror
	mirror=$(bookworm_mirror)
	say "fetching the kubernetes source package from $mirror"
	mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/lists/partial" \
		"$APT_DIR/cache/archives/partial" "$SRC_DIR"
	cat >"$APT_DIR/sources.list.d/bookworm-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	: >"$APT_DIR/sources.list"
	local apt_opts=(
		-o "Dir::Etc::SourceList=$APT_DIR/sources.list"
		-o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
		-o "Dir::State::Lists=$APT_DIR/lists"
		-o "Dir::Cache=$APT_DIR/cache"
		-o "APT::Sandbox::User=root"
	)
	apt-get "${apt_opts[@]}" update >&2
	local dl
	dl=$(mktemp -d "$SRC_DIR/download.XXXXXX")
	(cd "$dl" && apt-get "${apt_opts[@]}" source --download-only kubernetes >&2)
	[[ -s $dl/$ORIG_TARBALL ]] || die "apt-get source did not deliver $ORIG_TARBALL (got: $(ls "$dl"))"
	mv "$dl/$ORIG_TARBALL" "$SRC_DIR/$ORIG_TARBALL"
	rm -rf "$dl"
}

# The build proper, run as a child process with its output in the log (see
# the end of this file), so that `set -e` holds in every step.
build() {
	export PATH=$GO_BIN:$PATH
	export GO111MODULE=off GOPATH=$GOPATH_DIR GOCACHE=$CACHE_ROOT/go-build
	export GOFLAGS= CGO_ENABLED=0
	go version

	if [[ ! -f $TREE/.routecfg-prepared ]]; then
		echo "== unpacking $ORIG_TARBALL"
		rm -rf "$TREE" "$GOPATH_DIR/src/k8s.io/kubernetes-$K8S_VERSION"
		mkdir -p "$GOPATH_DIR/src/k8s.io"
		tar -xzf "$SRC_DIR/$ORIG_TARBALL" -C "$GOPATH_DIR/src/k8s.io"
		mv "$GOPATH_DIR/src/k8s.io/kubernetes-$K8S_VERSION" "$TREE"
		cd "$TREE"

		echo "== replacing vendored reflect2 v1.0.1 (crashes under Go >= 1.18)"
		rm -rf vendor/github.com/modern-go/reflect2
		cp -rL /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2

		echo "== generating OpenAPI definitions"
		go build -o "$GOPATH_DIR/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
		local dirs
		# grep -R follows the vendor/k8s.io symlinks into staging/.
		dirs=$(grep -R -l --include='*.go' --exclude='*_test.go' '+k8s:openapi-gen=' \
			pkg vendor/k8s.io cmd plugin |
			xargs -n1 dirname | sort -u |
			grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/')
		local count
		count=$(wc -l <<<"$dirs")
		echo "openapi-gen input directories: $count"
		if [[ $count -ne 83 ]]; then
			echo "expected 83 openapi-gen input directories for $K8S_VERSION, found $count" >&2
			exit 1
		fi
		local inputs
		inputs=$(sed 's|^|k8s.io/kubernetes/|' <<<"$dirs" | paste -sd,)
		"$GOPATH_DIR/bin/openapi-gen" -i "$inputs" \
			-p k8s.io/kubernetes/pkg/generated/openapi \
			-O zz_generated.openapi \
			-h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
			-r "$GOPATH_DIR/openapi-violations.report"
		touch "$TREE/.routecfg-prepared"
	fi

	cd "$TREE"
	local c out tmp start
	for c in "$@"; do
		start=$SECONDS
		if [[ $c == pause ]]; then
			echo "== building pause (static)"
			mkdir -p "$(dirname "$PAUSE_BIN")"
			tmp=$PAUSE_BIN.partial
			gcc -Os -static -DVERSION="$K8S_VERSION-routecfg" -o "$tmp" build/pause/linux/pause.c
			strip "$tmp"
			"$tmp" -v
			mv "$tmp" "$PAUSE_BIN"
			echo "== done: $PAUSE_BIN ($((SECONDS - start)) s)"
			continue
		fi
		echo "== building $c"
		out=$(component_bin "$c")
		mkdir -p "$(dirname "$out")"
		tmp=$out.partial
		go build -ldflags='-s -w' -o "$tmp" "./cmd/$c"
		"$tmp" --version
		# Atomic so that a half-written binary never counts as cached.
		mv "$tmp" "$out"
		echo "== done: $out ($((SECONDS - start)) s)"
	done
}

main() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, writes $CACHE_ROOT)"
	mkdir -p "$CACHE_ROOT" "$LOG_DIR"
	# Serialise concurrent runs (several test jobs may call this at once).
	exec 9>"$CACHE_ROOT/.setup-kube.lock"
	flock 9

	ensure_packages "${RUNTIME_PKGS[@]}" "${CLUSTER_PKGS[@]}"
	ensure_kubectl
	local missing
	mapfile -t missing < <(missing_components)
	if ((${#missing[@]} == 0)); then
		say "cached kubernetes $K8S_VERSION binaries are present and run: ${COMPONENTS[*]} pause"
		echo "$BIN"
		return 0
	fi

	local start=$SECONDS
	ensure_packages "${BUILD_PKGS[@]}"
	fetch_source
	say "building ${missing[*]} $K8S_VERSION (several minutes each when cold); log: $LOG"
	: >"$LOG"
	if ! bash "${BASH_SOURCE[0]}" __build "${missing[@]}" >>"$LOG" 2>&1; then
		say "build failed; last lines of $LOG:"
		tail -n 40 "$LOG" >&2
		exit 1
	fi
	mapfile -t missing < <(missing_components)
	((${#missing[@]} == 0)) || die "built but these do not run: ${missing[*]}; see $LOG"
	say "built in $((SECONDS - start)) s"
	echo "$BIN"
}

if [[ ${1:-} == __build ]]; then
	shift
	build "$@"
else
	main "$@"
fi
