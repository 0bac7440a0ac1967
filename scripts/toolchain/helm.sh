#!/usr/bin/env bash
# Provides helm, which renders the chart in deploy/helm/marina (scripts/ha/render-manifests.sh and
# test/ha/manifests.test.ts), built from its upstream Go module at the version pinned under
# "tools" in scripts/toolchain/versions.json, and cached by version:
#   ${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}/tools/helm/<version>/helm
#
#   scripts/toolchain/helm.sh
#
# Progress goes to stderr; stdout gets "helm<TAB><directory>".
#
# Environment:
#   MARINA_CACHE_DIR          cache base (see above)
#   MARINA_TOOLCHAIN_FORCE=1  rebuild even if cached
#   MARINA_BUILD_PARALLELISM  go build -p value (default 2)
#   GOFLAGS, GOPROXY, GOMODCACHE, GOCACHE, GOTOOLCHAIN are passed to go as usual.
set -euo pipefail
LOG_PREFIX=helm
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

build_helm() { # build_helm <version> <out-dir>
  local v="$1" out="$2" pkg=helm.sh/helm/v3 client_go major minor
  # As upstream's Makefile: the version stamped (the module has no VCS data), and the Kubernetes
  # version `helm template` assumes (.Capabilities.KubeVersion) derived from the client-go it
  # links (k8s.io/client-go v0.34.x -> 1.34).
  client_go="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v\([0-9][0-9.]*\).*$/\1/p' "$(mod_file "$pkg@$v")" | head -n 1)"
  [[ -n "$client_go" ]] || die "cannot find the k8s.io/client-go version in helm $v's go.mod"
  major=$(( ${client_go%%.*} + 1 ))
  minor="$(cut -d. -f2 <<<"$client_go")"
  CGO_ENABLED=0 go_install "$out" "$pkg/cmd/helm@$v" -ldflags "-s -w \
    -X $pkg/internal/version.version=$v -X $pkg/internal/version.gitTreeState=clean \
    -X $pkg/pkg/lint/rules.k8sVersionMajor=$major -X $pkg/pkg/lint/rules.k8sVersionMinor=$minor \
    -X $pkg/pkg/chartutil.k8sVersionMajor=$major -X $pkg/pkg/chartutil.k8sVersionMinor=$minor"
}

case "${1:-}" in
  -h|--help) print_help "${BASH_SOURCE[0]}"; exit 0 ;;
  "") install_component tools helm ;;
  *) die "unexpected argument '$1' (see --help)" ;;
esac
