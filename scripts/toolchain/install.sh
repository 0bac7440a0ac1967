#!/usr/bin/env bash
# Provides the pinned Kubernetes toolchain (etcd, etcdctl, etcdutl, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy) for one or more
# Kubernetes versions.
#
#   scripts/toolchain/install.sh [VERSION...]     (default: the default version in versions.json)
#
# For each version the binaries end up in
#   ${MARINA_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina/bin}/<k8s-version>/
# Sources, in order:
#   a) the cache, if its stamp file (written only after a complete install) and every binary's
#      --version output match the pinned versions. A binary that is missing or reports another
#      version is installed alone (the valid ones are kept as hard links), so adding a binary to
#      the list never rebuilds the others;
#   b) the upstream release downloads (dl.k8s.io, github.com/etcd-io/etcd releases), verified
#      with the published sha256 sums; short connect timeout so an offline machine falls through;
#   c) a build from the upstream Go modules (needs Go >= the version's "go" entry in
#      versions.json, and access to a Go module proxy).
# Progress goes to stderr; stdout gets one line per version: the directory holding the binaries.
#
# Environment:
#   MARINA_TOOLCHAIN_DIR      cache root (see above)
#   MARINA_TOOLCHAIN_SOURCE   auto (default) | download | build — restrict the sources tried
#   MARINA_TOOLCHAIN_FORCE=1  ignore a valid cache entry and reinstall
#   MARINA_BUILD_PARALLELISM  go build -p value (default 2)
#   MARINA_K8S_RELEASE_URL    mirror of https://dl.k8s.io/release
#   MARINA_ETCD_RELEASE_URL   mirror of https://github.com/etcd-io/etcd/releases/download
#   GOFLAGS, GOPROXY, GOMODCACHE, GOCACHE, GOTOOLCHAIN are passed to go as usual.
set -euo pipefail
LOG_PREFIX=toolchain
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

GO_TEMPLATES="$TOOLCHAIN_DIR/go"
CACHE_ROOT="${MARINA_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina/bin}"
SOURCE="${MARINA_TOOLCHAIN_SOURCE:-auto}"
CONNECT_TIMEOUT=5
K8S_RELEASE_URL="${MARINA_K8S_RELEASE_URL:-https://dl.k8s.io/release}"
ETCD_RELEASE_URL="${MARINA_ETCD_RELEASE_URL:-https://github.com/etcd-io/etcd/releases/download}"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
ETCD_BINARIES=(etcd etcdctl etcdutl)

case "$SOURCE" in auto|download|build) ;; *) die "MARINA_TOOLCHAIN_SOURCE must be auto, download or build (got '$SOURCE')";; esac

normalize_version() { local v="$1"; [[ "$v" == v* ]] || v="v$v"; printf '%s' "$v"; }

is_etcd_binary() { [[ "$1" == etcd || "$1" == etcdctl || "$1" == etcdutl ]]; }

# ---------------------------------------------------------------------------------------------
# (a) cache check: stamp + --version of every binary
# ---------------------------------------------------------------------------------------------
binary_version() {
  # Prints the version a binary reports, normalized to vX.Y.Z, or nothing.
  local dir="$1" bin="$2" out=""
  [[ -x "$dir/$bin" ]] || return 0
  case "$bin" in
    kubectl) out="$("$dir/$bin" version --client 2>/dev/null || true)" ;;
    etcdctl|etcdutl) out="$("$dir/$bin" version 2>/dev/null || true)" ;;
    *) out="$("$dir/$bin" --version 2>/dev/null || true)" ;;
  esac
  # "Kubernetes v1.36.3", "Client Version: v1.36.3", "etcd Version: 3.6.16", "etcdctl version: 3.6.16"
  printf '%s\n' "$out" | head -n 1 | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+[^ ]*' | head -n 1 | sed 's/^/v/'
}

# missing_binaries <dir> <k8s-version> <etcd-version>: the binaries to (re)install into dir: all of
# them unless its stamp names both versions, else those absent or reporting another version.
missing_binaries() {
  local dir="$1" kv="$2" ev="$3" b want got
  if [[ "$(stamp_field "$dir/$STAMP_NAME" kubernetes)" != "$kv" || "$(stamp_field "$dir/$STAMP_NAME" etcd)" != "$ev" ]]; then
    printf '%s\n' "${K8S_BINARIES[@]}" "${ETCD_BINARIES[@]}"
    return 0
  fi
  for b in "${K8S_BINARIES[@]}" "${ETCD_BINARIES[@]}"; do
    want="$kv"; is_etcd_binary "$b" && want="$ev"
    got="$(binary_version "$dir" "$b")"
    [[ "$got" == "$want" ]] || printf '%s\n' "$b"
  done
}

