#!/usr/bin/env bash
# Provides the container runtime of a real worker: containerd 2.x (containerd, ctr,
# containerd-shim-runc-v2), runc and the CNI plugins (bridge, host-local, loopback, portmap), at
# the versions pinned under "node" in scripts/toolchain/versions.json.
#
#   scripts/toolchain/node-runtime.sh [COMPONENT...]   (default: containerd runc cni-plugins)
#
# Each component is built from its upstream Go module (no prebuilt downloads: they are not
# reachable everywhere) into its own cache entry, keyed by its version:
#   ${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}/node/<component>/<version>/
# A valid entry (stamp + every binary reporting the pinned version) is returned at once.
# Progress goes to stderr; stdout gets one line per component: "<component><TAB><directory>".
#
# Needs Go (>= the "go" entry of each component) and a Go module proxy. runc needs cgo, a C
# compiler and libseccomp (Debian: gcc, pkg-config, libseccomp-dev); it is linked statically.
#
# Environment:
#   MARINA_CACHE_DIR          cache base (see above)
#   MARINA_TOOLCHAIN_FORCE=1  rebuild even if cached
#   MARINA_BUILD_PARALLELISM  go build -p value (default 2)
#   GOFLAGS, GOPROXY, GOMODCACHE, GOCACHE, GOTOOLCHAIN are passed to go as usual.
set -euo pipefail
LOG_PREFIX=node-runtime
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

build_containerd() { # build_containerd <version> <out-dir>
  local v="$1" out="$2" pkg=github.com/containerd/containerd/v2
  # As upstream's Makefile: version stamped into the version package, -s -w, urfave_cli_no_docs;
  # the shim is static with no_grpc. cgo off for all three: the only cgo user is the btrfs
  # snapshotter (left out: no_btrfs), so the binaries are static and need no C toolchain.
  local ld="-s -w -X $pkg/version.Version=$v -X $pkg/version.Package=$pkg"
  CGO_ENABLED=0 go_install "$out" "$pkg/cmd/containerd@$v" -tags "urfave_cli_no_docs no_btrfs" -ldflags "$ld"
  CGO_ENABLED=0 go_install "$out" "$pkg/cmd/ctr@$v" -tags "urfave_cli_no_docs no_btrfs" -ldflags "$ld"
  CGO_ENABLED=0 go_install "$out" "$pkg/cmd/containerd-shim-runc-v2@$v" -tags "urfave_cli_no_docs no_grpc" -ldflags "$ld"
}

build_runc() { # build_runc <version> <out-dir>
  local v="$1" out="$2"
  command -v "${CC:-gcc}" >/dev/null 2>&1 || die "runc needs cgo: install a C compiler (Debian: apt-get install gcc)"
  if ! pkg-config --exists libseccomp 2>/dev/null; then
    die "runc needs libseccomp (Debian: apt-get install libseccomp-dev pkg-config)"
  fi
  # Upstream's `make static`: cgo, seccomp, static PIE, netgo/osusergo. The libpathrs tag (a Rust
  # library) is left out; runc then uses its pure-Go path resolution.
  CGO_ENABLED=1 go_install "$out" "github.com/opencontainers/runc@$v" -buildmode=pie \
    -tags "seccomp urfave_cli_no_docs netgo osusergo" \
    -ldflags "-s -w -linkmode external -extldflags -static-pie"
}

cni_package() { # cni_package <plugin>: its package in github.com/containernetworking/plugins
  case "$1" in
    bridge|loopback|ptp|host-device|macvlan|ipvlan|vlan|dummy|tap) printf 'plugins/main/%s' "$1" ;;
    host-local|static|dhcp) printf 'plugins/ipam/%s' "$1" ;;
    portmap|bandwidth|firewall|tuning|sbr|vrf) printf 'plugins/meta/%s' "$1" ;;
    *) die "unknown CNI plugin $1" ;;
  esac
}

build_cni_plugins() { # build_cni_plugins <version> <out-dir>
  local v="$1" out="$2" mod=github.com/containernetworking/plugins p
  local ld="-s -w -X $mod/pkg/utils/buildversion.BuildVersion=$v"
  for p in $(pin node cni-plugins binaries); do
    CGO_ENABLED=0 go_install "$out" "$mod/$(cni_package "$p")@$v" -ldflags "$ld"
  done
}

main() {
  local components=() c
  for c in "$@"; do
    case "$c" in
      -h|--help) print_help "${BASH_SOURCE[0]}"; exit 0 ;;
      *) pin node "$c" >/dev/null || die "unknown component '$c' (known: $(pin node))"; components+=("$c") ;;
    esac
  done
  [[ ${#components[@]} -gt 0 ]] || read -r -a components <<< "$(pin node)"
  for c in "${components[@]}"; do install_component node "$c"; done
}

main "$@"
