#!/usr/bin/env bash
# Provides the pinned Kubernetes toolchain (etcd, etcdctl, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) for one or more Kubernetes versions.
#
#   scripts/toolchain/install.sh [VERSION...]     (default: the default version in versions.json)
#
# For each version the binaries end up in
#   ${MARINA_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina/bin}/<k8s-version>/
# Sources, in order:
#   a) the cache, if its stamp file (written only after a complete install) and every binary's
#      --version output match the pinned versions;
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

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS_JSON="$SCRIPT_DIR/versions.json"
GO_TEMPLATES="$SCRIPT_DIR/go"
CACHE_ROOT="${MARINA_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina/bin}"
SOURCE="${MARINA_TOOLCHAIN_SOURCE:-auto}"
PARALLELISM="${MARINA_BUILD_PARALLELISM:-2}"
STAMP_NAME=".marina-toolchain.json"
CONNECT_TIMEOUT=5
K8S_RELEASE_URL="${MARINA_K8S_RELEASE_URL:-https://dl.k8s.io/release}"
ETCD_RELEASE_URL="${MARINA_ETCD_RELEASE_URL:-https://github.com/etcd-io/etcd/releases/download}"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ETCD_BINARIES=(etcd etcdctl)

START_TS=$(date +%s)
log() { printf '[toolchain +%ss] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
die() { printf '[toolchain] error: %s\n' "$*" >&2; exit 1; }

case "$SOURCE" in auto|download|build) ;; *) die "MARINA_TOOLCHAIN_SOURCE must be auto, download or build (got '$SOURCE')";; esac

# ---------------------------------------------------------------------------------------------
# versions.json access (node is always there for Marina; python3 as a fallback)
# ---------------------------------------------------------------------------------------------
matrix() {
  # matrix default | matrix etcd <v> | matrix go <v> | matrix list
  local what="$1" v="${2:-}"
  if command -v node >/dev/null 2>&1; then
    node -e '
      const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const [what, v] = process.argv.slice(2);
      if (what === "default") console.log(m.default);
      else if (what === "list") console.log(Object.keys(m.versions).join(" "));
      else { const e = m.versions[v]; if (!e) process.exit(3); console.log(e[what]); }
    ' "$VERSIONS_JSON" "$what" "$v"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c '
import json, sys
m = json.load(open(sys.argv[1])); what, v = sys.argv[2], sys.argv[3]
if what == "default": print(m["default"])
elif what == "list": print(" ".join(m["versions"]))
else:
    e = m["versions"].get(v)
    if e is None: sys.exit(3)
    print(e[what])
' "$VERSIONS_JSON" "$what" "$v"
  else
    die "need node or python3 to read $VERSIONS_JSON"
  fi
}

normalize_version() { local v="$1"; [[ "$v" == v* ]] || v="v$v"; printf '%s' "$v"; }

# ---------------------------------------------------------------------------------------------
# platform
# ---------------------------------------------------------------------------------------------
OS="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
  x86_64|amd64) ARCH=amd64 ;;
  aarch64|arm64) ARCH=arm64 ;;
  ppc64le) ARCH=ppc64le ;;
  s390x) ARCH=s390x ;;
  *) ARCH="$(uname -m)" ;;
esac

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | awk '{print $1}'
  else shasum -a 256 "$1" | awk '{print $1}'; fi
}

# ---------------------------------------------------------------------------------------------
# (a) cache check: stamp + --version of every binary
# ---------------------------------------------------------------------------------------------
binary_version() {
  # Prints the version a binary reports, normalized to vX.Y.Z, or nothing.
  local dir="$1" bin="$2" out=""
  [[ -x "$dir/$bin" ]] || return 0
  case "$bin" in
    kubectl) out="$("$dir/$bin" version --client 2>/dev/null || true)" ;;
    etcdctl) out="$("$dir/$bin" version 2>/dev/null || true)" ;;
    *) out="$("$dir/$bin" --version 2>/dev/null || true)" ;;
  esac
  # "Kubernetes v1.36.3", "Client Version: v1.36.3", "etcd Version: 3.6.16", "etcdctl version: 3.6.16"
  printf '%s\n' "$out" | head -n 1 | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+[^ ]*' | head -n 1 | sed 's/^/v/'
}

verify_dir() {
  # verify_dir <dir> <k8s-version> <etcd-version>: 0 if every binary reports the pinned version.
  local dir="$1" kv="$2" ev="$3" b got
  for b in "${K8S_BINARIES[@]}"; do
    got="$(binary_version "$dir" "$b")"
    if [[ "$got" != "$kv" ]]; then log "$b in $dir reports '${got:-nothing}', want $kv"; return 1; fi
  done
  for b in "${ETCD_BINARIES[@]}"; do
    got="$(binary_version "$dir" "$b")"
    if [[ "$got" != "$ev" ]]; then log "$b in $dir reports '${got:-nothing}', want $ev"; return 1; fi
  done
  return 0
}