verify_dir() {
  # verify_dir <dir> <k8s-version> <etcd-version>: 0 if every binary reports the pinned version.
  local dir="$1" kv="$2" ev="$3" b got want
  for b in "${K8S_BINARIES[@]}" "${ETCD_BINARIES[@]}"; do
    want="$kv"; is_etcd_binary "$b" && want="$ev"
    got="$(binary_version "$dir" "$b")"
    if [[ "$got" != "$want" ]]; then log "$b in $dir reports '${got:-nothing}', want $want"; return 1; fi
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
# (b) downloads
# ---------------------------------------------------------------------------------------------
fetch() { # fetch <url> <out>
  curl -fsSL --connect-timeout "$CONNECT_TIMEOUT" --max-time 900 -o "$2" "$1"
}

download_k8s() { # download_k8s <k8s-version> <out-dir> <binary>...
  local kv="$1" out="$2" b url want got; shift 2
  command -v curl >/dev/null 2>&1 || { log "curl not found; skipping downloads"; return 1; }
  for b in "$@"; do
    url="$K8S_RELEASE_URL/$kv/bin/$OS/$ARCH/$b"
    log "downloading $url"
    fetch "$url.sha256" "$out/$b.sha256" || { log "download failed: $url.sha256"; return 1; }
    fetch "$url" "$out/$b" || { log "download failed: $url"; return 1; }
    want="$(awk '{print $1}' "$out/$b.sha256")"; got="$(sha256_of "$out/$b")"
    [[ -n "$want" && "$want" == "$got" ]] || { log "sha256 mismatch for $b: want $want got $got"; return 1; }
    rm -f "$out/$b.sha256"; chmod 0755 "$out/$b"
  done
}

download_etcd() { # download_etcd <etcd-version> <out-dir> <binary>...
  local ev="$1" out="$2" base name want got ext b; shift 2
  command -v curl >/dev/null 2>&1 || { log "curl not found; skipping downloads"; return 1; }
  ext="tar.gz"; [[ "$OS" == darwin ]] && ext="zip"
  name="etcd-$ev-$OS-$ARCH"
  base="$ETCD_RELEASE_URL/$ev"
  log "downloading $base/$name.$ext"
  fetch "$base/SHA256SUMS" "$out/etcd-SHA256SUMS" || { log "download failed: $base/SHA256SUMS"; return 1; }
  fetch "$base/$name.$ext" "$out/$name.$ext" || { log "download failed: $base/$name.$ext"; return 1; }
  want="$(grep " $name.$ext\$" "$out/etcd-SHA256SUMS" | awk '{print $1}')"; got="$(sha256_of "$out/$name.$ext")"
  [[ -n "$want" && "$want" == "$got" ]] || { log "sha256 mismatch for $name.$ext: want $want got $got"; return 1; }
  if [[ "$ext" == zip ]]; then (cd "$out" && unzip -q "$name.zip"); else tar -xzf "$out/$name.$ext" -C "$out"; fi
  for b in "$@"; do
    [[ -f "$out/$name/$b" ]] || { log "$name.$ext has no $b"; return 1; }
    mv "$out/$name/$b" "$out/"
  done
  rm -rf "${out:?}/$name" "${out:?}/$name.$ext" "${out:?}/etcd-SHA256SUMS"
}

# ---------------------------------------------------------------------------------------------
# (c) builds from the upstream Go modules
# ---------------------------------------------------------------------------------------------
check_go() { # check_go <k8s-version>
  local need; need="$(pin versions "$1" go)"
  if ! command -v go >/dev/null 2>&1; then
    cat >&2 <<EOF
[toolchain] error: cannot obtain the Kubernetes $1 binaries: the downloads failed and Go is not installed.
  Building from source needs Go >= $need (the 'go' directive of k8s.io/kubernetes@$1) and access to a
  Go module proxy (GOPROXY, default https://proxy.golang.org). 'apt-get install golang-go' is NOT
  enough on Debian 12 (it gives Go 1.19): install Go $need or newer (https://go.dev/dl/, a newer
  distribution package, or 'go install golang.org/dl/go<version>@latest' from an older Go), put it on
  PATH, and run this script again (8-17 minutes and ~2 GB of RAM on 2 cores). Alternatively point
  MARINA_BIN_DIR at a directory that already holds etcd, etcdctl, kube-apiserver,
  kube-controller-manager, kube-scheduler and kubectl.
EOF
    exit 1
  fi
  require_go "Kubernetes $1" "$need"
}

build_k8s() { # build_k8s <k8s-version> <out-dir> <work-dir> <binary>...
  local kv="$1" out="$2" work="$3/kubernetes" mod gov minor staging; shift 3
  log "preparing the Go build of Kubernetes $kv (go.mod of k8s.io/kubernetes@$kv)"
  mod="$(mod_file "k8s.io/kubernetes@$kv")"
  [[ -f "$mod" ]] || die "could not locate the go.mod of k8s.io/kubernetes@$kv"
  gov="$(go_directive "$mod")"
  minor="${kv#v1.}"                         # 36.3
  # Staging modules: every `k8s.io/<m> => ./staging/src/k8s.io/<m>` replace in the pinned go.mod.
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*$#\1#p' "$mod" | sort -u)"
  [[ -n "$staging" ]] || die "no staging replaces found in $mod"
  log "$(printf '%s\n' "$staging" | wc -l | tr -d ' ') staging modules, pinned at v0.$minor"
  mkdir -p "$work"
  cp "$GO_TEMPLATES/kubernetes/"*.go "$work/"
  {
    echo "// Generated by scripts/toolchain/install.sh for Kubernetes $kv. Do not commit."
    echo "module marina.local/toolchain/kubernetes"
    echo
    echo "go $gov"
    echo
    grep '^godebug ' "$mod" || true
    echo
    echo "require k8s.io/kubernetes $kv"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m v0.$minor"; done
    echo ")"
  } > "$work/go.mod"
  (cd "$work" && timed_build "module graph (go mod tidy)" go mod tidy)

  local pkg_ver="k8s.io/component-base/version" cg_ver="k8s.io/client-go/pkg/version"
  local major="${kv#v}"; major="${major%%.*}"
  local mnr="${minor%%.*}"
  local date; date="$(date -u ${SOURCE_DATE_EPOCH:+-d @$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w"
  local p
  for p in "$pkg_ver" "$cg_ver"; do
    ld+=" -X $p.gitVersion=$kv -X $p.gitMajor=$major -X $p.gitMinor=$mnr -X $p.gitTreeState=archive -X $p.buildDate=$date"
  done
  local b
  # All statically linked (CGO_ENABLED=0). Upstream links kubelet dynamically when a C compiler is
  # around (it is the one server binary missing from KUBE_STATIC_BINARIES in hack/lib/golang.sh);
  # it has no cgo-only feature, so the static build behaves the same and needs no C toolchain.
  for b in "$@"; do
    (cd "$work" && CGO_ENABLED=0 timed_build "$b $kv" \
      go build -p "$PARALLELISM" -trimpath -buildvcs=false -tags selinux,notest -ldflags "$ld" \
        -o "$out/$b" "k8s.io/kubernetes/cmd/$b")
  done
}

build_etcd() { # build_etcd <etcd-version> <out-dir> <work-dir> <binary>...
  local ev="$1" out="$2" work="$3/etcd" mod gov; shift 3
  log "preparing the Go build of etcd $ev"
  mod="$(mod_file "go.etcd.io/etcd/server/v3@$ev")"
  [[ -f "$mod" ]] || die "could not locate the go.mod of go.etcd.io/etcd/server/v3@$ev"
  gov="$(go_directive "$mod")"
  mkdir -p "$work"
  cp -R "$GO_TEMPLATES/etcd/." "$work/"
  {
    echo "// Generated by scripts/toolchain/install.sh for etcd $ev. Do not commit."
    echo "module marina.local/toolchain/etcd"
    echo
    echo "go $gov"
    echo
    echo "require ("
    echo "	go.etcd.io/etcd/server/v3 $ev"
    echo "	go.etcd.io/etcd/etcdctl/v3 $ev"
    echo "	go.etcd.io/etcd/etcdutl/v3 $ev"
    echo ")"
  } > "$work/go.mod"
  (cd "$work" && timed_build "etcd module graph (go mod tidy)" go mod tidy)
  local b
  for b in "$@"; do
    (cd "$work" && CGO_ENABLED=0 timed_build "$b $ev" \
      go build -p "$PARALLELISM" -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/$b" "./cmd/$b")
  done
}

# ---------------------------------------------------------------------------------------------
# one version
# ---------------------------------------------------------------------------------------------
install_version() { # install_version <k8s-version>
  local kv="$1" ev dest tmp work k8s_src etcd_src b
  ev="$(pin versions "$kv" etcd)" || die "Kubernetes $kv is not in the pinned matrix ($VERSIONS_JSON): $(pin versions)"
  dest="$CACHE_ROOT/$kv"

  local missing=()
  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" == 1 ]]; then missing=("${K8S_BINARIES[@]}" "${ETCD_BINARIES[@]}")
  else mapfile -t missing < <(missing_binaries "$dest" "$kv" "$ev"); fi
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "Kubernetes $kv (etcd $ev): cached in $dest"
    printf '%s\n' "$dest"
    return 0
  fi

  mkdir -p "$CACHE_ROOT"
  acquire_lock "$CACHE_ROOT/.$kv.lock"
  # Someone else may have finished while we waited.
  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" != 1 ]]; then mapfile -t missing < <(missing_binaries "$dest" "$kv" "$ev"); fi
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "Kubernetes $kv (etcd $ev): cached in $dest"
    printf '%s\n' "$dest"
    release_lock
    return 0
  fi

  tmp="$(mktemp -d "$CACHE_ROOT/.tmp-$kv.XXXXXX")"
  work="$(mktemp -d "${TMPDIR:-/tmp}/marina-toolchain-$kv.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp' '$work'" EXIT

  # The valid binaries of the current entry are kept as hard links (same filesystem): nothing is
  # copied or rebuilt, and processes running them are not disturbed.
  local k8s_missing=() etcd_missing=() kept=()
  for b in "${K8S_BINARIES[@]}" "${ETCD_BINARIES[@]}"; do
    if [[ " ${missing[*]} " == *" $b "* ]]; then
      if is_etcd_binary "$b"; then etcd_missing+=("$b"); else k8s_missing+=("$b"); fi
    else
      ln "$dest/$b" "$tmp/$b" 2>/dev/null || cp -p "$dest/$b" "$tmp/$b"
      kept+=("$b")
    fi
  done
  if [[ ${#kept[@]} -gt 0 ]]; then
    log "installing ${missing[*]} for Kubernetes $kv + etcd $ev ($OS/$ARCH) beside the cached ${kept[*]} in $dest"
  else
    log "installing Kubernetes $kv + etcd $ev for $OS/$ARCH into $dest"
  fi

  # Sources of what is installed now; binaries kept from the entry keep the entry's sources.
  k8s_src="" etcd_src=""
  if [[ "$SOURCE" != build ]]; then
    # Each download goes to its own directory and is moved in only when complete.
    mkdir -p "$tmp/.dl-k8s" "$tmp/.dl-etcd"
    if [[ ${#k8s_missing[@]} -gt 0 ]] && download_k8s "$kv" "$tmp/.dl-k8s" "${k8s_missing[@]}"; then
      mv "$tmp/.dl-k8s/"* "$tmp/"; k8s_src=download; k8s_missing=()
    fi
    if [[ ${#etcd_missing[@]} -gt 0 ]] && download_etcd "$ev" "$tmp/.dl-etcd" "${etcd_missing[@]}"; then
      mv "$tmp/.dl-etcd/"* "$tmp/"; etcd_src=download; etcd_missing=()
    fi
    rm -rf "$tmp/.dl-k8s" "$tmp/.dl-etcd"
  fi
  if [[ ${#k8s_missing[@]} -gt 0 || ${#etcd_missing[@]} -gt 0 ]]; then
    if [[ "$SOURCE" == download ]]; then die "downloads failed and MARINA_TOOLCHAIN_SOURCE=download forbids building"; fi
    [[ "$SOURCE" == build ]] || log "downloads unavailable; building from the upstream Go modules instead"
    check_go "$kv"
    if [[ ${#etcd_missing[@]} -gt 0 ]]; then build_etcd "$ev" "$tmp" "$work" "${etcd_missing[@]}"; etcd_src=build; fi
    if [[ ${#k8s_missing[@]} -gt 0 ]]; then build_k8s "$kv" "$tmp" "$work" "${k8s_missing[@]}"; k8s_src=build; fi
  fi
  [[ -n "$k8s_src" ]] || k8s_src="$(stamp_field "$dest/$STAMP_NAME" kubernetesSource)"
  [[ -n "$etcd_src" ]] || etcd_src="$(stamp_field "$dest/$STAMP_NAME" etcdSource)"

  verify_dir "$tmp" "$kv" "$ev" || die "the installed binaries do not report the pinned versions"
  write_stamp "$tmp/$STAMP_NAME" "${K8S_BINARIES[*]} ${ETCD_BINARIES[*]}" \
    kubernetes "$kv" etcd "$ev" kubernetesSource "$k8s_src" etcdSource "$etcd_src"
  publish_dir "$tmp" "$dest"
  rm -rf "$work"
  trap - EXIT
  release_lock
  for b in "${missing[@]}"; do
    log "  $b $(du -h "$dest/$b" | awk '{print $1}')"
  done
  log "Kubernetes $kv (etcd $ev) installed in $dest (kubernetes: $k8s_src, etcd: $etcd_src)"
  printf '%s\n' "$dest"
}

main() {
  local versions=() v
  if [[ $# -eq 0 ]]; then versions=("$(pin default)"); fi
  for v in "$@"; do
    case "$v" in
      -h|--help) print_help "${BASH_SOURCE[0]}"; exit 0 ;;
      *) versions+=("$(normalize_version "$v")") ;;
    esac
  done
  for v in "${versions[@]}"; do install_version "$v"; done
}

main "$@"
