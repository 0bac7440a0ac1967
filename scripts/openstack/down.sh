#!/usr/bin/env bash
# Stops every process scripts/openstack/up.sh started for STATE_DIR (by the process groups it
# recorded in STATE_DIR/run/*.pid) and removes STATE_DIR. Safe to run twice, or after a failed up.
#
#   scripts/openstack/down.sh STATE_DIR [--keep]     --keep: stop, but leave the files (logs)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"
[ $# -ge 1 ] || die "usage: $0 STATE_DIR [--keep]"
S="$1"
[ -d "$S" ] || exit 0
[ -d "$S/run" ] || [ -e "$S/openstack.json" ] || die "$S does not look like an up.sh state directory"

# All groups at once: the data is thrown away, so nothing needs an orderly shutdown, and each
# group gets SIGKILL after 5 s at most.
for f in "$S"/run/*.pid; do [ -e "$f" ] && stop_recorded "$f" & done
wait
rm -f "$S/run/up.done"
[ "${2:-}" = "--keep" ] || rm -rf "$S"
