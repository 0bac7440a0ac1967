#!/usr/bin/env bash
# Builds the container images real workers need, without any registry, as OCI image-layout
# archives that `ctr -n k8s.io images import <archive>` loads under their pinned names
# ("images" in scripts/toolchain/versions.json):
#   pause    marina.local/pause:<tag>    the pod sandbox image (a static Go program, go/pause/)
#   testapp  marina.local/testapp:<tag>  a static busybox with sh, wget, ps, ...; its entrypoint
#                                        (images/testapp.sh) prints ticks and serves HTTP on :8080
#
#   scripts/toolchain/images.sh [IMAGE...]   (default: pause testapp)
#
# Archives are cached per image and tag:
#   ${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}/images/<image>/<tag>/image.oci.tar
# and rebuilt only when an input changes (this script, the pause source, the testapp entrypoint,
# the busybox binary). The layers are reproducible: sorted entries, owner 0, mtime 0, gzip -n.
# Progress goes to stderr; stdout gets one line per image: "<image><TAB><archive><TAB><ref>".
#
# Needs: Go (pause), a static busybox (Debian: apt-get install busybox-static; or MARINA_BUSYBOX=path),
# GNU tar, gzip, sha256sum.
#
# Environment:
#   MARINA_CACHE_DIR          cache base (see above)
#   MARINA_BUSYBOX            static busybox to put in testapp (default: busybox on PATH)
#   MARINA_TOOLCHAIN_FORCE=1  rebuild even if cached
set -euo pipefail
LOG_PREFIX=images
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

SELF="$TOOLCHAIN_DIR/images.sh"
PAUSE_SRC="$TOOLCHAIN_DIR/go/pause/main.go"
TESTAPP_ENTRYPOINT="$TOOLCHAIN_DIR/images/testapp.sh"

ref_tag() { printf '%s' "${1##*:}"; }

busybox_path() {
  local b="${MARINA_BUSYBOX:-$(command -v busybox || true)}"
  [[ -n "$b" && -x "$b" ]] || die "testapp needs a static busybox: apt-get install busybox-static (or set MARINA_BUSYBOX)"
  # A dynamically linked busybox would need its libraries in the image.
  if command -v ldd >/dev/null 2>&1 && ldd "$b" >/dev/null 2>&1; then
    die "$b is dynamically linked; testapp needs a static one (Debian: busybox-static)"
  fi
  printf '%s' "$b"
}

# inputs_of <image>: a digest over everything the image is built from.
inputs_of() {
  case "$1" in
    pause) printf '%s %s %s\n' "$(sha256_of "$SELF")" "$(sha256_of "$PAUSE_SRC")" "$(go env GOVERSION 2>/dev/null || echo nogo)" ;;
    testapp) printf '%s %s %s\n' "$(sha256_of "$SELF")" "$(sha256_of "$TESTAPP_ENTRYPOINT")" "$(sha256_of "$(busybox_path)")" ;;
  esac | sha256sum | awk '{print $1}'
}

# blob <layout> <file>: moves file into the layout's blob store; prints "<sha256-hex> <size>".
blob() {
  local layout="$1" file="$2" hex size
  hex="$(sha256_of "$file")"; size="$(stat -c %s "$file")"
  mkdir -p "$layout/blobs/sha256"
  mv "$file" "$layout/blobs/sha256/$hex"
  printf '%s %s' "$hex" "$size"
}

# oci_archive <rootfs> <out> <ref> <image-config-json>: a one-layer OCI image layout of rootfs,
# tarred into out. image-config-json is the "config" object of the image configuration.
oci_archive() {
  local rootfs="$1" out="$2" ref="$3" config="$4" work layout diff layer cfg man
  work="$(mktemp -d "${TMPDIR:-/tmp}/marina-image.XXXXXX")"
  layout="$work/layout"
  mkdir -p "$layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu \
    -C "$rootfs" -cf "$work/layer.tar" .
  diff="$(sha256_of "$work/layer.tar")"
  gzip -n -9 "$work/layer.tar"
  read -r -a layer <<< "$(blob "$layout" "$work/layer.tar.gz")"
  printf '{"architecture":"%s","os":"%s","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/toolchain/images.sh"}]}' \
    "$ARCH" "$OS" "$config" "$diff" > "$work/config.json"
  read -r -a cfg <<< "$(blob "$layout" "$work/config.json")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "${cfg[0]}" "${cfg[1]}" "${layer[0]}" "${layer[1]}" > "$work/manifest.json"
  read -r -a man <<< "$(blob "$layout" "$work/manifest.json")"
  # io.containerd.image.name gives ctr import the full name; org.opencontainers.image.ref.name is
  # the OCI way (the tag) for other tools.
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"%s"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "${man[0]}" "${man[1]}" "$ARCH" "$OS" "$ref" "$(ref_tag "$ref")" > "$layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu -C "$layout" -cf "$out" oci-layout index.json blobs
  rm -rf "$work"
}

