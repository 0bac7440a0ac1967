# Shared helpers for the scripts in scripts/toolchain/ (sourced, never run directly).
#
# Every script that sources this file gets: logging (stderr, "[<prefix> +Ns] ..."), the pinned
# versions from versions.json, the cache roots, a per-entry flock, atomic publication of a
# finished cache directory, and a `go install` wrapper that times each build. The Go build cache
# (GOCACHE) and module cache (GOMODCACHE) are Go's defaults unless the caller overrides them, so
# every script reuses what earlier builds compiled.
# shellcheck shell=bash

TOOLCHAIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS_JSON="$TOOLCHAIN_DIR/versions.json"
LOG_PREFIX="${LOG_PREFIX:-toolchain}"
PARALLELISM="${MARINA_BUILD_PARALLELISM:-2}"
START_TS=$(date +%s)

log() { printf '[%s +%ss] %s\n' "$LOG_PREFIX" "$(( $(date +%s) - START_TS ))" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }

# Prints the help block at the top of a script (the comment lines after the shebang).
print_help() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; }

# pin <key>...: a value from versions.json, one key per level (`pin versions v1.36.3 etcd`).
# Strings print as is, arrays as space-separated items, objects as their space-separated keys;
# exit status 3 if the path does not exist.
pin() {
  if command -v node >/dev/null 2>&1; then
    node -e '
      let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      for (const k of process.argv.slice(2)) {
        if (v === null || typeof v !== "object" || !(k in v)) process.exit(3);
        v = v[k];
      }
      console.log(Array.isArray(v) ? v.join(" ") : typeof v === "object" ? Object.keys(v).join(" ") : String(v));
    ' "$VERSIONS_JSON" "$@"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    if not isinstance(v, dict) or k not in v: sys.exit(3)
    v = v[k]
print(" ".join(v) if isinstance(v, list) else " ".join(v.keys()) if isinstance(v, dict) else v)
' "$VERSIONS_JSON" "$@"
  else
    die "need node or python3 to read $VERSIONS_JSON"
  fi
}

# Root of every Marina cache except the Kubernetes binaries (which keep MARINA_TOOLCHAIN_DIR).
MARINA_CACHE_BASE="${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}"

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

# acquire_lock <file>: exclusive flock held on fd $LOCK_FD until release_lock (or exit).
acquire_lock() {
  exec {LOCK_FD}>"$1"
  if command -v flock >/dev/null 2>&1; then
    if ! flock -n "$LOCK_FD"; then
      log "another run holds $1; waiting for it"
      flock "$LOCK_FD"
    fi
  else
    log "flock not found; not locking (do not run installs concurrently)"
  fi
}
release_lock() { exec {LOCK_FD}>&-; }

# publish_dir <tmp> <dest>: the finished directory appears under its final name in one rename.
# A previous entry is first renamed aside, then removed (running binaries keep their inodes).
publish_dir() {
  local tmp="$1" dest="$2" old
  chmod 0755 "$tmp"
  mkdir -p "$(dirname "$dest")"
  if [[ -e "$dest" ]]; then
    old="$(mktemp -d "$(dirname "$dest")/.old-$(basename "$dest").XXXXXX")"
    mv "$dest" "$old/"
    mv "$tmp" "$dest"
    rm -rf "$old"
  else
    mv "$tmp" "$dest"
  fi
}

# json_string <s>: s as a JSON string literal (enough for paths, versions and flags).
json_string() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }

