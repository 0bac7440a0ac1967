#!/usr/bin/env bash
# Installs the OpenStack Zed control-plane services from Debian bookworm's packages, for the
# test control plane that scripts/openstack/up.sh starts. Idempotent: when every package is
# already installed it only checks and exits (well under a second).
#
#   scripts/openstack/install.sh            install (root, or sudo) and print nothing on stdout
#   scripts/openstack/install.sh --check    exit 0 if installed, 1 if not; installs nothing
#
# The packages' maintainer scripts would try to start their services; there is no systemd (or
# any init) here, so a temporary policy-rc.d that answers 101 ("action forbidden") makes
# invoke-rc.d skip every start. The packages' debconf questions all default to "do not configure
# a database / rabbit / keystone", which is what we want: up.sh writes its own configuration.
#
# Not installed on purpose:
#   nova-compute   it depends on a hypervisor package (libvirt + qemu-system); Nova's fake virt
#                  driver needs neither, and python3-nova carries the same nova.cmd.compute entry
#                  point that up.sh starts.
set -euo pipefail

PACKAGES=(
  keystone placement-api
  python3-nova nova-api nova-conductor nova-scheduler
  neutron-server neutron-linuxbridge-agent
  glance-api
  octavia-api octavia-worker
  rabbitmq-server mariadb-server python3-pymysql
  uwsgi-core uwsgi-plugin-python3
  iproute2 openssl curl jq
)

log() { printf '[openstack-install] %s\n' "$*" >&2; }

missing() {
  # dpkg-query prints "install ok installed" for a configured package; anything else is missing.
  local p status
  for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || printf '%s\n' "$p"
  done
}

todo=$(missing)
if [ -z "$todo" ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "not installed: $(echo $todo)"
  exit 1
fi

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

# Remove our policy-rc.d on the way out, unless one was there before us (then leave it alone).
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, from marina scripts/openstack/install.sh: start no service\nexit 101\n' |
    "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { [ "$own_policy" -eq 1 ] && "${SUDO[@]}" rm -f "$POLICY"; return 0; }
trap cleanup EXIT

start=$(date +%s)
log "installing: $(echo $todo)"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}" >&2
log "installed in $(( $(date +%s) - start ))s"

todo=$(missing)
if [ -n "$todo" ]; then
  log "still not installed after apt-get: $(echo $todo)"
  exit 1
fi