# A minimal /etc so tools that look up users (ps, id, whoami) work.
base_rootfs() {
  mkdir -p "$1/etc" "$1/tmp" "$1/proc" "$1/sys" "$1/dev"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$1/etc/group"
}

build_pause() { # build_pause <ref> <out>
  local ref="$1" out="$2" rootfs; rootfs="$(mktemp -d "${TMPDIR:-/tmp}/marina-rootfs.XXXXXX")"
  command -v go >/dev/null 2>&1 || die "the pause image needs Go to build its program"
  base_rootfs "$rootfs"
  (cd / && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(ref_tag "$ref")" -o "$rootfs/pause" "$PAUSE_SRC")
  oci_archive "$rootfs" "$out" "$ref" '{"Entrypoint":["/pause"],"User":"65535:65535","WorkingDir":"/"}'
  rm -rf "$rootfs"
}

build_testapp() { # build_testapp <ref> <out>
  local ref="$1" out="$2" rootfs bb applet; rootfs="$(mktemp -d "${TMPDIR:-/tmp}/marina-rootfs.XXXXXX")"
  bb="$(busybox_path)"
  base_rootfs "$rootfs"
  mkdir -p "$rootfs/bin"
  cp "$bb" "$rootfs/bin/busybox"
  for applet in $("$bb" --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  cp "$TESTAPP_ENTRYPOINT" "$rootfs/bin/testapp"
  chmod 0755 "$rootfs/bin/busybox" "$rootfs/bin/testapp"
  oci_archive "$rootfs" "$out" "$ref" '{"Entrypoint":["/bin/testapp"],"Env":["PATH=/bin","PORT=8080"],"ExposedPorts":{"8080/tcp":{}},"WorkingDir":"/"}'
  rm -rf "$rootfs"
}

image_valid() { # image_valid <dir> <ref> <inputs>
  local dir="$1"
  [[ -f "$dir/image.oci.tar" ]] || return 1
  [[ "$(stamp_field "$dir/$STAMP_NAME" ref)" == "$2" ]] || return 1
  [[ "$(stamp_field "$dir/$STAMP_NAME" inputs)" == "$3" ]] || return 1
  [[ "$(stamp_field "$dir/$STAMP_NAME" sha256)" == "$(sha256_of "$dir/image.oci.tar")" ]]
}

install_image() { # install_image <image>
  local name="$1" ref tag inputs parent dest tmp t0
  ref="$(pin images "$name" ref)" || die "unknown image '$name' (known: $(pin images))"
  tag="$(ref_tag "$ref")"
  inputs="$(inputs_of "$name")"
  parent="$MARINA_CACHE_BASE/images/$name"
  dest="$parent/$tag"
  if [[ "${MARINA_TOOLCHAIN_FORCE:-}" != 1 ]] && image_valid "$dest" "$ref" "$inputs"; then
    log "$ref: cached in $dest"
    printf '%s\t%s\t%s\n' "$name" "$dest/image.oci.tar" "$ref"
    return 0
  fi
  mkdir -p "$parent"
  acquire_lock "$parent/.$tag.lock"
  tmp="$(mktemp -d "$parent/.tmp-$tag.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  t0=$(date +%s)
  log "building $ref"
  "build_$name" "$ref" "$tmp/image.oci.tar"
  write_stamp "$tmp/$STAMP_NAME" "" image "$name" ref "$ref" inputs "$inputs" sha256 "$(sha256_of "$tmp/image.oci.tar")"
  publish_dir "$tmp" "$dest"
  trap - EXIT
  release_lock
  log "$ref built in $(( $(date +%s) - t0 ))s: $dest/image.oci.tar ($(du -h "$dest/image.oci.tar" | awk '{print $1}'))"
  printf '%s\t%s\t%s\n' "$name" "$dest/image.oci.tar" "$ref"
}

main() {
  local images=() i
  for i in "$@"; do
    case "$i" in
      -h|--help) print_help "${BASH_SOURCE[0]}"; exit 0 ;;
      *) images+=("$i") ;;
    esac
  done
  [[ ${#images[@]} -gt 0 ]] || read -r -a images <<< "$(pin images)"
  for i in "${images[@]}"; do install_image "$i"; done
}

main "$@"
