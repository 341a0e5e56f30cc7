#!/usr/bin/env bash
# setup-incus.sh - Incus for coi-sentinel sessions and the incus test tier, on a Debian 12 host
# (tested in CI) or Debian 13 / Ubuntu 24.04 (Incus from their own archive), with no systemd,
# no image server and no route off the machine. Idempotent: a second run only checks and takes
# a few seconds.
#
# Usage:  bash scripts/setup-incus.sh [STEP...]
#   steps (default: all, in this order):
#     packages  incus + incus-client (Debian 12: from bookworm-backports; Debian 13, Ubuntu
#               24.04 and later: from their archive), the tools to build images
#     distro    only print where Incus would come from on this distribution (changes nothing)
#     daemon    start incusd with setsid when it is not answering (no systemd here), its
#               socket owned by COI_INCUS_GROUP (a running one's socket is given that group)
#     init      proxies pointed at a dead loopback port, storage pools, subuid/subgid lines
#     network   bridge with a manual subnet and the "coi-sentinel" profile (root disk + NIC on
#               the bridge). COI_EGRESS picks what the bridge lets out:
#                 nat     (a user's machine) NAT'd IPv4 and IPv6 egress, DHCP hands out a router
#                         and the bridge's DNS forwarder (dnsmasq): sessions can reach their
#                         APIs; the per-session policy (docs/network.md) still applies;
#                 sealed  (CI, test machines) no NAT, no routing, DHCP without router or DNS,
#                         and a guard nft table that counts (named counters leak_out, leak_in)
#                         and drops anything forwarded off the bridge: no packet leaves the
#                         machine, and the tests assert the counters stay 0.
#               Default: sealed when the bridge is already sealed (guard table present), else
#               nat. scripts/setup.sh (the dev and CI set-up) passes sealed.
#     agents    `coi-sentinel image build --tool T` for each T of COI_AGENT_TOOLS
#     venv      pylxd + a matching pyOpenSSL in $COI_VENV (the project venv)
#     images    `coi-sentinel image build` for the session image and the busybox test image
#
# Never `incus admin init --minimal` and never `ipv4.address=auto`: Incus then probes random
# 10.x networks from this machine. The subnet is always given by hand.
#
# Environment knobs (defaults in brackets):
#   COI_VENV [<repo>/.venv]   COI_BRIDGE [sentbr0]   COI_BRIDGE_CIDR [10.123.45.1/24]
#   COI_PROFILE [coi-sentinel]   COI_POOL [default]   COI_FAST_POOL [fast; "" = dir only]
#   COI_FAST_POOL_SIZE [8GiB]   COI_IDMAP_UID [1000; "" = skip]   COI_SKIP_APT [0]
#   COI_IMAGES ["debian busybox build"]   COI_REBUILD [0]   INCUS_DIR [/var/lib/incus]
#   COI_EGRESS [see network]   COI_BRIDGE_CIDR6 [fd42:c015:e471::1/64; nat only]
#   COI_AGENT_TOOLS ["claude codex opencode aider"; "" = none]
#   COI_INCUS_GROUP [incus-admin: who may use Incus, and so run sessions without sudo]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${COI_VENV:=$REPO/.venv}"
: "${COI_POOL:=default}"
: "${COI_FAST_POOL:=fast}"
: "${COI_FAST_POOL_SIZE:=8GiB}"
: "${COI_BRIDGE:=sentbr0}"
: "${COI_BRIDGE_CIDR:=10.123.45.1/24}"
: "${COI_PROFILE:=coi-sentinel}"
: "${COI_IDMAP_UID:=1000}"
: "${COI_SKIP_APT:=0}"
: "${COI_IMAGES:=debian busybox build}"
: "${COI_REBUILD:=0}"
: "${COI_BRIDGE_CIDR6:=fd42:c015:e471::1/64}"
: "${COI_AGENT_TOOLS:=claude codex opencode aider}"
: "${COI_DEAD_PROXY:=http://127.0.0.1:9}"
: "${INCUS_DIR:=/var/lib/incus}"
: "${INCUSD_LOG:=/var/log/incus/daemon.out}"
: "${COI_INCUS_GROUP:=incus-admin}"
export INCUS_DIR

