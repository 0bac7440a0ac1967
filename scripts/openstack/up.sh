#!/usr/bin/env bash
# Starts a real OpenStack Zed control plane (Debian bookworm's packages, installed by
# scripts/openstack/install.sh) on one loopback address, for tests:
#
#   scripts/openstack/up.sh STATE_DIR      prints the endpoints/credentials JSON on stdout
#   scripts/openstack/down.sh STATE_DIR    stops everything up.sh started and removes STATE_DIR
#
# What runs (every process started with setsid; its pid, which is its process-group id, is
# recorded in STATE_DIR/run/NAME.pid for down.sh):
#   mariadbd, epmd + rabbitmq-server (the RPC bus of Nova, Neutron and Octavia),
#   keystone and placement (uwsgi), nova-api, nova-conductor, nova-scheduler,
#   nova-compute x N (compute_driver = fake.FakeDriver, hosts marina-compute-1..N),
#   neutron-server (ML2, "local" networks, linuxbridge mechanism driver) with one
#   neutron-linuxbridge-agent per compute host (it reports the host so port binding succeeds; it
#   has no interface mappings, no VXLAN and the noop firewall, so it changes nothing on the host),
#   glance-api (file store), octavia-api + octavia-worker (amphora provider with the no-op
#   amphora/compute/network drivers: load balancers go ACTIVE without VMs).
#
# Databases: migrated once per set of package versions into a template under
# ${MARINA_OPENSTACK_CACHE:-~/.cache/marina/openstack}/<key>/ and copied from there on start.
#
# Environment:
#   MARINA_OPENSTACK_ADDRESS   loopback address to listen on (default: a random 127.x.y.1 that
#                              has no listener)
#   MARINA_OPENSTACK_COMPUTES  number of fake compute hosts (default 3)
#   MARINA_OPENSTACK_CACHE     template cache root (see above)
#   MARINA_OPENSTACK_NO_TEMPLATE=1   migrate from scratch and do not write a template
set -euo pipefail
START_TS=$(date +%s)
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
"$SCRIPT_DIR/install.sh" --check || die "OpenStack packages missing: run scripts/openstack/install.sh"
mkdir -p "$1"
S="$(cd "$1" && pwd)"
[ -e "$S/run/up.done" ] && die "$S already holds a running control plane (down.sh it first)"
mkdir -p "$S"/{etc,log,run,data,tmp}
COMPUTES="${MARINA_OPENSTACK_COMPUTES:-3}"
[[ "$COMPUTES" =~ ^[1-9][0-9]?$ ]] || die "MARINA_OPENSTACK_COMPUTES must be 1..99"

