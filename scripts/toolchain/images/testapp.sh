#!/bin/sh
# Entrypoint of marina.local/testapp (built by scripts/toolchain/images.sh on a static busybox).
# Prints a start line and then a numbered tick every $TICK_SECONDS (default 5) seconds, serves
# HTTP on $PORT (default 8080): "/" answers "testapp <hostname>". `sh` and the busybox applets
# (wget, ps, ip, ...) are there for `kubectl exec`. SIGTERM stops it at once with exit 0.
port="${PORT:-8080}"
host="$(hostname)"
mkdir -p /tmp/www
echo "testapp $host" > /tmp/www/index.html
httpd -f -p "$port" -h /tmp/www &
httpd_pid=$!
echo "testapp: started on $host, serving http on :$port"
trap 'echo "testapp: stopping"; kill "$httpd_pid" 2>/dev/null; exit 0' TERM INT
n=0
while true; do
  n=$((n + 1))
  echo "testapp: tick $n"
  sleep "${TICK_SECONDS:-5}" &
  wait $!
done
