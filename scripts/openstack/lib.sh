# Shared by up.sh and down.sh (sourced, not run).
PY=/usr/bin/python3   # Debian's python: a pyenv shim earlier on PATH has no OpenStack modules

log() { printf '[openstack +%ss] %s\n' "$(( $(date +%s) - ${START_TS:-$(date +%s)} ))" "$*" >&2; }
die() { printf '[openstack] error: %s\n' "$*" >&2; exit 1; }

# Stops the process group recorded in run/NAME.pid: TERM, then KILL after 5 s (the services'
# own graceful shutdown waits up to 60 s for requests a test no longer cares about).
# Every service is started with setsid, so its pid is also its process-group id, and workers
# it forks (uwsgi, oslo.service) go with it.
stop_recorded() {
  local pidfile="$1" pid i
  pid=$(cat "$pidfile" 2>/dev/null || true)
  rm -f "$pidfile"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  # The group outlives its leader when the leader was a wrapper script (rabbitmq-server).
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 1 25); do
    kill -0 -- "-$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
