#!/usr/bin/env bash
# Builds routecfg as one fully static x86_64 musl binary, with Debian packages
# only (no rustup targets, nothing downloaded but crates), and proves it runs
# in an empty root. The binary's path is the LAST line on stdout; everything
# else goes to stderr, so `bin=$(deploy/build-static.sh)` works.
#
# Why this shape (see shared notes "static-build-and-image"):
# - rustup here has only the gnu target; Debian's rustc-web can build std for
#   musl from its own source (rust-web-src) with -Z build-std.
# - rustup's ~/.cargo/bin shadows Debian's tools, so /usr/bin/cargo and
#   /usr/bin/rustc are named explicitly.
# - Everything is passed on the command line / environment and built into its
#   own target dir, so normal `cargo build` in this checkout is unaffected.
#
# Environment knobs:
#   ROUTECFG_STATIC_TARGET_DIR  target dir (default: <repo>/target/static)
#   ROUTECFG_CHECK_ARGS         arguments for the empty-root run
#                               (default: "table-id milan")
#   ROUTECFG_CHECK_EXPECT       if set, the empty-root run's stdout must equal
#                               it (e.g. 576843759 for "table-id milan")
#   ROUTECFG_MAX_BYTES          size budget, fails above it (default 3 MiB)
#   ROUTECFG_SKIP_APT=1         do not check/install apt packages
set -euo pipefail