BRIDGE_IP="${COI_BRIDGE_CIDR%/*}"
GUARD_TABLE="coi_guard_${COI_BRIDGE//[^a-zA-Z0-9_]/_}"
export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/libexec/incus:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf '[setup-incus %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
incus_up() { incus query /1.0 >/dev/null 2>&1; }
need_incus() { incus_up || { log "incusd is not answering (run: bash $0 daemon)"; exit 1; }; }

# ---------------------------------------------------------------- packages
# Where incus comes from: prints the apt target release ("archive" = the distribution's own),
# or fails with the reason. Reads $COI_OS_RELEASE [/etc/os-release].
incus_source() {
    local file="${COI_OS_RELEASE:-/etc/os-release}" ID="" VERSION_ID="" VERSION_CODENAME=""
    [ -r "$file" ] || { echo "cannot read $file: unknown distribution"; return 1; }
    # shellcheck disable=SC1090
    . "$file"
    case "$ID:$VERSION_CODENAME" in
        debian:bookworm) echo "bookworm-backports" ;;
        debian:trixie|debian:forky|debian:sid) echo "archive" ;;
        ubuntu:*)
            if [ "${VERSION_ID%%.*}" -ge 24 ] 2>/dev/null; then echo "archive"
            else echo "Ubuntu $VERSION_ID has no incus package (Ubuntu 24.04 or later has)"; return 1; fi ;;
        *) echo "$ID ${VERSION_ID:-?} ($VERSION_CODENAME) is not supported: use Debian 12 or 13," \
                "or Ubuntu 24.04 (or the dev VM in vagrant/)"; return 1 ;;
    esac
}

step_distro() {
    local src
    src=$(incus_source) || { log "$src"; return 1; }
    log "incus from: $src"
    echo "$src"
}

