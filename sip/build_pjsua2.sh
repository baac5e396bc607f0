#!/usr/bin/env bash
# Build pjproject's pjsua2 Python binding (SWIG) into a wheel, cache it and install it into a venv.
#
#   sip/build_pjsua2.sh [--venv DIR] [--tarball PATH|URL] [--source DIR] [--rebuild] ...
#
# Source, first usable of:
#   --source DIR       a pjproject source folder (copied, never modified)
#   --tarball PATH|URL an upstream pjproject release tarball (>= 2.14), also $PJPROJECT_TARBALL;
#                      a URL is downloaded; when it cannot be fetched we fall back to:
#   (default)          the pjproject copy inside Debian's source package `ring` (Jami), fetched with
#                      apt-get source through a private apt directory whose deb-src entries are
#                      derived from this machine's apt sources (the system apt config is untouched).
# A tree without pj::AudioMediaPort (the Debian copy is a 2.12.1 fork) gets standin's backport
# (sip/pjsua2_build/). The wheel is cached in ${XDG_CACHE_HOME:-~/.cache}/standin-wheels and reused
# on the next run. See sip/README.md.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
RECIPE="$HERE/pjsua2_build"
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"

VENV="$REPO/.venv"
TARBALL="${PJPROJECT_TARBALL:-}"
SOURCE_DIR=""
REBUILD=0
INSTALL_DEPS=1
KEEP_WORK=0
JOBS="$(nproc 2>/dev/null || echo 2)"
WHEEL_CACHE="$CACHE_HOME/standin-wheels"
WORK="${STANDIN_PJSUA2_WORKDIR:-$CACHE_HOME/standin-pjsua2-build}"

usage() {
    cat <<EOF
usage: $0 [options]
  --venv DIR          virtualenv to install pjsua2 into (default: $REPO/.venv)
  --tarball PATH|URL  upstream pjproject release tarball (>= 2.14); env PJPROJECT_TARBALL
  --source DIR        local pjproject source folder
  --rebuild           ignore the cached wheel and build again
  --no-deps           do not apt-get install build dependencies
  --jobs N            parallel make jobs (default: $JOBS)
  --workdir DIR       work folder (default: $WORK)
  --wheel-cache DIR   wheel cache (default: $WHEEL_CACHE)
  --keep-work         keep the build tree after a successful build
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --venv) VENV="$2"; shift 2 ;;
        --tarball) TARBALL="$2"; shift 2 ;;
        --source) SOURCE_DIR="$2"; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --no-deps) INSTALL_DEPS=0; shift ;;
        --jobs) JOBS="$2"; shift 2 ;;
        --workdir) WORK="$2"; shift 2 ;;
        --wheel-cache) WHEEL_CACHE="$2"; shift 2 ;;
        --keep-work) KEEP_WORK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build_pjsua2.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
# The build runs in other folders: every path given must hold from there too.
VENV="$(realpath -m "$VENV")"
[ -n "$SOURCE_DIR" ] && SOURCE_DIR="$(realpath -m "$SOURCE_DIR")"
case "$TARBALL" in ""|http://*|https://*|ftp://*) ;; *) TARBALL="$(realpath -m "$TARBALL")" ;; esac

# --------------------------------------------------------------------------------------------
# Progress and failure reporting
STAGE="setup"
LOG=""
T_START=$SECONDS
T_STAGE=$SECONDS

stage() {
    if [ "$STAGE" != "setup" ]; then
        echo "    [$STAGE] done in $((SECONDS - T_STAGE)) s"
    fi
    STAGE="$1"
    shift
    T_STAGE=$SECONDS
    LOG="$WORK/logs/$STAGE.log"
    mkdir -p "$WORK/logs"
    : >"$LOG"
    echo "==> [$STAGE] $*"
}

note() { echo "    $*"; }

show_log_tail() {
    if [ -n "$LOG" ] && [ -s "$LOG" ]; then
        echo "---- last lines of $LOG" >&2
        tail -n 40 "$LOG" >&2
        echo "----" >&2
    fi
}

die() {
    trap - ERR
    show_log_tail
    echo "build_pjsua2.sh: FAILED at stage '$STAGE': $*" >&2
    exit 1
}

