#!/usr/bin/env bash
# Builds the FROM-scratch routecfg image with buildah, writes it as an OCI
# archive, runs the archived image once with podman to prove it starts, and
# prints the archive's path as the LAST line on stdout (everything else goes
# to stderr).
#
# No Docker engine and no host configuration: containers.conf,
# storage.conf and the signature policy are written under target/image/ and
# named through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / flags, with a
# private vfs image store there too, so the host's /etc/containers and
# /var/lib/containers are neither read for settings nor written.
#
# Environment knobs:
#   ROUTECFG_BIN            use this static binary instead of running
#                           deploy/build-static.sh
#   ROUTECFG_IMAGE_DIR      output/work dir (default: <repo>/target/image)
#   ROUTECFG_IMAGE_TAG      image name (default: localhost/routecfg:<version>)
#   ROUTECFG_CHECK_ARGS     arguments for the test run (default:
#                           "table-id milan"); ROUTECFG_CHECK_EXPECT as in
#                           build-static.sh
#   ROUTECFG_MAX_IMAGE_BYTES  budget for the compressed image (default 2 MiB)
#   ROUTECFG_SKIP_APT=1     do not check/install apt packages
set -euo pipefail

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: ERROR: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE_DIR=${ROUTECFG_IMAGE_DIR:-$ROOT/target/image}
VERSION=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
TAG=${ROUTECFG_IMAGE_TAG:-localhost/routecfg:${VERSION:-dev}}
ARCHIVE=$IMAGE_DIR/routecfg.oci.tar
CHECK_ARGS=${ROUTECFG_CHECK_ARGS-table-id milan}
CHECK_EXPECT=${ROUTECFG_CHECK_EXPECT-}
MAX_IMAGE_BYTES=${ROUTECFG_MAX_IMAGE_BYTES:-$((2 * 1024 * 1024))}
PACKAGES=(buildah podman runc golang-github-containers-common python3)

# --- 1. Debian packages (idempotent) ----------------------------------------
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt packages present: ${PACKAGES[*]}"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not root"
    log "installing apt packages: ${missing[*]}"
    mkdir -p "$IMAGE_DIR"
    local apt_log=$IMAGE_DIR/apt.log
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get -o DPkg::Lock::Timeout=600 update \
        && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; \
        } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        die "apt-get install ${missing[*]} failed (full log: $apt_log)"
    fi
}
if [ "${ROUTECFG_SKIP_APT:-0}" != 1 ]; then
    install_packages
fi
[ "$(id -u)" -eq 0 ] || die "run as root (the private image store and runc need it)"
for tool in buildah podman runc python3; do
    command -v "$tool" >/dev/null || die "$tool not found (packages: ${PACKAGES[*]})"
done

# --- 2. the static binary ----------------------------------------------------
if [ -n "${ROUTECFG_BIN:-}" ]; then
    BIN=$ROUTECFG_BIN
else
    # Cheap when nothing changed: cargo only checks freshness.
    BIN=$("$ROOT/deploy/build-static.sh" | tail -n 1)
fi
[ -x "$BIN" ] || die "no static binary at '$BIN'"

# --- 3. private container configuration --------------------------------------
mkdir -p "$IMAGE_DIR/storage" "$IMAGE_DIR/run" "$IMAGE_DIR/tmp"
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
if [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ]; then
    hard_nproc=32768
fi
# crun fails on this kind of host (hybrid cgroups): runc + cgroupfs. Default
# ulimits above the shell's hard limits make runc fail, so use exactly them.
cat >"$IMAGE_DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${hard_nofile}:${hard_nofile}", "nproc=${hard_nproc}:${hard_nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$IMAGE_DIR/run/events.log"
tmp_dir = "$IMAGE_DIR/tmp"
EOF
# vfs: one layer holding one file; no overlay mounts left under target/.
cat >"$IMAGE_DIR/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$IMAGE_DIR/storage"
runroot = "$IMAGE_DIR/run"
EOF
cat >"$IMAGE_DIR/policy.json" <<'EOF'
{"default": [{"type": "insecureAcceptAnything"}]}
EOF
export CONTAINERS_CONF=$IMAGE_DIR/containers.conf
export CONTAINERS_STORAGE_CONF=$IMAGE_DIR/storage.conf
export TMPDIR=$IMAGE_DIR/tmp
POLICY=(--signature-policy "$IMAGE_DIR/policy.json")

# --- 4. build: context is a directory with only the binary ------------------
CONTEXT=$IMAGE_DIR/context
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
cp "$BIN" "$CONTEXT/routecfg"
log "building $TAG from $BIN"
start=$(date +%s.%N)
# --timestamp 0: reproducible (created time and file times at the epoch).
buildah bud --quiet --timestamp 0 "${POLICY[@]}" \
    -f "$ROOT/deploy/Containerfile" -t "$TAG" "$CONTEXT" >&2 || die "buildah bud failed"
rm -f "$ARCHIVE"
# buildah push compresses layers (gzip) by default.
buildah push --quiet "${POLICY[@]}" "$TAG" "oci-archive:$ARCHIVE:$TAG" >&2 || die "buildah push failed"
end=$(date +%s.%N)
log "image build + archive took $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}') s"

# --- 5. sizes: the archive and the compressed blobs a registry would store --
read -r compressed layers <<<"$(python3 - "$ARCHIVE" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    def blob(d):
        return t.extractfile("blobs/" + d.replace(":", "/", 1))
    index = json.load(t.extractfile("index.json"))
    total, layers = 0, []
    for m in index["manifests"]:
        manifest = json.load(blob(m["digest"]))
        total += m["size"] + manifest["config"]["size"]
        for l in manifest["layers"]:
            total += l["size"]
            layers.append(f'{l["mediaType"].rsplit(".", 1)[-1]}:{l["size"]}')
    print(total, ",".join(layers))
PY
)"
archive_size=$(stat -c %s "$ARCHIVE")
log "layers: $layers"
log "compressed image (manifest + config + layers): $compressed bytes ($(awk -v s="$compressed" 'BEGIN{printf "%.2f", s/1048576}') MiB, budget $MAX_IMAGE_BYTES)"
log "archive: $archive_size bytes"
if [ "$compressed" -gt "$MAX_IMAGE_BYTES" ]; then
    die "compressed image is $compressed bytes, over the budget of $MAX_IMAGE_BYTES (ROUTECFG_MAX_IMAGE_BYTES)"
fi

# --- 6. run the archived image once (no network, no capabilities) -----------
# shellcheck disable=SC2086 # CHECK_ARGS is a word list on purpose
if ! out=$(podman run --rm --quiet "${POLICY[@]}" --network none --cap-drop ALL \
    --read-only "oci-archive:$ARCHIVE" $CHECK_ARGS); then
    die "'podman run $ARCHIVE $CHECK_ARGS' failed (output: $out)"
fi
log "podman run 'routecfg $CHECK_ARGS' -> $(printf '%s' "$out" | head -n 3)"
if [ -n "$CHECK_EXPECT" ] && [ "$out" != "$CHECK_EXPECT" ]; then
    die "image run printed '$out', expected '$CHECK_EXPECT'"
fi

echo "$ARCHIVE"
