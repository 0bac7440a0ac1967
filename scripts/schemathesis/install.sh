#!/usr/bin/env bash
# Installs Schemathesis (the OpenAPI fuzzer that test/api/fuzz.test.ts runs against a real server)
# into a Python venv cached outside the clone, once per version:
#   ~/.cache/marina/venv/schemathesis-<version>/bin/st
# Idempotent: a complete venv (marker file written last) is kept; an interrupted one is redone.
# Prints the path of the `st` executable on stdout; progress goes to stderr.
# Exit 3 when Python 3 with venv/pip is not available (the fuzz test then skips and says why).
set -euo pipefail

VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
CACHE="${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}"
VENV="$CACHE/venv/schemathesis-$VERSION"
MARKER="$VENV/.marina-complete"

if [ -f "$MARKER" ] && [ -x "$VENV/bin/st" ]; then
  echo "$VENV/bin/st"
  exit 0
fi

PYTHON="${PYTHON:-$(command -v python3 || true)}"
if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "python3 with the venv and ensurepip modules is needed to install Schemathesis" >&2
  exit 3
fi

mkdir -p "$CACHE/venv"
# Two test runs may start the install at once: one installs, the other waits for it.
exec 9>"$CACHE/venv/.schemathesis-$VERSION.lock"
flock 9
if [ ! -f "$MARKER" ]; then
  echo "installing Schemathesis $VERSION into $VENV" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
  "$VENV/bin/st" --version >&2
  touch "$MARKER"
fi
echo "$VENV/bin/st"