on_err() {
    local rc=$?
    trap - ERR
    show_log_tail
    echo "build_pjsua2.sh: FAILED at stage '$STAGE' (exit status $rc, line ${BASH_LINENO[0]})" >&2
    exit "$rc"
}
trap on_err ERR

# Run a command with its output in the stage log.
logged() {
    echo "+ $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# --------------------------------------------------------------------------------------------
stage python "target interpreter"
PY="$VENV/bin/python"
[ -x "$PY" ] || die "no Python at $PY (give the virtualenv with --venv DIR)"
PYINFO="$("$PY" - <<'EOF'
import os, sys, sysconfig
print("cp%d%d" % sys.version_info[:2])
print(sysconfig.get_platform().replace("-", "_").replace(".", "_"))
print(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
print("%d.%d" % sys.version_info[:2])
EOF
)" || die "cannot run $PY"
{ read -r PYTAG; read -r PLAT; read -r PYHEADER; read -r PYVER; } <<<"$PYINFO"
note "$PY (Python $PYVER, $PYTAG, $PLAT)"

mkdir -p "$WORK" "$WHEEL_CACHE"
exec 9>"$WORK/.lock"
flock -n 9 || die "another build_pjsua2.sh is running with work folder $WORK"

# Cache key: the build recipe (this script and sip/pjsua2_build/) and the requested source.
source_spec() {
    if [ -n "$SOURCE_DIR" ]; then
        echo "source:$(cd "$SOURCE_DIR" 2>/dev/null && pwd || echo "$SOURCE_DIR")"
    elif [ -n "$TARBALL" ]; then
        echo "tarball:$(basename "$TARBALL")"
    else
        echo "debian-ring"
    fi
}
cache_key() {
    {
        cat "$HERE/build_pjsua2.sh"
        find "$RECIPE" -maxdepth 1 -type f ! -name '*.pyc' | LC_ALL=C sort | xargs cat
        echo "$1"
    } | sha256sum | cut -c1-10
}
find_cached_wheel() {
    local key="$1" w
    for w in "$WHEEL_CACHE"/pjsua2-*."$key"-"$PYTAG"-*-"$PLAT".whl; do
        [ -f "$w" ] && { echo "$w"; return 0; }
    done
    return 1
}

install_wheel() {
    local wheel="$1"
    stage install "installing $(basename "$wheel") into $VENV"
    logged "$PY" -m pip install --no-deps --no-index --force-reinstall "$wheel" \
        || die "pip could not install $wheel into $VENV (see $LOG)"
    stage verify "importing pjsua2"
    logged "$PY" - <<'EOF' || die "pjsua2 does not import or lacks AudioMediaPort (see $LOG)"
import pjsua2 as pj

assert hasattr(pj, "AudioMediaPort"), "no AudioMediaPort"
ep = pj.Endpoint()
ep.libCreate()
print("pjsua2", ep.libVersion().full, "from", pj.__file__)
ep.libDestroy()
EOF
    note "$(grep '^pjsua2 ' "$LOG" || true)"
    echo "    [$STAGE] done in $((SECONDS - T_STAGE)) s"
    echo "==> pjsua2 ready in $VENV (wheel: $wheel, total $((SECONDS - T_START)) s)"
    exit 0
}

KEY="$(cache_key "$(source_spec)")"
if [ "$REBUILD" = 0 ] && WHEEL="$(find_cached_wheel "$KEY")"; then
    stage cache "reusing cached wheel $WHEEL"
    install_wheel "$WHEEL"
fi

# --------------------------------------------------------------------------------------------
stage deps "build dependencies"
PKGS=(swig build-essential dpkg-dev patch pkg-config libssl-dev uuid-dev ca-certificates)
if [ ! -f "$PYHEADER" ]; then
    case "$(readlink -f "$PY")" in
        /usr/bin/python3*) PKGS+=("python$PYVER-dev") ;;
        *) die "no Python headers ($PYHEADER) for $PY; install that interpreter's development files" ;;
    esac
