#!/usr/bin/env bash
# setup.sh - everything coi-sentinel needs on a fresh Debian 12 machine (tested in CI; Debian 13 and
# Ubuntu 24.04 take Incus from their own archive, see setup-incus.sh), as root.
#
#   scripts/setup.sh [--no-incus] [STEP...]
#   steps: packages headers tracefs venv incus   (default: all; --no-incus skips incus)
#          corpus                                (only when asked: rules/tests/make_corpus.py)
#
# Idempotent: a second run only checks and takes seconds.
#  packages  apt: python3-bpfcc (bcc), pyroute2, python3-nftables, nftables, tmux, venv...,
#            rsyslog (+ gnutls), prometheus, openssl (receivers for the output tests)
#  headers   bcc compiles against /lib/modules/$(uname -r)/build. Installs the exact
#            linux-headers-$(uname -r) when the distribution has it; otherwise the generic
#            headers package, linked in as build/source, with a warning: their struct layouts
#            may not match the running kernel, which is why the probes never read kernel structs.
#  tracefs   mounts /sys/kernel/tracing when missing.
#  venv      <repo>/.venv from /usr/bin/python3 --system-site-packages (bcc, pyroute2 and
#            nftables exist only as distribution packages), package installed editable + extras.
#  incus     scripts/setup-incus.sh: Incus daemon, bridge, profile and the session images.
#  corpus    the programs the rule corpus is recorded with (netcat, socat, gawk, dig, cron,
#            kmod, php, ruby, go, gh, htop...) and uv in the venv; CI replays the recorded
#            traces and needs none of them.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="${COI_VENV:-$REPO/.venv}"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup %s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '[setup %s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and mounts tracefs)"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
APT_UPDATED=0
apt_install() {
    local need=() p
    for p in "$@"; do installed "$p" || need+=("$p"); done
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$APT_UPDATED" = 0 ]; then apt-get update -q >&2; APT_UPDATED=1; fi
    log "apt-get install ${need[*]}"
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2
}

step_packages() {
    apt_install python3-bpfcc bpfcc-tools python3-pyroute2 python3-nftables nftables \
        python3-venv python3-pip python3-yaml tmux iproute2 gcc libc6-dev util-linux
    # what tests/bpf/test_detection_live.py runs the techniques with (small packages)
    apt_install netcat-openbsd ncat socat gawk dnsutils cron kmod libcap2-bin curl wget xxd
    # ... and the interpreters of the held-out attacks (tests/bpf/test_detection_holdout.py):
    # without them those cases skip, naming what is missing
    apt_install php-cli ruby golang-go tcl strace gdb
    # headless Chromium: the report tests open the HTML report and read its DOM
    apt_install chromium
    # real receivers the output tests start on loopback with private configs (rsyslog: RFC 5424
    # over TCP/UDP/TLS/unix socket; prometheus: scrapes --metrics; openssl makes the test
    # certificate). Their own services are not used.
    apt_install rsyslog rsyslog-gnutls prometheus openssl
}

step_corpus() {
    apt_install socat netcat-openbsd ncat gawk dnsutils cron kmod htop procps php-cli \
        golang-go telnet ruby gh busybox-static strace gdb git curl wget openssl xxd
    "$VENV/bin/pip" install -q uv
}

step_headers() {
    local rel build src
    rel=$(uname -r)
    build="/lib/modules/$rel/build"
    if [ -e "$build" ]; then log "kernel headers: $build -> $(readlink -f "$build")"; return 0; fi
    if [ "$APT_UPDATED" = 0 ]; then apt-get update -q >&2; APT_UPDATED=1; fi
    if apt-cache show "linux-headers-$rel" >/dev/null 2>&1; then
        apt_install "linux-headers-$rel"
        [ -e "$build" ] && { log "kernel headers: linux-headers-$rel"; return 0; }
    fi
    local arch generic dep
    arch=$(dpkg --print-architecture)
    generic="linux-headers-$arch"
    apt_install "$generic"
    # linux-headers-amd64 depends on linux-headers-<ver>-amd64, which depends on -common
    dep=$(dpkg-query -W -f='${Depends}' "$generic" | grep -o "linux-headers-[0-9][^ ,]*" | head -1)
    [ -n "$dep" ] && [ -d "/usr/src/$dep" ] || die "cannot find the headers directory of $generic ($dep)"
    src="/usr/src/${dep%-"$arch"}-common"
    mkdir -p "/lib/modules/$rel"
    ln -sfn "/usr/src/$dep" "$build"
    [ -d "$src" ] && ln -sfn "$src" "/lib/modules/$rel/source"
    warn "no headers for kernel $rel in the distribution: linked $dep as /lib/modules/$rel/build" \
         "(struct layouts may differ; coi-sentinel's probes do not depend on them)"
}

step_tracefs() {
    if [ -d /sys/kernel/tracing/events ]; then log "tracefs mounted"; return 0; fi
    mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs on /sys/kernel/tracing"
    log "mounted tracefs on /sys/kernel/tracing"
}

step_venv() {
    local stamp="$VENV/.coi-setup-stamp" want
    want=$(cat "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV (/usr/bin/python3 --system-site-packages)"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
    fi
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import coi_sentinel, bcc, orjson, click, re2, pytest, xdist, hypothesis, sigma' 2>/dev/null; then
        log "venv up to date"; return 0
    fi
    "$VENV/bin/pip" install -q --upgrade pip setuptools >&2
    "$VENV/bin/pip" install -q -e "$REPO[test,incus]" >&2
    "$VENV/bin/python" -c 'import coi_sentinel, bcc, orjson, click, re2' || die "venv check failed"
    echo "$want" >"$stamp"
    log "venv ready: $VENV"
}

step_incus() {
    if [ ! -f "$REPO/scripts/setup-incus.sh" ]; then log "incus: no scripts/setup-incus.sh, skipped"; return 0; fi
    # the dev and CI set-up: sealed (no packet leaves the machine); a user installs with
    # `bash scripts/setup-incus.sh` (NAT egress) or sets COI_EGRESS=nat here
    COI_VENV="$VENV" COI_EGRESS="${COI_EGRESS:-sealed}" bash "$REPO/scripts/setup-incus.sh"
}

steps=()
skip_incus=0
for a in "$@"; do
    case $a in
        --no-incus) skip_incus=1 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        packages|headers|tracefs|venv|incus|corpus) steps+=("$a") ;;
        *) die "unknown step or option: $a" ;;
    esac
done
[ ${#steps[@]} -gt 0 ] || steps=(packages headers tracefs venv incus)
for s in "${steps[@]}"; do
    [ "$s" = incus ] && [ "$skip_incus" = 1 ] && continue
    t0=$(date +%s)
    "step_$s"
    log "step $s done in $(( $(date +%s) - t0 )) s"
done