log() { printf 'build-static: %s\n' "$*" >&2; }
die() { printf 'build-static: ERROR: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRIPLE=x86_64-unknown-linux-musl
TARGET_DIR=${ROUTECFG_STATIC_TARGET_DIR:-$ROOT/target/static}
CHECK_ARGS=${ROUTECFG_CHECK_ARGS-table-id milan}
CHECK_EXPECT=${ROUTECFG_CHECK_EXPECT-}
MAX_BYTES=${ROUTECFG_MAX_BYTES:-$((3 * 1024 * 1024))}
CARGO=/usr/bin/cargo
RUSTC=/usr/bin/rustc
LLVM_LIBUNWIND=/usr/lib/llvm-19/lib/libunwind.a
PACKAGES=(rustc-web cargo-web rust-web-src musl-tools musl-dev libunwind-19-dev binutils file)

[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (this is $(uname -m))"

# --- 1. Debian packages (idempotent: installs only what is missing) --------
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
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not root: install them or run as root"
    log "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Other users of this machine may hold the dpkg lock: wait for it.
    mkdir -p "$TARGET_DIR"
    local apt_log=$TARGET_DIR/apt.log
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
for tool in "$CARGO" "$RUSTC" musl-gcc ar readelf; do
    command -v "$tool" >/dev/null || die "$tool not found (packages: ${PACKAGES[*]})"
done
[ -f "$LLVM_LIBUNWIND" ] || die "$LLVM_LIBUNWIND missing (package libunwind-19-dev)"
log "$("$RUSTC" --version), $("$CARGO" --version)"

# --- 2. libunwind for musl: LLVM's archive plus our __fprintf_chk shim -----
# gcc's libgcc_eh.a needs glibc's _dl_find_object; LLVM's libunwind.a works
# but was built with _FORTIFY_SOURCE and calls __fprintf_chk, which musl
# lacks. A copy of the archive with the shim added goes on the link path.
LINK_DIR=$TARGET_DIR/musl-link
SHIM_SRC=$ROOT/deploy/fprintf_chk_shim.c
mkdir -p "$LINK_DIR"
if [ ! -f "$LINK_DIR/libunwind.a" ] || [ "$SHIM_SRC" -nt "$LINK_DIR/libunwind.a" ] \
    || [ "$LLVM_LIBUNWIND" -nt "$LINK_DIR/libunwind.a" ]; then
    log "making $LINK_DIR/libunwind.a (LLVM libunwind + fprintf_chk shim)"
    musl-gcc -O2 -Wall -Werror -c "$SHIM_SRC" -o "$LINK_DIR/fprintf_chk_shim.o"
    cp "$LLVM_LIBUNWIND" "$LINK_DIR/libunwind.a.tmp"
    ar rs "$LINK_DIR/libunwind.a.tmp" "$LINK_DIR/fprintf_chk_shim.o"
    mv "$LINK_DIR/libunwind.a.tmp" "$LINK_DIR/libunwind.a"
fi

# --- 3. cargo build ---------------------------------------------------------
# relocation-model=static: otherwise musl-gcc's specs add a program
# interpreter and the binary fails in an empty root with ENOENT.
# link-self-contained=no: use musl-gcc's own crt files and libc.a.
RUSTFLAGS_TOML="[\"-C\", \"target-feature=+crt-static\", \"-C\", \"relocation-model=static\", \"-C\", \"link-self-contained=no\", \"-L\", \"native=$LINK_DIR\"]"
log "building $TRIPLE release into $TARGET_DIR"
start=$(date +%s.%N)
# Flags from the caller's environment would replace ours: drop them. So
# would the variables cargo sets for a crate under test (when this script
# runs from `cargo test`): ring's build script watches them, and a change
# would rebuild half the tree.
for var in $(compgen -e | grep -E '^CARGO_(MANIFEST_|PKG_|BIN_|CRATE_|PRIMARY_|TARGET_TMPDIR)' || true); do
    unset "$var"
done
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS -u RUSTC_WRAPPER \
    -u CARGO_BUILD_TARGET -u CARGO_TARGET_DIR -u RUSTUP_TOOLCHAIN \
    RUSTC_BOOTSTRAP=1 \
    RUSTC="$RUSTC" \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    AR_x86_64_unknown_linux_musl=ar \
    "$CARGO" build \
    --manifest-path "$ROOT/Cargo.toml" \
    --release --locked \
    --bin routecfg \
    --target "$TRIPLE" \
    --target-dir "$TARGET_DIR" \
    -Z build-std=std,panic_abort \
    --config "build.rustc=\"$RUSTC\"" \
    --config "target.$TRIPLE.linker=\"musl-gcc\"" \
    --config "target.$TRIPLE.rustflags=$RUSTFLAGS_TOML" >&2
end=$(date +%s.%N)
log "cargo build took $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}') s"

BIN=$TARGET_DIR/$TRIPLE/release/routecfg
[ -x "$BIN" ] || die "no binary at $BIN"

# --- 4. checks: static, runs in an empty root, fits the budget -------------
if readelf -lW "$BIN" | grep -q 'INTERP'; then
    die "$BIN has a program interpreter (PT_INTERP): not static"
fi
if ! readelf -dW "$BIN" 2>&1 | grep -q 'There is no dynamic section'; then
    die "$BIN has a dynamic section: not fully static"
fi
log "readelf: no program interpreter, no dynamic section"
log "file: $(file -b "$BIN")"

EMPTY_ROOT=$(mktemp -d "$TARGET_DIR/empty-root.XXXXXX")
trap 'rm -rf "$EMPTY_ROOT"' EXIT
cp "$BIN" "$EMPTY_ROOT/routecfg"
# shellcheck disable=SC2086 # CHECK_ARGS is a word list on purpose
if [ "$(id -u)" -eq 0 ]; then
    run_in_root() { chroot "$EMPTY_ROOT" /routecfg $CHECK_ARGS; }
else
    run_in_root() { unshare --user --map-root-user chroot "$EMPTY_ROOT" /routecfg $CHECK_ARGS; }
fi
log "empty root holds: $(cd "$EMPTY_ROOT" && find . -mindepth 1 | tr '\n' ' ')"
if ! out=$(RUST_LOG=info run_in_root); then
    die "'routecfg $CHECK_ARGS' failed in an empty root (output: $out)"
fi
log "empty-root run 'routecfg $CHECK_ARGS' -> $(printf '%s' "$out" | head -n 3)"
if [ -n "$CHECK_EXPECT" ] && [ "$out" != "$CHECK_EXPECT" ]; then
    die "empty-root run printed '$out', expected '$CHECK_EXPECT'"
fi

size=$(stat -c %s "$BIN")
log "size: $size bytes ($(awk -v s="$size" 'BEGIN{printf "%.2f", s/1048576}') MiB, budget $MAX_BYTES bytes)"
if [ "$size" -gt "$MAX_BYTES" ]; then
    die "binary is $size bytes, over the budget of $MAX_BYTES (ROUTECFG_MAX_BYTES)"
fi

echo "$BIN"