fi
MISSING=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING+=("$p")
done
if [ ${#MISSING[@]} -eq 0 ]; then
    note "all present: ${PKGS[*]}"
elif [ "$INSTALL_DEPS" = 0 ]; then
    die "missing packages: ${MISSING[*]} (and --no-deps was given)"
else
    note "apt-get install ${MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! logged as_root apt-get install -y --no-install-recommends "${MISSING[@]}"; then
        note "install failed; refreshing the package lists and retrying"
        logged as_root apt-get update \
            || die "cannot apt-get update (need root or passwordless sudo; see $LOG)"
        logged as_root apt-get install -y --no-install-recommends "${MISSING[@]}" \
            || die "cannot install ${MISSING[*]} (see $LOG)"
    fi
fi
command -v swig >/dev/null || die "swig not found"

# --------------------------------------------------------------------------------------------
BUILD="$WORK/build"
DL="$WORK/downloads"
PJ="$BUILD/pjproject"
ORIGIN=""

is_pj_tree() { [ -f "$1/aconfigure" ] && [ -f "$1/pjsip-apps/src/swig/pjsua2.i" ]; }

find_pj_tree() {  # first pjproject tree under $1
    local f
    while IFS= read -r f; do
        if is_pj_tree "$(dirname "$f")"; then
            dirname "$f"
            return 0
        fi
    done < <(find "$1" -maxdepth 8 -type f -name aconfigure 2>/dev/null | sort)
    return 1
}

unpack_pj_tarball() {  # tarball -> $PJ
    local tgz="$1" tree
    rm -rf "$BUILD/unpack"
    mkdir -p "$BUILD/unpack"
    logged tar -xf "$tgz" -C "$BUILD/unpack" || return 1
    tree="$(find_pj_tree "$BUILD/unpack")" || return 1
    mv "$tree" "$PJ"
    rm -rf "$BUILD/unpack"
}

fetch_url() {  # url dest
    if command -v curl >/dev/null; then
        logged curl -fL --connect-timeout 15 --max-time 900 -o "$2.part" "$1"
    elif command -v wget >/dev/null; then
        logged wget -T 15 -O "$2.part" "$1"
    else
        logged "$PY" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2.part"
    fi && mv "$2.part" "$2"
}

# Derive deb-src entries from the machine's apt sources into $1 (a sources.list.d folder).
derive_deb_src() {
    local out="$1" f n=0
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        awk '/^[[:space:]]*deb[[:space:]]/ { sub(/^[[:space:]]*deb/, "deb-src"); print }' "$f" \
            >"$out/$n-$(basename "$f" .list).list"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        awk 'BEGIN { RS = ""; FS = "\n" }
        {
            out = ""; hasdeb = 0; enabled = 1
            for (i = 1; i <= NF; i++) {
                line = $i
                if (line ~ /^#/) continue
                low = tolower(line)
                if (low ~ /^types:/) {
                    v = line; sub(/^[^:]*:/, "", v)
                    if (v ~ /(^|[[:space:]])deb([[:space:]]|$)/) hasdeb = 1
                    line = "Types: deb-src"
                } else if (low ~ /^enabled:[[:space:]]*no/) {
                    enabled = 0
                }
                out = out line "\n"
            }
            if (hasdeb && enabled) printf "%s\n", out
        }' "$f" >"$out/$n-$(basename "$f")"
    done
    cat "$out"/* 2>/dev/null | grep -Eq '^(deb-src|Types: deb-src)' \
        || die "no deb entries in /etc/apt/sources.list or /etc/apt/sources.list.d to derive deb-src from"
}

source_from_debian_ring() {
    local apt="$WORK/apt" ring="$BUILD/ring" dsc tree tgz
    stage apt-sources "deriving deb-src entries into a private apt folder ($apt)"
    rm -rf "$apt"
    mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial"
    : >"$apt/sources.list"
    derive_deb_src "$apt/sources.list.d"
    APT_OPTS=(-o "Dir::Etc::sourcelist=$apt/sources.list"
        -o "Dir::Etc::sourceparts=$apt/sources.list.d"
        -o "Dir::State::Lists=$apt/lists"
        -o "Dir::Cache=$apt/cache")
    if [ "$(id -u)" = 0 ]; then
        APT_OPTS+=(-o "APT::Sandbox::User=root")
    fi
    cat "$apt/sources.list.d"/* >>"$LOG"
    if ! logged apt-get "${APT_OPTS[@]}" update; then
        note "apt-get update reported errors (some repositories may have no sources); continuing"
    fi
    apt-cache "${APT_OPTS[@]}" showsrc ring >/dev/null 2>&1 \
        || die "Debian source package 'ring' is not available from the derived deb-src entries (see $LOG)"

    stage fetch-ring "apt-get source --download-only ring"
    mkdir -p "$DL/ring"
    (cd "$DL/ring" && logged apt-get "${APT_OPTS[@]}" source --download-only ring) \
        || die "apt-get source --download-only ring failed (see $LOG)"
    dsc="$(ls -t "$DL"/ring/ring_*.dsc | head -n 1)"
    note "$(basename "$dsc")"

    stage unpack "extracting pjproject from $(basename "$dsc")"
    rm -rf "$ring"
    if command -v dpkg-source >/dev/null; then
        # Unpacks and applies Debian's patches (one of them fixes CVE-2023-27585 in pjproject).
        logged dpkg-source --no-copy -x "$dsc" "$ring" || die "dpkg-source -x failed (see $LOG)"
    else
        mkdir -p "$ring"
        logged tar -xf "$(ls "$DL"/ring/ring_*.orig.tar.* | head -n 1)" -C "$ring"
    fi
    if tree="$(find_pj_tree "$ring")"; then
        note "pjproject tree: ${tree#"$ring"/}"
        mv "$tree" "$PJ"
    else
        tgz="$(find "$ring" -type f -name 'pjproject*.tar.*' | sort | head -n 1)"
        [ -n "$tgz" ] || die "no pjproject tree or tarball inside the ring source"
        note "pjproject tarball: ${tgz#"$ring"/}"
        unpack_pj_tarball "$tgz" || die "cannot unpack $tgz (see $LOG)"
    fi
    rm -rf "$ring"
    ORIGIN="ring"
}

stage source "getting the pjproject source"
rm -rf "$BUILD"
mkdir -p "$BUILD" "$DL"
if [ -n "$SOURCE_DIR" ]; then
    is_pj_tree "$SOURCE_DIR" || die "$SOURCE_DIR is not a pjproject source folder (no aconfigure / pjsip-apps/src/swig/pjsua2.i)"
    note "copying $SOURCE_DIR"
    mkdir -p "$PJ"
    logged cp -a "$SOURCE_DIR/." "$PJ/"
    ORIGIN="src"
elif [ -n "$TARBALL" ]; then
    TGZ=""
    case "$TARBALL" in
        http://*|https://*|ftp://*)
            TGZ="$DL/$(basename "${TARBALL%%\?*}")"
            if [ -s "$TGZ" ]; then
                note "already downloaded: $TGZ"
            elif fetch_url "$TARBALL" "$TGZ"; then
                note "downloaded $TARBALL"
            else
                note "WARNING: cannot download $TARBALL (offline?); falling back to Debian's ring source"
                TGZ=""
            fi
            ;;
        *)
            if [ -f "$TARBALL" ]; then
                TGZ="$TARBALL"
            else
                note "WARNING: no such tarball: $TARBALL; falling back to Debian's ring source"
            fi
            ;;
    esac
    if [ -n "$TGZ" ]; then
        unpack_pj_tarball "$TGZ" || die "$TGZ does not hold a pjproject source tree (see $LOG)"
        ORIGIN="upstream"
    fi
fi
if [ -z "$ORIGIN" ]; then
    # The fallback is a different source: look in the cache for it before building.
    TARBALL=""
    KEY="$(cache_key "$(source_spec)")"
    if [ "$REBUILD" = 0 ] && WHEEL="$(find_cached_wheel "$KEY")"; then
        stage cache "reusing cached wheel $WHEEL"
        install_wheel "$WHEEL"
    fi
    source_from_debian_ring
fi

PJ_VERSION="$(awk -F':=' '/^export PJ_VERSION_(MAJOR|MINOR|REV)[[:space:]]/ {
    gsub(/[[:space:]]/, "", $2); if ($2 != "") v = v (v == "" ? "" : ".") $2 } END { print v }' "$PJ/version.mak")"
[ -n "$PJ_VERSION" ] || die "cannot read the version from $PJ/version.mak"
note "pjproject $PJ_VERSION ($ORIGIN)"

# --------------------------------------------------------------------------------------------
stage patch "build settings and the AudioMediaPort backport"
cp "$RECIPE/config_site.h" "$PJ/pjlib/include/pj/config_site.h"
SWIG_DIR="$PJ/pjsip-apps/src/swig"
SWIG_DEFS=()
if grep -q "class AudioMediaPort" "$PJ/pjsip/include/pjsua2/media.hpp"; then
    note "source has AudioMediaPort: no backport needed"
    grep -q 'director") AudioMediaPort' "$SWIG_DIR/pjsua2.i" \
        || note "WARNING: pjsua2.i has no director for AudioMediaPort; Python cannot override its callbacks"
else
    note "source lacks AudioMediaPort (pjproject $PJ_VERSION): applying standin's backport"
    cp "$RECIPE/audio_media_port.hpp" "$PJ/pjsip/include/pjsua2/"
    cp "$RECIPE/audio_media_port.cpp" "$PJ/pjsip/src/pjsua2/"
    cp "$RECIPE/audio_media_port.i" "$SWIG_DIR/"
    # Compile it into libpjsua2.
    printf '\n# standin: AudioMediaPort backport\nexport PJSUA2_LIB_OBJS += audio_media_port.o\n' \
        >>"$PJ/pjsip/build/Makefile"
    # Make it part of the public pjsua2 header.
    grep -q '^#include <pjsua2/media.hpp>' "$PJ/pjsip/include/pjsua2.hpp" \
        || die "pjsua2.hpp has no '#include <pjsua2/media.hpp>' line to anchor the backport"
    sed -i 's|^#include <pjsua2/media.hpp>|&\n#include <pjsua2/audio_media_port.hpp>|' \
        "$PJ/pjsip/include/pjsua2.hpp"
    # Expose it to SWIG right after media.hpp.
    grep -q '^%include "pjsua2/media.hpp"' "$SWIG_DIR/pjsua2.i" \
        || die "pjsua2.i has no '%include \"pjsua2/media.hpp\"' line to anchor the backport"
    sed -i 's|^%include "pjsua2/media.hpp"|&\n%include "audio_media_port.i"|' "$SWIG_DIR/pjsua2.i"
    if grep -q PJMEDIA_FRAME_TYPE_AUDIO "$SWIG_DIR/symbols.i"; then
        SWIG_DEFS+=(-DSTANDIN_HAVE_PJMEDIA_FRAME_TYPE)
    fi
fi
cp "$RECIPE"/standin_*.i "$SWIG_DIR/"
printf '\n// standin additions (sip/pjsua2_build/standin_extras.i)\n%%include "standin_extras.i"\n' \
    >>"$SWIG_DIR/pjsua2.i"

# --------------------------------------------------------------------------------------------
# Debian removed gsm, speex, ilbc and g7221 from its copy: those codecs stay off everywhere, which
# leaves PCMU, PCMA, G.722 and L16. No video, no sound device (pjsua's null audio device).
stage configure "configure (audio only, null sound device, static libraries with -fPIC)"
CONFIGURE_FLAGS=(
    --disable-video --disable-sound
    --disable-gsm-codec --disable-speex-codec --disable-speex-aec --disable-ilbc-codec
    --disable-g7221-codec --disable-opencore-amr --disable-silk --disable-opus --disable-bcg729
    --disable-libyuv --disable-libwebrtc --disable-sdl --disable-ffmpeg --disable-v4l2
    --disable-openh264 --disable-vpx
)
# NDEBUG: pjproject's assertions abort the process, and a packet from anywhere can trip one (an INVITE
# without SDP refused from pjsua's callback did, in 2.12). Neither pjproject's autoconf build nor Debian's
# (dpkg-buildflags) defines it; its release builds for Windows do. Without it PJ_ASSERT_RETURN returns an
# error code instead, which pjsip handles.
(cd "$PJ" && logged env CFLAGS="-O2 -fPIC -DNDEBUG" CXXFLAGS="-O2 -fPIC -DNDEBUG" ./configure "${CONFIGURE_FLAGS[@]}") \
    || die "configure failed (see $LOG)"
note "$(grep -E 'Checking if .*(codec|AEC|sound).*(disabled|enabled)' "$LOG" | sed 's/^Checking if //' | tr '\n' ';' | sed 's/;$//')"

stage build-libs "make dep && make lib (-j$JOBS)"
note "log: $LOG"
(cd "$PJ" && logged make dep) || die "make dep failed (see $LOG)"
if grep -q '^lib:' "$PJ/Makefile"; then
    (cd "$PJ" && logged make -j"$JOBS" lib) || die "make lib failed (see $LOG)"
else
    (cd "$PJ" && logged make -j"$JOBS") || die "make failed (see $LOG)"
fi
ls "$PJ"/pjsip/lib/libpjsua2-*.a >/dev/null 2>&1 || die "libpjsua2 was not built (see $LOG)"

stage swig "generating the Python module with SWIG (-threads)"
PYDIR="$SWIG_DIR/python"
(cd "$PYDIR" && logged swig -I../../../../pjlib/include -I../../../../pjlib-util/include \
    -I../../../../pjmedia/include -I../../../../pjsip/include -I../../../../pjnath/include \
    -c++ -w312 -threads "${SWIG_DEFS[@]}" -python -o pjsua2_wrap.cpp ../pjsua2.i) \
    || die "swig failed (see $LOG)"
grep -q "class AudioMediaPort" "$PYDIR/pjsua2.py" || die "the generated pjsua2.py has no AudioMediaPort"

stage wheel "compiling _pjsua2 (one big C++ file: the longest step) and packing the wheel"
note "log: $LOG"
STAGING="$BUILD/wheel-src"
rm -rf "$STAGING"
mkdir -p "$STAGING"
cp "$PYDIR/pjsua2_wrap.cpp" "$PYDIR/pjsua2_wrap.h" "$PYDIR/pjsua2.py" "$STAGING/"
cp "$RECIPE/pjsua2_setup.py" "$STAGING/setup.py"
helper() { (cd "$PYDIR" && make --no-print-directory -f helper.mak "$1"); }
PJ_CFLAGS="$(helper cflags)" || die "helper.mak cflags failed"
PJ_LIBS="$(helper libs)" || die "helper.mak libs failed"
PJ_LDFLAGS="$(helper ldflags)" || die "helper.mak ldflags failed"
export PJ_CFLAGS PJ_LIBS PJ_LDFLAGS
export PJSUA2_WHEEL_VERSION="$PJ_VERSION+standin.$ORIGIN.$KEY"
if "$PY" -c 'import setuptools, sys; v = tuple(int(x) for x in setuptools.__version__.split(".")[:2]); sys.exit(0 if v >= (70, 1) else 1)' 2>/dev/null \
    || "$PY" -c 'import setuptools, wheel' 2>/dev/null; then
    ISOLATION=(--no-build-isolation)
else
    ISOLATION=()  # pip fetches setuptools into an isolated build environment
fi
(cd "$STAGING" && logged "$PY" -m pip wheel --no-deps "${ISOLATION[@]}" -w dist .) \
    || die "building the wheel failed (see $LOG)"
BUILT="$(ls "$STAGING"/dist/pjsua2-*.whl | head -n 1)"
[ -f "$BUILT" ] || die "no wheel produced"
WHEEL="$WHEEL_CACHE/$(basename "$BUILT")"
# Older wheels for this interpreter and source kind are stale (other recipe or source version).
for old in "$WHEEL_CACHE"/pjsua2-*+standin."$ORIGIN".*-"$PYTAG"-*-"$PLAT".whl; do
    if [ -f "$old" ] && [ "$old" != "$WHEEL" ]; then
        rm -f "$old"
        note "removed stale $(basename "$old")"
    fi
done
cp "$BUILT" "$WHEEL.part"
mv "$WHEEL.part" "$WHEEL"
note "cached $WHEEL ($(du -h "$WHEEL" | cut -f1))"
if [ "$KEEP_WORK" = 0 ]; then
    rm -rf "$BUILD"
fi

install_wheel "$WHEEL"