# A failed start leaves nothing running behind it.
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ ! -e "$S/run/up.done" ]; then
    log "start failed (exit $rc); logs: $S/log — stopping what was started"
    for f in "$S"/run/*.pid; do [ -e "$f" ] && stop_recorded "$f"; done
  fi
}
trap on_exit EXIT

# ---------------------------------------------------------------------------------------------
# Address and ports
# ---------------------------------------------------------------------------------------------
can_bind() { "$PY" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], int(sys.argv[2])))' "$1" "$2" 2>/dev/null; }
free_port() { "$PY" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"; }

if [ -n "${MARINA_OPENSTACK_ADDRESS:-}" ]; then
  H="$MARINA_OPENSTACK_ADDRESS"
else
  for _ in $(seq 1 20); do
    H="127.$(( RANDOM % 120 + 130 )).$(( RANDOM % 250 + 1 )).1"
    ss -Hltn "src $H" 2>/dev/null | grep -q . || break
  done
fi
# The services' usual ports where free on this address, else any free port.
port() { if can_bind "$H" "$1"; then echo "$1"; else free_port "$H"; fi; }
P_DB=$(port 3306); P_MQ=$(port 5672); P_DIST=$(port 25672); P_EPMD=$(free_port 127.0.0.1)
P_KEYSTONE=$(port 5000); P_PLACEMENT=$(port 8778); P_NOVA=$(port 8774); P_NEUTRON=$(port 9696)
P_GLANCE=$(port 9292); P_OCTAVIA=$(port 9876)
log "address $H, state $S"

# ---------------------------------------------------------------------------------------------
# Template key: the versions of everything that shapes the databases, plus this script's
# migration recipe version (bump TEMPLATE_RECIPE when the migration steps below change).
# ---------------------------------------------------------------------------------------------
TEMPLATE_RECIPE=5
pkg_versions=$(dpkg-query -W -f='${Package}=${Version}\n' python3-keystone python3-nova python3-placement \
  python3-neutron python3-glance python3-octavia mariadb-server 2>/dev/null | sort)
KEY=$(printf 'recipe=%s\n%s\n' "$TEMPLATE_RECIPE" "$pkg_versions" | sha256sum | cut -c1-16)
CACHE_ROOT="${MARINA_OPENSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/marina/openstack}"
TEMPLATE="$CACHE_ROOT/$KEY"

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
if [ -e "$TEMPLATE/secrets.env" ] && [ -z "${MARINA_OPENSTACK_NO_TEMPLATE:-}" ]; then
  # shellcheck disable=SC1091
  . "$TEMPLATE/secrets.env"
else
  DB_PASSWORD=$(openssl rand -hex 16); ADMIN_PASSWORD=$(openssl rand -hex 16); SERVICE_PASSWORD=$(openssl rand -hex 16)
fi
DB="mysql+pymysql://openstack:$DB_PASSWORD@$H:$P_DB"
MQ="rabbit://guest:guest@$H:$P_MQ/"
KS="http://$H:$P_KEYSTONE"
E="$S/etc"

# keystone_authtoken and the service-to-service clients all use one service user.
service_auth() { # section
  cat <<EOF
[$1]
auth_type = password
auth_url = $KS/v3
www_authenticate_uri = $KS/v3
project_domain_name = Default
user_domain_name = Default
project_name = service
username = marina-service
password = $SERVICE_PASSWORD
region_name = RegionOne
EOF
}
common_default() { # log file name
  cat <<EOF
log_file = $S/log/$1.log
debug = false
use_stderr = false
transport_url = $MQ
EOF
}

mkdir -p "$E"/{keystone,placement,nova,neutron,glance,octavia,rabbitmq}
mkdir -p "$S"/data/{keystone,nova,neutron,glance/images,glance/staging,octavia,locks}

cat > "$E/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $S/log/keystone.log
[database]
connection = $DB/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = $S/data/keystone/fernet-keys
[credential]
key_repository = $S/data/keystone/credential-keys
[cache]
enabled = false
[identity]
# bcrypt's minimum cost: every password and application-credential check is hashed, and the
# default (12) costs a quarter of a CPU second each on this machine.
password_hash_rounds = 4
EOF

cat > "$E/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $S/log/placement.log
[api]
auth_strategy = keystone
[placement_database]
connection = $DB/placement
$(service_auth keystone_authtoken)
EOF

cp /etc/nova/api-paste.ini "$E/nova/api-paste.ini"
cat > "$E/nova/nova.conf" <<EOF
[DEFAULT]
$(common_default nova)
state_path = $S/data/nova
instances_path = $S/data/nova/instances
my_ip = $H
compute_driver = fake.FakeDriver
enabled_apis = osapi_compute
osapi_compute_listen = $H
osapi_compute_listen_port = $P_NOVA
osapi_compute_workers = 1
# The fake hypervisor reports itself every 10 s instead of 60 s.
update_resources_interval = 10
heal_instance_info_cache_interval = -1
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $E/nova/api-paste.ini
[conductor]
workers = 1
[scheduler]
workers = 1
# New fake compute hosts are mapped into cell1 without a nova-manage run.
discover_hosts_in_cells_interval = 2
[oslo_concurrency]
lock_path = $S/data/locks
[oslo_messaging_notifications]
driver = noop
[glance]
region_name = RegionOne
$(service_auth keystone_authtoken)
$(service_auth placement)
$(service_auth neutron)
EOF
# The databases only for the services that use them: nova-compute must not see them (with
# [api_database] set it tries cross-cell queries and logs "No DB access allowed in nova-compute").
cat > "$E/nova/nova-db.conf" <<EOF
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
EOF
NOVA_DB=(--config-file "$E/nova/nova.conf" --config-file "$E/nova/nova-db.conf")
for i in $(seq 1 "$COMPUTES"); do
  mkdir -p "$S/data/nova-compute-$i"
  cat > "$E/nova/compute-$i.conf" <<EOF
[DEFAULT]
host = marina-compute-$i
log_file = $S/log/nova-compute-$i.log
state_path = $S/data/nova-compute-$i
instances_path = $S/data/nova-compute-$i/instances
EOF
done

cp /etc/neutron/api-paste.ini "$E/neutron/api-paste.ini"
cat > "$E/neutron/neutron.conf" <<EOF
[DEFAULT]
$(common_default neutron)
state_path = $S/data/neutron
api_paste_config = $E/neutron/api-paste.ini
bind_host = $H
bind_port = $P_NEUTRON
core_plugin = ml2
auth_strategy = keystone
# The API in the main process (0), one RPC worker process (the least Neutron allows).
api_workers = 0
rpc_workers = 1
rpc_state_report_workers = 1
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
dhcp_agent_notification = false
[database]
connection = $DB/neutron
[oslo_concurrency]
lock_path = $S/data/locks
[oslo_messaging_notifications]
driver = noop
[agent]
report_interval = 10
# Zed marks the linuxbridge driver experimental; it is the one agent that runs here untouched.
[experimental]
linuxbridge = true
[ml2]
type_drivers = local,flat
tenant_network_types = local
mechanism_drivers = linuxbridge
extension_drivers = port_security
[securitygroup]
firewall_driver = noop
enable_security_group = true
[linux_bridge]
physical_interface_mappings =
[vxlan]
enable_vxlan = false
$(service_auth keystone_authtoken)
EOF
for i in $(seq 1 "$COMPUTES"); do
  mkdir -p "$S/data/neutron-agent-$i"
  cat > "$E/neutron/agent-$i.conf" <<EOF
[DEFAULT]
host = marina-compute-$i
log_file = $S/log/neutron-agent-$i.log
state_path = $S/data/neutron-agent-$i
[agent]
polling_interval = 5
EOF
done

cp /etc/glance/glance-api-paste.ini "$E/glance/glance-api-paste.ini"
cat > "$E/glance/glance-api.conf" <<EOF
[DEFAULT]
log_file = $S/log/glance.log
bind_host = $H
bind_port = $P_GLANCE
# 0: serve in the main process, no forked workers.
workers = 0
enabled_backends = local:file
[glance_store]
default_backend = local
[local]
filesystem_store_datadir = $S/data/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $S/data/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $S/data/glance/staging
[database]
connection = $DB/glance
[paste_deploy]
flavor = keystone
config_file = $E/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $S/data/locks
$(service_auth keystone_authtoken)
EOF

# Octavia's amphora provider with no-op drivers: the worker runs the real flows (database
# records, status transitions) but creates no VMs, ports or haproxy configs. The worker's flows
# still sign a server certificate for each amphora, hence the throwaway CA.
OCT_CA="$S/data/octavia"
# Octavia's local certificate generator always passes the passphrase, so the key is encrypted.
OCT_CA_PASS=$(openssl rand -hex 16)
openssl req -x509 -newkey rsa:2048 -days 30 -subj "/CN=marina-octavia-test-ca" -passout "pass:$OCT_CA_PASS" \
  -keyout "$OCT_CA/ca.key" -out "$OCT_CA/ca.pem" 2>/dev/null
cat > "$E/octavia/octavia.conf" <<EOF
[DEFAULT]
$(common_default octavia)
[api_settings]
bind_host = $H
bind_port = $P_OCTAVIA
auth_strategy = keystone
default_provider_driver = amphora
enabled_provider_drivers = amphora:Amphora with no-op compute/network/amphora drivers,noop_driver:No-op provider (nothing ever leaves PENDING_*)
[database]
connection = $DB/octavia
[controller_worker]
workers = 1
# Read when the (no-op) compute driver "boots" an amphora: its config-drive files.
client_ca = $OCT_CA/ca.pem
amphora_driver = amphora_noop_driver
compute_driver = compute_noop_driver
network_driver = network_noop_driver
image_driver = image_noop_driver
volume_driver = volume_noop_driver
amp_image_tag = amphora
amp_flavor_id = 1
amp_boot_network_list = 00000000-0000-0000-0000-000000000000
loadbalancer_topology = SINGLE
[certificates]
cert_generator = local_cert_generator
ca_certificate = $OCT_CA/ca.pem
ca_private_key = $OCT_CA/ca.key
ca_private_key_passphrase = $OCT_CA_PASS
server_certs_key_passphrase = $(openssl rand -hex 16)
[haproxy_amphora]
server_ca = $OCT_CA/ca.pem
client_cert = $OCT_CA/ca.pem
[health_manager]
heartbeat_key = $(openssl rand -hex 16)
[oslo_messaging]
topic = octavia_prov
[oslo_concurrency]
lock_path = $S/data/locks
[oslo_messaging_notifications]
driver = noop
$(service_auth keystone_authtoken)
$(service_auth service_auth)
EOF

cat > "$E/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.1 = $H:$P_MQ
loopback_users = none
log.file.level = warning
EOF
echo '[].' > "$E/rabbitmq/enabled_plugins"

# ---------------------------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------------------------
start() { # NAME COMMAND... — own process group (setsid), pid recorded
  local name="$1"; shift
  setsid "$@" >"$S/log/$name.out" 2>&1 </dev/null &
  echo $! > "$S/run/$name.pid"
}
alive_or_die() { # NAME — the group, not the leader: a wrapper script may have exec'd or exited
  local pid; pid=$(cat "$S/run/$1.pid")
  kill -0 -- "-$pid" 2>/dev/null && return 0
  tail -n 30 "$S/log/$1.out" "$S/log/$1.log" "$S/log/$1"/*.log 2>/dev/null >&2 || true
  die "$1 exited during start"
}
wait_for() { # NAME TIMEOUT_S CHECK_COMMAND...
  local name="$1" timeout="$2" deadline; shift 2
  deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    alive_or_die "$name"
    [ "$(date +%s)" -lt "$deadline" ] || die "$name did not come up within ${timeout}s (logs in $S/log)"
    sleep 0.3
  done
}
http_up() { [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1")" != 000 ]; }
tcp_up() { "$PY" -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)' "$1" "$2"; }
sql() { mariadb --no-defaults -uroot --socket="$S/run/mysqld.sock" "$@"; }
uwsgi_app() { # NAME PORT WSGI_FILE ENV=VALUE
  start "$1" env "$4" uwsgi --plugins python3 --http-socket "$H:$2" --wsgi-file "$3" \
    --master --processes 1 --threads 8 --enable-threads --lazy-apps --die-on-term --need-app \
    --buffer-size 65535 --logto "$S/log/$1.uwsgi.log" \
    --add-header 'Connection: close'
  # uwsgi's plain http-socket closes every connection after one response without saying so;
  # keystoneauth's pooled connections then fail with "Remote end closed connection" (a 503 from
  # the calling service's auth middleware). The header makes clients open a new one each time.
}

# ---------------------------------------------------------------------------------------------
# MariaDB and RabbitMQ
# ---------------------------------------------------------------------------------------------
start_mariadb() {
  start mariadb /usr/sbin/mariadbd --no-defaults --user=root --datadir="$S/data/mysql" \
    --socket="$S/run/mysqld.sock" --pid-file="$S/run/mysqld.pidfile" --bind-address="$H" --port="$P_DB" \
    --tmpdir="$S/tmp" --log-error="$S/log/mariadb.log" --skip-name-resolve --skip-log-bin \
    --max-connections=1000 --character-set-server=utf8mb3 --collation-server=utf8mb3_general_ci \
    --innodb-buffer-pool-size=128M --innodb-log-file-size=32M \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --sync-binlog=0
  wait_for mariadb 60 sql -e 'select 1'
}
stop_mariadb() { stop_recorded "$S/run/mariadb.pid"; }

# epmd is started by us (not daemonized by erl) so that it stays in a process group we record.
start epmd /usr/bin/env ERL_EPMD_ADDRESS="$H" "$(ls /usr/lib/erlang/erts-*/bin/epmd | head -1)" -port "$P_EPMD"
mkdir -p "$S/data/rabbitmq"
start rabbitmq env HOME="$S/data/rabbitmq" ERL_EPMD_PORT="$P_EPMD" RABBITMQ_NODENAME="marina@localhost" \
  RABBITMQ_CONFIG_FILE="$E/rabbitmq/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$E/rabbitmq/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$S/data/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$S/log/rabbitmq" \
  RABBITMQ_PID_FILE="$S/run/rabbitmq.pidfile" RABBITMQ_DIST_PORT="$P_DIST" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {${H//./,}}" \
  /usr/lib/rabbitmq/bin/rabbitmq-server

migrate() {
  log "migrating databases (no template for key $KEY yet)"
  mariadb-install-db --no-defaults --user=root --datadir="$S/data/mysql" --skip-test-db \
    --auth-root-authentication-method=socket >"$S/log/mariadb-install.log" 2>&1
  start_mariadb
  local dbs="keystone placement nova_api nova nova_cell0 neutron glance octavia" d
  { echo "CREATE USER 'openstack'@'%' IDENTIFIED BY '$DB_PASSWORD';"
    for d in $dbs; do echo "CREATE DATABASE $d; GRANT ALL ON $d.* TO 'openstack'@'%';"; done
  } | sql
  # Independent databases migrate in parallel; each chain logs to log/migrate-*.log.
  local pids=() names=() i
  run_chain() { local n="$1"; shift; ( set -e; "$@" ) >"$S/log/migrate-$n.log" 2>&1 & pids+=($!); names+=("$n"); }
  run_chain keystone bash -c "
    keystone-manage --config-file '$E/keystone/keystone.conf' db_sync
    mkdir -p '$S/data/keystone/fernet-keys' '$S/data/keystone/credential-keys'
    keystone-manage --config-file '$E/keystone/keystone.conf' fernet_setup --keystone-user root --keystone-group root
    keystone-manage --config-file '$E/keystone/keystone.conf' credential_setup --keystone-user root --keystone-group root
    keystone-manage --config-file '$E/keystone/keystone.conf' bootstrap --bootstrap-password '$ADMIN_PASSWORD' \
      --bootstrap-region-id RegionOne"
  run_chain placement placement-manage --config-file "$E/placement/placement.conf" db sync
  # The cell mappings hold URL templates, filled from nova.conf at run time, so the template
  # works on any address and port.
  run_chain nova bash -c "
    nova-manage --config-file '$E/nova/nova.conf' --config-file '$E/nova/nova-db.conf' api_db sync
    nova-manage --config-file '$E/nova/nova.conf' --config-file '$E/nova/nova-db.conf' cell_v2 map_cell0 \
      --database_connection '{scheme}://{username}:{password}@{hostname}:{port}/nova_cell0?{query}'
    nova-manage --config-file '$E/nova/nova.conf' --config-file '$E/nova/nova-db.conf' cell_v2 create_cell --name cell1 \
      --database_connection '{scheme}://{username}:{password}@{hostname}:{port}/nova?{query}' \
      --transport-url '{scheme}://{username}:{password}@{hostname}:{port}/{path}'
    nova-manage --config-file '$E/nova/nova.conf' --config-file '$E/nova/nova-db.conf' db sync"
  run_chain neutron neutron-db-manage --config-file "$E/neutron/neutron.conf" upgrade heads
  run_chain glance glance-manage --config-file "$E/glance/glance-api.conf" db_sync
  run_chain octavia octavia-db-manage --config-file "$E/octavia/octavia.conf" upgrade head
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { tail -n 30 "$S/log/migrate-${names[$i]}.log" >&2; die "migration ${names[$i]} failed"; }
  done
  log "migrations done"
}

ENDPOINTS_JSON=$(cat <<EOF
{"keystone": "$KS/v3", "placement": "http://$H:$P_PLACEMENT", "nova": "http://$H:$P_NOVA/v2.1",
 "neutron": "http://$H:$P_NEUTRON", "glance": "http://$H:$P_GLANCE", "octavia": "http://$H:$P_OCTAVIA"}
EOF
)
start_keystone() {
  uwsgi_app keystone "$P_KEYSTONE" /usr/bin/keystone-wsgi-public "OS_KEYSTONE_CONFIG_DIR=$E/keystone"
}

if [ -d "$TEMPLATE/mysql" ] && [ -z "${MARINA_OPENSTACK_NO_TEMPLATE:-}" ]; then
  log "databases from template $TEMPLATE"
  cp -a --reflink=auto "$TEMPLATE/mysql" "$S/data/mysql"
  cp -a "$TEMPLATE/keystone/." "$S/data/keystone/"
  cp "$TEMPLATE/identity.json" "$S/identity.json"
  start_keystone   # the slowest to import; it needs the database only per request
  start_mariadb
  # The template's catalog points at the address of the run that made it: re-point it (Keystone
  # runs without a cache, so it reads these rows as they are).
  jq -r 'to_entries[] | "\(.key) \(.value)"' <<<"$ENDPOINTS_JSON" | while read -r name url; do
    echo "UPDATE endpoint e JOIN service s ON e.service_id = s.id SET e.url = '$url' WHERE JSON_VALUE(s.extra, '\$.name') = '$name';"
  done | sql keystone
else
  migrate
  # The catalog, the service user and Marina's project, user and application credential are
  # part of the template too: Keystone's API is slow while a dozen services start beside it
  # (~0.5 s a call; the ~50 calls took 30 s).
  start_keystone
  wait_for keystone 120 http_up "$KS/v3"
  node "$SCRIPT_DIR/fixtures.mjs" services "$KS/v3" "$ADMIN_PASSWORD" "$SERVICE_PASSWORD" "$ENDPOINTS_JSON" > "$S/identity.json"
  log "catalog, service user and marina project created"
  if [ -z "${MARINA_OPENSTACK_NO_TEMPLATE:-}" ]; then
    # A clean shutdown makes the datadir copyable; the template appears atomically (rename).
    stop_recorded "$S/run/keystone.pid"
    stop_mariadb
    mkdir -p "$CACHE_ROOT"
    tmp=$(mktemp -d "$CACHE_ROOT/.tmp.XXXXXX")
    cp -a "$S/data/mysql" "$tmp/mysql"
    mkdir -p "$tmp/keystone"; cp -a "$S/data/keystone/." "$tmp/keystone/"
    cp "$S/identity.json" "$tmp/identity.json"
    printf 'DB_PASSWORD=%s\nADMIN_PASSWORD=%s\nSERVICE_PASSWORD=%s\n' "$DB_PASSWORD" "$ADMIN_PASSWORD" "$SERVICE_PASSWORD" > "$tmp/secrets.env"
    printf '%s\n' "$pkg_versions" > "$tmp/packages.txt"
    if mv -T "$tmp" "$TEMPLATE" 2>/dev/null; then log "template saved: $TEMPLATE"; else rm -rf "$tmp"; fi
    start_mariadb
    start_keystone
  fi
fi

# ---------------------------------------------------------------------------------------------
# Services. Everything that needs only the database and the bus at start starts now, beside
# Keystone (already starting). nova-compute starts once Keystone answers: it calls Placement
# (through Keystone) while starting, and exits if it cannot.
# ---------------------------------------------------------------------------------------------
uwsgi_app placement "$P_PLACEMENT" /usr/bin/placement-api "OS_PLACEMENT_CONFIG_DIR=$E/placement"
start nova-api nova-api "${NOVA_DB[@]}"
start nova-conductor nova-conductor "${NOVA_DB[@]}" --log-file "$S/log/nova-conductor.log"
start nova-scheduler nova-scheduler "${NOVA_DB[@]}" --log-file "$S/log/nova-scheduler.log"
start neutron-server neutron-server --config-file "$E/neutron/neutron.conf"
start glance-api glance-api --config-file "$E/glance/glance-api.conf"
start octavia-api octavia-api --config-file "$E/octavia/octavia.conf" --log-file "$S/log/octavia-api.log"
start octavia-worker octavia-worker --config-file "$E/octavia/octavia.conf" --log-file "$S/log/octavia-worker.log"
for i in $(seq 1 "$COMPUTES"); do
  start "neutron-agent-$i" neutron-linuxbridge-agent --config-file "$E/neutron/neutron.conf" \
    --config-file "$E/neutron/agent-$i.conf"
done

wait_for keystone 120 http_up "$KS/v3"
log "keystone up"
for i in $(seq 1 "$COMPUTES"); do
  # python3-nova's entry point (see install.sh for why there is no nova-compute package)
  start "nova-compute-$i" "$PY" -c 'import sys; from nova.cmd.compute import main; sys.argv[0] = "nova-compute"; sys.exit(main())' \
    --config-file "$E/nova/nova.conf" --config-file "$E/nova/compute-$i.conf"
done

wait_for rabbitmq 90 tcp_up "$H" "$P_MQ"
wait_for placement 120 http_up "http://$H:$P_PLACEMENT/"
wait_for nova-api 180 http_up "http://$H:$P_NOVA/"
wait_for neutron-server 180 http_up "http://$H:$P_NEUTRON/"
wait_for glance-api 180 http_up "http://$H:$P_GLANCE/"
wait_for octavia-api 180 http_up "http://$H:$P_OCTAVIA/"
# The Octavia API casts to the worker's queue; a cast before the queue exists is dropped.
wait_for octavia-worker 120 "$PY" -c '
import amqp, sys
c = amqp.Connection(sys.argv[1], userid="guest", password="guest"); c.connect()
c.channel().queue_declare("octavia_prov", passive=True)' "$H:$P_MQ"
log "APIs answer"

# Tenant fixtures; waits for the fake hypervisors, the agents and the Octavia worker.
node "$SCRIPT_DIR/fixtures.mjs" tenant "$KS/v3" "$ADMIN_PASSWORD" "$COMPUTES" > "$S/fixtures.json"
jq -n --slurpfile i "$S/identity.json" --slurpfile f "$S/fixtures.json" --argjson ep "$ENDPOINTS_JSON" \
  --arg state "$S" --arg address "$H" --arg admin "$ADMIN_PASSWORD" --arg template "$TEMPLATE" \
  --argjson started "$START_TS" --argjson ready "$(date +%s)" \
  '{stateDir: $state, address: $address, region: "RegionOne", endpoints: $ep,
    admin: {username: "admin", password: $admin, projectName: "admin", domain: "Default"},
    template: $template, startSeconds: ($ready - $started)} + $i[0] + $f[0]' > "$S/openstack.json"
touch "$S/run/up.done"
log "control plane ready in $(( $(date +%s) - START_TS ))s"
cat "$S/openstack.json"