step_packages() {
    local need=() p src
    src=$(incus_source) || { log "$src"; return 1; }
    local extra=()
    # debootstrap of the Debian session image needs Debian's keys on a non-Debian host
    [ "$src" = archive ] && grep -qs '^ID=ubuntu' "${COI_OS_RELEASE:-/etc/os-release}" && extra+=(debian-archive-keyring)
    for p in incus incus-client busybox-static debootstrap dnsmasq-base nftables tmux \
             uidmap xz-utils btrfs-progs squashfs-tools python3-venv python3-pip "${extra[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    # the host's npm fetches the agents' npm packages (image build --tool); any npm will do
    command -v npm >/dev/null || need+=(npm)
    if [ ${#need[@]} -eq 0 ]; then log "packages: all present"; return 0; fi
    if [ "$COI_SKIP_APT" = 1 ]; then log "missing packages and COI_SKIP_APT=1: ${need[*]}"; return 1; fi
    if [ "$src" = bookworm-backports ] \
            && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" \
            >/etc/apt/sources.list.d/coi-sentinel-backports.list
    fi
    # other sources of the machine may be unreachable: that must not stop us
    apt-get update -q || log "apt-get update reported errors (continuing)"
    # maintainer scripts must not start incusd or lxcfs: step_daemon starts incusd itself
    local own_policy=0 rc=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
    fi
    local bpo=() rest=()
    for p in "${need[@]}"; do case $p in incus|incus-client) bpo+=("$p");; *) rest+=("$p");; esac; done
    local target=()
    [ "$src" = archive ] || target=(-t "$src")
    { [ ${#bpo[@]} -eq 0 ] || apt-get install -y -q "${target[@]}" "${bpo[@]}"; } &&
    { [ ${#rest[@]} -eq 0 ] || apt-get install -y -q "${rest[@]}"; } || rc=$?
    [ "$own_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

# ---------------------------------------------------------------- daemon
# the Incus socket as Debian's unit makes it (root:incus-admin 0660): members of the group use
# Incus, and the coi-sentinel daemon's socket has the same group (docs/daemon.md, "Without root")
incus_socket_group() {
    local sock="$INCUS_DIR/unix.socket"
    getent group "$COI_INCUS_GROUP" >/dev/null || groupadd --system "$COI_INCUS_GROUP"
    [ "$(stat -c %G "$sock")" = "$COI_INCUS_GROUP" ] && return 0
    log "giving $sock the group $COI_INCUS_GROUP"
    chgrp "$COI_INCUS_GROUP" "$sock" && chmod 0660 "$sock"
}

step_daemon() {
    if incus_up; then log "incusd is running"; incus_socket_group; return; fi
    command -v incusd >/dev/null || { log "incusd is not installed (run the packages step)"; return 1; }
    mkdir -p "$(dirname "$INCUSD_LOG")"
    log "starting incusd with setsid (log $INCUSD_LOG)"
    # the proxy variables keep the very first start (before core.proxy_* is in the database)
    # from fetching instance types off the machine
    ( ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
      cd /
      exec env https_proxy="$COI_DEAD_PROXY" http_proxy="$COI_DEAD_PROXY" \
          setsid incusd --group "$COI_INCUS_GROUP" </dev/null >>"$INCUSD_LOG" 2>&1 ) &
    incusd waitready --timeout=120 && incus_socket_group
}

# ---------------------------------------------------------------- init
step_init() {
    need_incus
    incus config set core.proxy_https="$COI_DEAD_PROXY" core.proxy_http="$COI_DEAD_PROXY" \
        images.auto_update_interval=0 images.remote_cache_expiry=1
    incus storage show "$COI_POOL" >/dev/null 2>&1 || incus storage create "$COI_POOL" dir
    # the default profile: a root disk, no NIC (a container gets a network only through ours)
    incus profile device get default root pool >/dev/null 2>&1 ||
        incus profile device add default root disk path=/ pool="$COI_POOL"
    # btrfs on a sparse loop file: instances are snapshots of the unpacked image (~0.3 s launch)
    if [ -n "$COI_FAST_POOL" ] && ! incus storage show "$COI_FAST_POOL" >/dev/null 2>&1; then
        incus storage create "$COI_FAST_POOL" btrfs size="$COI_FAST_POOL_SIZE" ||
            log "WARNING: btrfs pool $COI_FAST_POOL not created; sessions use pool $COI_POOL"
    fi
    # raw.idmap "both U U" (workspace owner U is the agent in the container) needs root:U:1
    if [ -n "$COI_IDMAP_UID" ]; then
        local f
        for f in /etc/subuid /etc/subgid; do
            grep -qx "root:$COI_IDMAP_UID:1" "$f" 2>/dev/null || echo "root:$COI_IDMAP_UID:1" >>"$f"
        done
    fi
}

profile_pool() {
    if [ -n "$COI_FAST_POOL" ] && incus storage show "$COI_FAST_POOL" >/dev/null 2>&1; then
        echo "$COI_FAST_POOL"; else echo "$COI_POOL"; fi
}

# ---------------------------------------------------------------- network
egress_mode() {
    if [ -n "${COI_EGRESS:-}" ]; then echo "$COI_EGRESS"
    elif nft list table inet "$GUARD_TABLE" >/dev/null 2>&1; then echo sealed
    else echo nat; fi
}

step_network() {
    need_incus
    local mode; mode=$(egress_mode)
    case $mode in nat|sealed) ;; *) log "COI_EGRESS must be nat or sealed, not '$mode'"; return 2;; esac
    log "network: bridge $COI_BRIDGE, egress $mode"
    if [ "$mode" = nat ]; then network_nat; else network_sealed; fi
    network_profile
}

# A user's machine: Incus' own NAT (its nft table), DHCP with router and DNS, a DNS forwarder
# on the bridge IP; the per-session policy is what filters.
network_nat() {
    local want=(ipv4.address="$COI_BRIDGE_CIDR" ipv4.nat=true ipv4.routing=true
                ipv6.address="$COI_BRIDGE_CIDR6" ipv6.nat=true ipv6.routing=true
                dns.mode=managed raw.dnsmasq=)
    if ! incus network show "$COI_BRIDGE" >/dev/null 2>&1; then
        incus network create "$COI_BRIDGE" "${want[@]}"
    elif [ "$(incus network get "$COI_BRIDGE" ipv4.nat)" != true ] ||
         [ "$(incus network get "$COI_BRIDGE" dns.mode)" != managed ]; then
        incus network set "$COI_BRIDGE" "${want[@]}"
    fi
    nft delete table inet "$GUARD_TABLE" 2>/dev/null || true
}

network_sealed() {
    # dnsmasq for DHCP only: port=0 = no DNS forwarder; empty options 3/6 = no router, no DNS
    local raw; raw=$(printf 'port=0\ndhcp-option=3\ndhcp-option=6\n')
    local want=(ipv4.address="$COI_BRIDGE_CIDR" ipv4.nat=false ipv4.routing=false
                ipv6.address=none ipv6.nat=false dns.mode=none raw.dnsmasq="$raw")
    if ! incus network show "$COI_BRIDGE" >/dev/null 2>&1; then
        incus network create "$COI_BRIDGE" "${want[@]}"
    elif [ "$(incus network get "$COI_BRIDGE" ipv4.address)" != "$COI_BRIDGE_CIDR" ] ||
         [ "$(incus network get "$COI_BRIDGE" ipv4.routing)" != false ] ||
         [ "$(incus network get "$COI_BRIDGE" ipv4.nat)" != false ]; then
        incus network set "$COI_BRIDGE" "${want[@]}"
    fi
    # Guard table, independent of Incus' own: from the bridge only DHCP and packets to the
    # bridge IP reach the host, and nothing is forwarded off the bridge; the named counters
    # of those drops are the "no packet left the machine" check of the tests (0 at the end).
    # Replaced atomically.
    nft -f - <<EOF
table inet $GUARD_TABLE
delete table inet $GUARD_TABLE
table inet $GUARD_TABLE {
    chain input {
        type filter hook input priority filter - 10; policy accept;
        iifname "$COI_BRIDGE" udp dport 67 accept
        iifname "$COI_BRIDGE" ip daddr $BRIDGE_IP accept
        iifname "$COI_BRIDGE" counter drop
    }
    counter leak_out { }
    counter leak_in { }
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        iifname "$COI_BRIDGE" oifname != "$COI_BRIDGE" counter name leak_out drop
        oifname "$COI_BRIDGE" iifname != "$COI_BRIDGE" counter name leak_in drop
    }
}
EOF
}

network_profile() {
    local pool; pool=$(profile_pool)
    if ! incus profile show "$COI_PROFILE" >/dev/null 2>&1; then
        incus profile create "$COI_PROFILE"
        incus profile set "$COI_PROFILE" user.coi.managed=true
        incus profile device add "$COI_PROFILE" root disk path=/ pool="$pool"
        incus profile device add "$COI_PROFILE" eth0 nic network="$COI_BRIDGE" name=eth0
    elif [ "$(incus profile device get "$COI_PROFILE" root pool)" != "$pool" ]; then
        incus profile device set "$COI_PROFILE" root pool="$pool" ||
            log "WARNING: could not move profile $COI_PROFILE to pool $pool (in use?)"
    fi
}

# ---------------------------------------------------------------- venv
# --system-site-packages keeps Debian's bcc, pyroute2 and nftables importable. pip's newer
# cryptography breaks Debian's pyOpenSSL 23 (ws4py imports OpenSSL), hence pyopenssl>=25.
step_venv() {
    if [ ! -x "$COI_VENV/bin/python" ]; then
        log "creating $COI_VENV"
        /usr/bin/python3 -m venv --system-site-packages "$COI_VENV"
    fi
    if ! "$COI_VENV/bin/python" -c 'import pylxd' 2>/dev/null; then
        "$COI_VENV/bin/pip" install -q "pylxd>=2.4" "pyopenssl>=25"
    fi
    if ! "$COI_VENV/bin/python" -c 'import coi_sentinel.cli.main' 2>/dev/null; then
        "$COI_VENV/bin/pip" install -q -e "$REPO"
    fi
    "$COI_VENV/bin/python" -c 'import pylxd, OpenSSL; print("pylxd", pylxd.__version__, "pyOpenSSL", OpenSSL.__version__)'
}

# ---------------------------------------------------------------- images
step_images() {
    need_incus
    local variant force=()
    [ "$COI_REBUILD" = 1 ] && force=(--force)
    for variant in $COI_IMAGES; do
        "$COI_VENV/bin/coi-sentinel" image build --variant "$variant" "${force[@]}"
    done
}

# ---------------------------------------------------------------- agents
step_agents() {
    need_incus
    local tool force=()
    [ "$COI_REBUILD" = 1 ] && force=(--force)
    for tool in $COI_AGENT_TOOLS; do
        "$COI_VENV/bin/coi-sentinel" image build --tool "$tool" "${force[@]}"
    done
}

main() {
    [ "$(id -u)" = 0 ] || [ "$*" = distro ] || { log "run as root"; exit 1; }
    local steps=("$@") s t0
    [ ${#steps[@]} -gt 0 ] || steps=(packages daemon init network venv images agents)
    for s in "${steps[@]}"; do
        declare -F "step_$s" >/dev/null || { log "unknown step '$s'"; exit 2; }
        t0=$(now); "step_$s"; log "step $s: $(elapsed "$t0")s"
    done
}
main "$@"