# write_stamp <file> <binaries (space-separated)> [key value]...: the JSON stamp of a cache entry,
# written last, after every binary was checked.
write_stamp() {
  local file="$1" bins="$2" b first=1; shift 2
  {
    printf '{\n'
    while [[ $# -ge 2 ]]; do printf '  %s: %s,\n' "$(json_string "$1")" "$(json_string "$2")"; shift 2; done
    printf '  "platform": "%s/%s",\n' "$OS" "$ARCH"
    printf '  "binaries": ['
    for b in $bins; do
      if [[ $first == 1 ]]; then first=0; else printf ', '; fi
      json_string "$b"
    done
    printf '],\n'
    printf '  "installedAt": "%s"\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '}\n'
  } > "$file"
}

# stamp_field <file> <key>: a string field of a stamp (empty if absent).
stamp_field() {
  [[ -f "$1" ]] || return 0
  sed -n "s/^[[:space:]]*\"$2\": \"\\([^\"]*\\)\",\\{0,1\\}\$/\\1/p" "$1" | head -n 1
}

version_ge() { # version_ge A B: A >= B for dotted versions without a leading "go"/"v"
  [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$2" ]]
}

# require_go <what> <min-go>: Go must be on PATH; an older Go is fine unless GOTOOLCHAIN=local
# (Go then fetches the toolchain the module asks for from the module proxy).
require_go() {
  local what="$1" need="$2" have
  if ! command -v go >/dev/null 2>&1; then
    cat >&2 <<EOF
[$LOG_PREFIX] error: cannot build $what: Go is not installed.
  Building needs Go >= $need and access to a Go module proxy (GOPROXY). 'apt-get install golang-go'
  is NOT enough on Debian 12 (Go 1.19): install Go $need or newer, put it on PATH and run again.
EOF
    exit 1
  fi
  have="$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*$//')"
  if ! version_ge "$have" "$need" && [[ "$(go env GOTOOLCHAIN)" == local* ]]; then
    die "Go $have is too old to build $what (needs >= $need) and GOTOOLCHAIN=local forbids fetching a newer one"
  fi
}

# mod_file <module@version>: path of the module's go.mod (downloads the module).
mod_file() {
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

# go_install <out-dir> <package@version> [go flags...]: `go install` of a package of a module
# without replace directives (containerd, runc, CNI plugins, versitygw, helm), into out-dir. The caller
# sets CGO_ENABLED. Runs outside any module so only the named module's go.mod counts.
go_install() {
  local out="$1" pkg="$2"; shift 2
  local name="${pkg%@*}"; name="${name##*/}"
  (cd / && GOBIN="$out" timed_build "$name ${pkg##*@}" go install -p "$PARALLELISM" -trimpath "$@" "$pkg")
}

# ---------------------------------------------------------------------------------------------
# Pinned Go-built components (node runtime, S3 server, helm): one cache entry per component version,
#   $MARINA_CACHE_BASE/<group>/<name>/<version>/  with the binaries and the stamp.
# The calling script defines build_<name with - as _> <version> <out-dir>.
# ---------------------------------------------------------------------------------------------
STAMP_NAME=".marina-toolchain.json"

# reported_by <binary-path>: the binary's version output (how each one prints it differs).
reported_by() {
  local path="$1"
  case "$(basename "$path")" in
    containerd-shim-runc-v2) "$path" -v 2>&1 || true ;;
    containerd|ctr|runc|versitygw) "$path" --version 2>&1 || true ;;
    helm) "$path" version --short 2>&1 || true ;;
    # CNI plugins print "CNI <name> plugin <version>" when called without CNI_COMMAND.
    *) env -u CNI_COMMAND "$path" </dev/null 2>&1 || true ;;
  esac
}

# reports_version <binary-path> <version>: 0 if the binary's version output names the version.
reports_version() { local out; out="$(reported_by "$1")"; [[ "$out" == *"${2#v}"* ]]; }

# component_valid <dir> <version> <binaries>: stamp present and every binary reports the version.
component_valid() {
  local dir="$1" version="$2" bins="$3" b
  [[ "$(stamp_field "$dir/$STAMP_NAME" version)" == "$version" ]] || return 1
  for b in $bins; do
    [[ -x "$dir/$b" ]] || return 1
    reports_version "$dir/$b" "$version" || return 1
  done
}

# install_component <group> <name>: prints the directory of a valid cache entry, building it first
# if needed. MARINA_TOOLCHAIN_FORCE=1 rebuilds.
install_component() {
  local group="$1" name="$2" version bins gover dest parent tmp b
  version="$(pin "$group" "$name" version)" || die "$name has no pinned version in $VERSIONS_JSON"
  bins="$(pin "$group" "$name" binaries)"
  gover="$(pin "$group" "$name" go)"
  parent="$MARINA_CACHE_BASE/$group/$name"
  dest="$parent/$version"
  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" != 1 ]] && component_valid "$dest" "$version" "$bins"; then
    log "$name $version: cached in $dest"
    printf '%s\t%s\n' "$name" "$dest"
    return 0
  fi
  mkdir -p "$parent"
  acquire_lock "$parent/.$version.lock"
  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" != 1 ]] && component_valid "$dest" "$version" "$bins"; then
    log "$name $version: cached in $dest"
    printf '%s\t%s\n' "$name" "$dest"
    release_lock
    return 0
  fi
  require_go "$name $version" "$gover"
  tmp="$(mktemp -d "$parent/.tmp-$version.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  log "installing $name $version for $OS/$ARCH into $dest"
  local t0; t0=$(date +%s)
  "build_${name//-/_}" "$version" "$tmp"
  for b in $bins; do
    reports_version "$tmp/$b" "$version" || die "$b does not report version $version: $(reported_by "$tmp/$b" | head -n 2)"
  done
  write_stamp "$tmp/$STAMP_NAME" "$bins" component "$name" version "$version" source build
  publish_dir "$tmp" "$dest"
  trap - EXIT
  release_lock
  for b in $bins; do log "  $b $(du -h "$dest/$b" | awk '{print $1}')"; done
  log "$name $version installed in $dest ($(( $(date +%s) - t0 ))s)"
  printf '%s\t%s\n' "$name" "$dest"
}
