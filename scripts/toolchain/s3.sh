#!/usr/bin/env bash
# Provides the S3 server used by tests: VersityGW (an S3 gateway; its POSIX backend stores buckets
# as directories), built from its upstream Go module at the version pinned under "s3" in
# scripts/toolchain/versions.json, and cached by version:
#   ${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}/s3/versitygw/<version>/versitygw
#
#   scripts/toolchain/s3.sh
#
# Progress goes to stderr; stdout gets "versitygw<TAB><directory>". Run it as
#   ROOT_ACCESS_KEY=... ROOT_SECRET_KEY=... versitygw --port 127.0.0.1:PORT posix DIR
#
# Environment:
#   MARINA_CACHE_DIR          cache base (see above)
#   MARINA_TOOLCHAIN_FORCE=1  rebuild even if cached
#   MARINA_BUILD_PARALLELISM  go build -p value (default 2)
#   GOFLAGS, GOPROXY, GOMODCACHE, GOCACHE, GOTOOLCHAIN are passed to go as usual.
set -euo pipefail
LOG_PREFIX=s3
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

build_versitygw() { # build_versitygw <version> <out-dir>
  local v="$1" out="$2"
  # As upstream's Makefile, with the version stamped (the module has no VCS data); no cgo needed.
  CGO_ENABLED=0 go_install "$out" "github.com/versity/versitygw/cmd/versitygw@$v" \
    -ldflags "-s -w -X main.Version=$v -X main.Build=module -X main.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

case "${1:-}" in
  -h|--help) print_help "${BASH_SOURCE[0]}"; exit 0 ;;
  "") install_component s3 versitygw ;;
  *) die "unexpected argument '$1' (see --help)" ;;
esac