cache_valid() {
  local dir="$1" kv="$2" ev="$3" stamp="$1/$STAMP_NAME"
  [[ -f "$stamp" ]] || return 1
  grep -q "\"kubernetes\": \"$kv\"" "$stamp" || return 1
  grep -q "\"etcd\": \"$ev\"" "$stamp" || return 1
  verify_dir "$dir" "$kv" "$ev" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# (b) downloads
# ---------------------------------------------------------------------------------------------
fetch() { # fetch <url> <out>
  curl -fsSL --connect-timeout "$CONNECT_TIMEOUT" --max-time 900 -o "$2" "$1"
}

download_k8s() { # download_k8s <k8s-version> <out-dir>
  local kv="$1" out="$2" b url want got
  command -v curl >/dev/null 2>&1 || { log "curl not found; skipping downloads"; return 1; }
  for b in "${K8S_BINARIES[@]}"; do
    url="$K8S_RELEASE_URL/$kv/bin/$OS/$ARCH/$b"
    log "downloading $url"
    fetch "$url.sha256" "$out/$b.sha256" || { log "download failed: $url.sha256"; return 1; }
    fetch "$url" "$out/$b" || { log "download failed: $url"; return 1; }
    want="$(awk '{print $1}' "$out/$b.sha256")"; got="$(sha256_of "$out/$b")"
    [[ -n "$want" && "$want" == "$got" ]] || { log "sha256 mismatch for $b: want $want got $got"; return 1; }
    rm -f "$out/$b.sha256"; chmod 0755 "$out/$b"
  done
}

download_etcd() { # download_etcd <etcd-version> <out-dir>
  local ev="$1" out="$2" base name want got ext
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
  mv "$out/$name/etcd" "$out/$name/etcdctl" "$out/"
  rm -rf "${out:?}/$name" "${out:?}/$name.$ext" "${out:?}/etcd-SHA256SUMS"
}

# ---------------------------------------------------------------------------------------------
# (c) builds from the upstream Go modules
# ---------------------------------------------------------------------------------------------
version_ge() { # version_ge A B: A >= B for dotted versions without a leading "go"/"v"
  [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$2" ]]
}

check_go() { # check_go <k8s-version>
  local need; need="$(matrix go "$1")"
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
  local have; have="$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*$//')"
  if ! version_ge "$have" "$need" && [[ "$(go env GOTOOLCHAIN)" == local* ]]; then
    die "Go $have is too old to build Kubernetes $1 (needs >= $need) and GOTOOLCHAIN=local forbids fetching a newer one; install Go >= $need"
  fi
}

mod_file() { # mod_file <module@version>: prints the path of the module's go.mod (downloads the module)
  local json
  # Run outside any module so a go.mod in the caller's working directory cannot interfere.
  json="$(cd / && go mod download -json "$1")" || { printf '%s\n' "$json" >&2; die "go mod download $1 failed"; }
  printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n 1
}

go_directive() { sed -n 's/^go \([0-9][0-9.]*\).*$/\1/p' "$1" | head -n 1; }

timed_build() { # timed_build <label> <cmd...>
  local label="$1"; shift
  local t0; t0=$(date +%s)
  log "building $label ..."
  "$@"
  log "built $label in $(( $(date +%s) - t0 ))s"
}

build_k8s() { # build_k8s <k8s-version> <out-dir> <work-dir>
  local kv="$1" out="$2" work="$3/kubernetes" mod gov minor staging
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
  for b in "${K8S_BINARIES[@]}"; do
    (cd "$work" && CGO_ENABLED=0 timed_build "$b $kv" \
      go build -p "$PARALLELISM" -trimpath -buildvcs=false -tags selinux,notest -ldflags "$ld" \
        -o "$out/$b" "k8s.io/kubernetes/cmd/$b")
  done
}

build_etcd() { # build_etcd <etcd-version> <out-dir> <work-dir>
  local ev="$1" out="$2" work="$3/etcd" mod gov
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
    echo ")"
  } > "$work/go.mod"
  (cd "$work" && timed_build "etcd module graph (go mod tidy)" go mod tidy)
  local b
  for b in "${ETCD_BINARIES[@]}"; do
    (cd "$work" && CGO_ENABLED=0 timed_build "$b $ev" \
      go build -p "$PARALLELISM" -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/$b" "./cmd/$b")
  done
}

# ---------------------------------------------------------------------------------------------
# one version
# ---------------------------------------------------------------------------------------------
install_version() { # install_version <k8s-version>
  local kv="$1" ev dest tmp work k8s_src etcd_src
  ev="$(matrix etcd "$kv")" || die "Kubernetes $kv is not in the pinned matrix ($VERSIONS_JSON): $(matrix list)"
  dest="$CACHE_ROOT/$kv"

  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" != 1 ]] && cache_valid "$dest" "$kv" "$ev"; then
    log "Kubernetes $kv (etcd $ev): cached in $dest"
    printf '%s\n' "$dest"
    return 0
  fi

  mkdir -p "$CACHE_ROOT"
  local lock="$CACHE_ROOT/.$kv.lock"
  exec {lockfd}>"$lock"
  if command -v flock >/dev/null 2>&1; then
    if ! flock -n "$lockfd"; then
      log "another install of $kv is running; waiting for its lock ($lock)"
      flock "$lockfd"
    fi
  else
    log "flock not found; not locking (do not run installs of $kv concurrently)"
  fi

  # Someone else may have finished while we waited.
  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" != 1 ]] && cache_valid "$dest" "$kv" "$ev"; then
    log "Kubernetes $kv (etcd $ev): cached in $dest"
    printf '%s\n' "$dest"
    exec {lockfd}>&-
    return 0
  fi

  tmp="$(mktemp -d "$CACHE_ROOT/.tmp-$kv.XXXXXX")"
  work="$(mktemp -d "${TMPDIR:-/tmp}/marina-toolchain-$kv.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp' '$work'" EXIT
  log "installing Kubernetes $kv + etcd $ev for $OS/$ARCH into $dest"

  k8s_src="" etcd_src=""
  if [[ "$SOURCE" != build ]]; then
    # Each download goes to its own directory and is moved in only when complete.
    mkdir -p "$tmp/.dl-k8s" "$tmp/.dl-etcd"
    if download_k8s "$kv" "$tmp/.dl-k8s"; then mv "$tmp/.dl-k8s/"* "$tmp/"; k8s_src=download; fi
    if download_etcd "$ev" "$tmp/.dl-etcd"; then mv "$tmp/.dl-etcd/"* "$tmp/"; etcd_src=download; fi
    rm -rf "$tmp/.dl-k8s" "$tmp/.dl-etcd"
  fi
  if [[ -z "$k8s_src" || -z "$etcd_src" ]]; then
    if [[ "$SOURCE" == download ]]; then die "downloads failed and MARINA_TOOLCHAIN_SOURCE=download forbids building"; fi
    [[ "$SOURCE" == build ]] || log "downloads unavailable; building from the upstream Go modules instead"
    check_go "$kv"
    if [[ -z "$etcd_src" ]]; then build_etcd "$ev" "$tmp" "$work"; etcd_src=build; fi
    if [[ -z "$k8s_src" ]]; then build_k8s "$kv" "$tmp" "$work"; k8s_src=build; fi
  fi

  verify_dir "$tmp" "$kv" "$ev" || die "the installed binaries do not report the pinned versions"
  {
    printf '{\n'
    printf '  "kubernetes": "%s",\n' "$kv"
    printf '  "etcd": "%s",\n' "$ev"
    printf '  "platform": "%s/%s",\n' "$OS" "$ARCH"
    printf '  "kubernetesSource": "%s",\n' "$k8s_src"
    printf '  "etcdSource": "%s",\n' "$etcd_src"
    printf '  "installedAt": "%s"\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '}\n'
  } > "$tmp/$STAMP_NAME"
  chmod 0755 "$tmp"

  # Atomic publish: the new directory appears under its final name in one rename. A previous
  # (invalid) entry is first renamed aside, then removed.
  if [[ -e "$dest" ]]; then
    local old; old="$(mktemp -d "$CACHE_ROOT/.old-$kv.XXXXXX")"
    mv "$dest" "$old/"
    mv "$tmp" "$dest"
    rm -rf "$old"
  else
    mv "$tmp" "$dest"
  fi
  rm -rf "$work"
  trap - EXIT
  exec {lockfd}>&-
  local b
  for b in "${K8S_BINARIES[@]}" "${ETCD_BINARIES[@]}"; do
    log "  $b $(du -h "$dest/$b" | awk '{print $1}')"
  done
  log "Kubernetes $kv (etcd $ev) installed in $dest (kubernetes: $k8s_src, etcd: $etcd_src)"
  printf '%s\n' "$dest"
}

main() {
  local versions=() v
  if [[ $# -eq 0 ]]; then versions=("$(matrix default)"); fi
  for v in "$@"; do
    case "$v" in
      -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
      *) versions+=("$(normalize_version "$v")") ;;
    esac
  done
  for v in "${versions[@]}"; do install_version "$v"; done
}

main "$@"
