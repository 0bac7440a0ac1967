// Auto-healing benchmark (issue 5): how fast Marina notices a killed machine and has a replacement
// Ready, for worker, etcd and control-plane machines, and what health checking costs in CPU.
// Like bench/cluster.ts it runs the store, the REST API, alerting and the controllers (default
// timing, health series and alerts wired as `marina server` does) in this process, with the
// local provider and the real etcd / Kubernetes binaries of the toolchain cache.
//
//   npx tsc -p tsconfig.json && node dist/bench/healing.js [--runs 3] [--interval 2 | --intervals 2,10]
//     [--unhealthy-timeout 20] [--idle-seconds 60] [--settle-seconds 5] [--roles worker,etcd,controlplane]
//     [--address-base 127.91.0.0] [--timeout-seconds 300] [--skip-kills] [--skip-cpu] [--log-file F]
//     [--etcd-victim alternate|leader|follower|oldest] [--warmup-seconds 30]
//
// One cluster: 3 etcd machines (pool roles [etcd]), 1 control plane ([controlplane]), 3 workers,
// spec.health.intervalSeconds = the interval, every pool's healing.unhealthyTimeoutSeconds stated
// (a killed machine is reported Failed by the provider and replaced at once; the timeout only
// matters for machines that are unreachable or NotReady).
//
// Kills: per interval and run, worker, etcd, control plane in turn, each at a random moment of
// the check schedule (a random 0–interval s wait after settling): the oldest Running, Healthy
// machine of the role (etcd: a follower and the leader in turn, per --etcd-victim) has its whole
// process group SIGKILLed (t0 = just before the kill). Every Machine change is recorded from a
// watch on this Marina's store (exact to the write), every health pass from the HealthRegistry
// (its `set`, wrapped here):
//   seen     the health pass that found the victim's agent unreachable was stored
//   detect   the victim's status first shows Healthy=False or phase Failed (what healing acts on)
//   marked   the victim got its deletionTimestamp (the pool's remediation)
//   created  the replacement Machine of that pool was added
//   member   (etcd) the replacement's EtcdMember condition True: a voting member
//   ready    the replacement Running with Healthy=True (and its Node Ready, where it has one)
//   api      (control plane) `kubectl get --raw /readyz` through the cluster endpoint answers ok
//            again: the real kubectl, polled every 250 ms from the kill on (each call adds its
//            own start-up, ~0.1–0.3 s, to this figure)
// Before the next kill the cluster must be Ready, every pool at full strength with every machine
// Running and Healthy, the newest health pass healthy and newer than the newest machine, for
// --settle-seconds in a row. Replacements of other machines during an episode (e.g. a control
// plane refreshed for EtcdEndpointsStale) are listed.
//
// CPU: with the cluster idle and Ready (after --warmup-seconds with checks off), five windows of
// --idle-seconds each: checks effectively off (interval 3600 s), the default (10 s, metrics every
// 60 s), 1 s (metrics every 60 s), 1 s with metrics every 1 s, and off again (the noise floor).
// This process's CPU (process.cpuUsage: API + controllers + health checks + alerts + this bench's
// bookkeeping) and the ticks of every process of the cluster (from /proc) per window; passes and
// scrapes counted from the registry. CPU per simple pass and per metrics scrape come from the two
// 1 s windows against the mean of the two off windows (a 2×2 linear solve on rates).
//
// Cleanup on success, failure and SIGINT/SIGTERM: delete the cluster through the API and wait,
// then SIGKILL only process groups recorded by the provider under this run's temp dir, then remove
// the temp dir.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startAlerting, type RunningAlerting } from '../src/alerts/index.js';
import { clockTicksPerSecond } from '../src/agent/procfs.js';
import type { Cluster, Machine, NodePool } from '../src/api/kinds.js';
import { API_VERSION } from '../src/api/meta.js';
import { HealthRegistry } from '../src/health/registry.js';
import { startControlLoops, type RunningControlLoops } from '../src/server/control-loops.js';
import type { HealthReport } from '../src/health/types.js';
import { isProcessGroupAlive } from '../src/proc/index.js';
import { LocalProvider } from '../src/providers/local/index.js';
import { buildApp } from '../src/server/app.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Watch } from '../src/store/types.js';
import { resolveToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { apiRequest, etcdctl } from '../test/support/marina.js';
import { allStats, groupMembers, killRecordedGroups, load, reportLeftovers, median, MIB, readJson, sec, selfTicks, systemBusyTicks, table, type ProcStat } from './support.js';

const execFileAsync = promisify(execFile);
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    interval: { type: 'string', default: '2' },
    intervals: { type: 'string' },
    'unhealthy-timeout': { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '60' },
    'settle-seconds': { type: 'string', default: '5' },
    roles: { type: 'string', default: 'worker,etcd,controlplane' },
    'address-base': { type: 'string', default: '127.91.0.0' },
    'timeout-seconds': { type: 'string', default: '300' },
    'skip-kills': { type: 'boolean', default: false },
    'skip-cpu': { type: 'boolean', default: false },
    'log-file': { type: 'string' },
    'etcd-victim': { type: 'string', default: 'alternate' },
    'warmup-seconds': { type: 'string', default: '30' },
  },
});
type Role = 'worker' | 'etcd' | 'controlplane';
const RUNS = Number(values.runs);
const INTERVALS = (values.intervals ?? values.interval!).split(',').map(Number);
const UNHEALTHY_S = Number(values['unhealthy-timeout']);
const IDLE_S = Number(values['idle-seconds']);
const SETTLE_MS = Number(values['settle-seconds']) * 1000;
const ROLES = values.roles!.split(',') as Role[];
const ADDRESS_BASE = values['address-base']!;
const TIMEOUT_MS = Number(values['timeout-seconds']) * 1000;
const PROJECT = 'bench';
const CLUSTER = 'heal';
const POOLS: { name: string; role: Role; replicas: number }[] = [
  { name: 'etcd', role: 'etcd', replicas: 3 },
  { name: 'controlplane', role: 'controlplane', replicas: 1 },
  { name: 'workers', role: 'worker', replicas: 3 },
];
const ETCD_VICTIM = values['etcd-victim']!;
const WARMUP_S = Number(values['warmup-seconds']);
const CLK = clockTicksPerSecond();
const GOAL_MS = 10_000;

for (const [what, v] of [['--runs', RUNS], ['--unhealthy-timeout', UNHEALTHY_S], ['--idle-seconds', IDLE_S], ...INTERVALS.map((i) => ['--interval(s)', i] as const)] as const) {
  if (!Number.isFinite(v) || v < 0) throw new Error(`${what}: not a number`);
}
if (!['alternate', 'leader', 'follower', 'oldest'].includes(ETCD_VICTIM)) throw new Error('--etcd-victim: alternate, leader, follower or oldest');
for (const r of ROLES) if (!['worker', 'etcd', 'controlplane'].includes(r)) throw new Error(`--roles: unknown role ${r}`);

const version = defaultVersion();
const toolchain = resolveToolchain(version);

// ---------------------------------------------------------------------------------------------
// Marina in this process

const dir = mkdtempSync(join(tmpdir(), 'marina-bench-healing-'));
const root = join(dir, 'local');
let url = '';
let token = '';
let store: ReturnType<typeof openSqliteStore> | undefined;
let controllers: RunningControlLoops | undefined;
let closeAll: (() => Promise<void>) | undefined;
let clusterCreated = false;
/** Every process-group leader the provider started for us (agent or load balancer pid). */
const startedGroups = new Set<number>();

const api = (method: string, path: string, body?: unknown) => apiRequest(url, token, method, path, body);

async function kubectl(kubeconfig: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    toolchain.paths.kubectl,
    ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), '--request-timeout=2s', ...args],
    { timeout: 5_000, maxBuffer: 16 * MIB },
  );
  return stdout;
}

async function startMarina(): Promise<void> {
  const s = openSqliteStore({ path: join(dir, 'marina.db'), encryptionKey: randomBytes(32) });
  store = s;
  await s.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: 'admin' }, spec: { platformAdmin: true } });
  await s.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: PROJECT }, spec: { members: [{ user: 'admin', role: 'admin' }] } });
  token = (await s.tokens.issue({ user: 'admin' })).token;
  const logger = values['log-file']
    ? pino({ level: process.env.BENCH_LOG_LEVEL ?? 'info' }, pino.destination({ dest: values['log-file'], sync: true }))
    : pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' });
  const metrics = new Registry();
  // Every stored health pass, with the moment it was stored (the wrapped object is this run's own).
  const registry = new HealthRegistry();
  const set = registry.set.bind(registry);
  registry.set = (report: HealthReport) => {
    onReport(report);
    set(report);
  };
  const { app, close } = await buildApp({
    store: s,
    tokens: s.tokens,
    audit: s.audit,
    validation: { kubernetesVersions: [version] },
    metrics,
    logger: false,
    health: { latest: (p, c) => registry.get(p, c), series: s.series },
  });
  const provider = new LocalProvider({ root, addressBase: ADDRESS_BASE, binaries: () => toolchain.paths });
  let alerting: RunningAlerting | undefined;
  const watches: Watch[] = [];
  closeAll = async () => {
    for (const w of watches) w.stop();
    await close();
    await controllers?.stop();
    await alerting?.stop();
    await provider.close();
    await s.close();
  };
  // As `marina server` wires it: alerting first, then the controllers with series and alerts.
  alerting = await startAlerting({ store: s, metrics, logger: logger.child({ module: 'alerts' }) });
  controllers = await startControlLoops({
    store: s,
    providers: { get: () => provider, list: () => [provider] },
    metrics,
    logger: logger.child({ module: 'controllers' }),
    defaultKubernetesVersion: version,
    health: registry,
    series: s.series,
    alerts: alerting.manager,
  });
  watches.push(s.watch({ kind: 'Machine', project: PROJECT }, (ev) => onMachine(ev.type, ev.object as Machine)));
  watches.push(s.watch({ kind: 'Cluster', project: PROJECT }, (ev) => onCluster(ev.object as Cluster)));
  watches.push(s.watch({ kind: 'NodePool', project: PROJECT }, (ev) => onPool(ev.object as NodePool)));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
}

// ---------------------------------------------------------------------------------------------
// what the watch and the registry saw

interface Snap {
  t: number;
  phase?: string;
  healthy?: string;
  healthyReason?: string;
  nodeReady?: boolean;
  etcdMember?: string;
  deleting: boolean;
}
interface MachineLog {
  name: string;
  pool: string;
  role: Role;
  created: number;
  gone?: number;
  snaps: Snap[];
}
const machineLogs = new Map<string, MachineLog>();
const roleOf = (roles: string[]): Role => (roles.includes('controlplane') ? 'controlplane' : roles.includes('etcd') ? 'etcd' : 'worker');
const cond = (m: Machine, type: string) => m.status?.conditions?.find((c) => c.type === type);

function onMachine(type: string, m: Machine): void {
  if (m.spec.cluster !== CLUSTER) return;
  const now = Date.now();
  let log = machineLogs.get(m.metadata.name);
  if (!log) {
    log = { name: m.metadata.name, pool: m.spec.pool, role: roleOf(m.spec.roles), created: now, snaps: [] };
    machineLogs.set(m.metadata.name, log);
  }
  if (type === 'DELETED') {
    log.gone ??= now;
    return;
  }
  const h = cond(m, 'Healthy');
  const snap: Snap = { t: now, deleting: Boolean(m.metadata.deletionTimestamp) };
  if (m.status?.phase) snap.phase = m.status.phase;
  if (h) {
    snap.healthy = h.status;
    if (h.reason) snap.healthyReason = h.reason;
  }
  if (m.status?.nodeReady !== undefined) snap.nodeReady = m.status.nodeReady;
  const em = cond(m, 'EtcdMember');
  if (em) snap.etcdMember = em.status;
  log.snaps.push(snap);
}

/** Cluster phase / Ready reason changes: [ms epoch, "phase (Ready reason)"]. */
const clusterLog: [number, string][] = [];
function onCluster(c: Cluster): void {
  if (c.metadata.name !== CLUSTER) return;
  const ready = c.status?.conditions?.find((x) => x.type === 'Ready');
  const pools = c.status?.conditions?.find((x) => x.type === 'PoolsReady');
  const why = ready && ready.status !== 'True' ? ` (${ready.reason}${ready.reason?.startsWith('PoolsReady') && pools?.message ? `: ${pools.message}` : ''})` : '';
  const v = `${c.status?.phase ?? 'none'}${why}`;
  if (clusterLog.at(-1)?.[1] !== v) clusterLog.push([Date.now(), v]);
}

/** NodePool readyReplicas / replicas changes per pool template: [ms epoch, "ready/replicas"]. */
const poolLog = new Map<string, [number, string][]>();
function onPool(p: NodePool): void {
  if (p.spec.cluster !== CLUSTER) return;
  const name = p.metadata.labels?.['marina.dev/pool'] ?? p.metadata.name;
  const v = `${p.status?.readyReplicas ?? 0}/${p.status?.replicas ?? 0} ready`;
  const log = poolLog.get(name) ?? poolLog.set(name, []).get(name)!;
  if (log.at(-1)?.[1] !== v) log.push([Date.now(), v]);
}

interface ReportLog {
  /** when the pass was stored (ms epoch) */
  t: number;
  /** when the pass started */
  at: number;
  durationMs: number;
  healthy: boolean;
  /** a metrics scrape ran in this pass */
  scraped: boolean;
  unreachable: string[];
  failing: string[];
}
const reports: ReportLog[] = [];
let lastMetricsAt: string | undefined;

function onReport(r: HealthReport): void {
  if (r.cluster !== CLUSTER) return;
  const scraped = r.metrics !== undefined && r.metrics.at !== lastMetricsAt;
  if (r.metrics) lastMetricsAt = r.metrics.at;
  reports.push({
    t: Date.now(),
    at: Date.parse(r.at),
    durationMs: r.durationMs,
    healthy: r.healthy,
    scraped,
    unreachable: r.checks.filter((c) => c.component === 'agent' && c.reachable === false).map((c) => c.machine ?? '?'),
    failing: r.checks.filter((c) => !c.ok).map((c) => `${c.component}${c.machine ? `@${c.machine}` : ''}: ${c.message}`.slice(0, 160)),
  });
  if (reports.length > 20_000) reports.splice(0, 10_000);
}

const isReadySnap = (role: Role, s: Snap): boolean =>
  s.phase === 'Running' && s.healthy === 'True' && !s.deleting && (role === 'etcd' ? s.etcdMember === 'True' : s.nodeReady === true);
const firstAt = (log: MachineLog | undefined, from: number, pred: (s: Snap) => boolean): number | undefined => log?.snaps.find((s) => s.t >= from && pred(s))?.t;

// ---------------------------------------------------------------------------------------------
// cluster state

async function machinesNow(): Promise<Machine[]> {
  const { items } = await store!.list('Machine', { project: PROJECT, labelSelector: `marina.dev/cluster=${CLUSTER}` });
  return (items as Machine[]).filter((m) => m.spec.cluster === CLUSTER);
}

const machineOk = (m: Machine): boolean => {
  const role = roleOf(m.spec.roles);
  return (
    m.status?.phase === 'Running' &&
    cond(m, 'Healthy')?.status === 'True' &&
    !m.metadata.deletionTimestamp &&
    (role === 'etcd' ? cond(m, 'EtcdMember')?.status === 'True' : m.status.nodeReady === true)
  );
};

/** Why the cluster is not settled, or undefined when it is. */
async function unsettled(): Promise<string | undefined> {
  const c = (await store!.get({ kind: 'Cluster', project: PROJECT, name: CLUSTER })) as Cluster | undefined;
  if (c?.status?.phase !== 'Ready') return `cluster phase ${c?.status?.phase ?? 'none'}`;
  const ms = await machinesNow();
  const deleting = ms.filter((m) => m.metadata.deletionTimestamp);
  if (deleting.length) return `deleting ${deleting.map((m) => m.metadata.name).join(', ')}`;
  for (const p of POOLS) {
    const n = ms.filter((m) => m.spec.pool === p.name).length;
    if (n !== p.replicas) return `pool ${p.name} has ${n}/${p.replicas} machines`;
  }
  const bad = ms.filter((m) => !machineOk(m));
  if (bad.length) return `not Running+Healthy: ${bad.map((m) => `${m.metadata.name} (${m.status?.phase}, Healthy ${cond(m, 'Healthy')?.reason})`).join(', ')}`;
  const r = reports.at(-1);
  if (!r) return 'no health pass yet';
  if (!r.healthy) return `newest health pass unhealthy: ${r.failing.join('; ') || 'Node problems'}`;
  const newest = Math.max(...ms.map((m) => Date.parse(m.metadata.creationTimestamp ?? '') || 0));
  if (r.at < newest) return 'no health pass since the newest machine';
  return undefined;
}

/** What held a settle up: each distinct reason (numbers stripped) with how long it was seen (ms). */
let settleReasons = new Map<string, number>();

/**
 * Waits until the cluster is settled for SETTLE_MS in a row; returns how long that took (ms).
 * The reasons it waited for are left in `settleReasons`.
 */
async function settle(what: string, timeoutMs = TIMEOUT_MS): Promise<number> {
  const t0 = Date.now();
  let okSince: number | undefined;
  let last = '';
  let lastAt = t0;
  settleReasons = new Map();
  for (;;) {
    const problem = await unsettled();
    const now = Date.now();
    if (last) settleReasons.set(last, (settleReasons.get(last) ?? 0) + (now - lastAt));
    lastAt = now;
    if (!problem) {
      last = '';
      okSince ??= now;
      if (now - okSince >= SETTLE_MS) return okSince - t0;
    } else {
      okSince = undefined;
      last = problem.replace(/heal-[a-z]+-[a-z0-9]{5}/g, 'M').slice(0, 200);
    }
    if (now - t0 > timeoutMs) throw new Error(`${what}: not settled after ${timeoutMs / 1000} s: ${problem ?? last}`);
    await sleep(250);
  }
}

const reasonsText = (): string =>
  [...settleReasons]
    .sort((a, b) => b[1] - a[1])
    .map(([r, ms]) => `${r} (${sec(ms)} s)`)
    .join('; ');

/** GET, change, PUT the cluster (retried on conflict). */
async function updateCluster(change: (c: Cluster) => void): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const got = await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`);
    if (got.status !== 200) throw new Error(`get cluster: ${got.status} ${got.text}`);
    const c = got.json as Cluster;
    change(c);
    const put = await api('PUT', `/projects/${PROJECT}/clusters/${CLUSTER}`, c);
    if (put.status === 200) return;
    if (put.status !== 409) throw new Error(`update cluster: ${put.status} ${put.text}`);
  }
  throw new Error('update cluster: conflicts');
}

/** spec.health and every pool's unhealthy timeout (never shorter than the interval: validation). */
function setHealth(c: Cluster, intervalSeconds: number, metricsIntervalSeconds?: number): void {
  c.spec.health = { intervalSeconds, ...(metricsIntervalSeconds !== undefined ? { metricsIntervalSeconds } : {}) };
  for (const p of c.spec.nodePools) p.healing = { ...(p.healing ?? {}), unhealthyTimeoutSeconds: Math.max(UNHEALTHY_S, intervalSeconds) };
}

// ---------------------------------------------------------------------------------------------
// processes

function machineRecord(name: string): { pid?: number; address?: string } | undefined {
  const rec = readJson<{ pid?: number; address?: string }>(join(root, 'machines', PROJECT, CLUSTER, name, 'machine.json'));
  if (rec?.pid) startedGroups.add(rec.pid);
  return rec;
}

/** SIGKILL of the machine's whole process group, after checking the leader is this run's agent. */
function killMachine(name: string): number {
  const pid = machineRecord(name)?.pid;
  if (!pid) throw new Error(`machine ${name}: no agent pid on disk`);
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  if (!cmd.includes(join(root, 'machines', PROJECT, CLUSTER, name, 'agent.json'))) throw new Error(`pid ${pid} is not the agent of ${name}`);
  const t0 = Date.now();
  process.kill(-pid, 'SIGKILL');
  return t0;
}

type Component = 'agent' | 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'load balancer' | 'other';

/** Ticks of every process of the cluster, by pid, with what it is. */
function clusterTicks(): Map<number, { component: Component; ticks: number }> {
  const stats = allStats();
  const out = new Map<number, { component: Component; ticks: number }>();
  const leaders: { pid: number; lb: boolean }[] = [];
  const mdir = join(root, 'machines', PROJECT, CLUSTER);
  for (const name of existsSync(mdir) ? readdirSync(mdir) : []) {
    const pid = machineRecord(name)?.pid;
    if (pid) leaders.push({ pid, lb: false });
  }
  const ep = readJson<{ pid?: number }>(join(root, 'endpoints', PROJECT, CLUSTER, 'endpoint.json'));
  if (ep?.pid) {
    startedGroups.add(ep.pid);
    leaders.push({ pid: ep.pid, lb: true });
  }
  const what = (p: ProcStat, l: { pid: number; lb: boolean }): Component => {
    if (p.pid === l.pid) return l.lb ? 'load balancer' : 'agent';
    if (p.comm === 'etcd') return 'etcd';
    if (p.comm === 'kube-apiserver') return 'kube-apiserver';
    if (p.comm.startsWith('kube-controller')) return 'kube-controller-manager';
    if (p.comm === 'kube-scheduler') return 'kube-scheduler';
    return 'other';
  };
  for (const l of leaders) for (const p of groupMembers(l.pid, stats)) out.set(p.pid, { component: what(p, l), ticks: p.ticks });
  return out;
}

// ---------------------------------------------------------------------------------------------
// kills

interface KillResult {
  interval: number;
  run: number;
  role: Role;
  victim: string;
  note: string;
  replacement?: string;
  /** ms after the kill */
  seen?: number;
  detect?: number;
  marked?: number;
  created?: number;
  member?: number;
  ready?: number;
  api?: number;
  victimGone?: number;
  detectReason?: string;
  collateral: string[];
  settledAfter?: number;
  settleWaitedFor?: string;
  /** Cluster phase changes from the kill until settled. */
  clusterPhases?: string;
  /** The first health passes stored after the kill: +s when stored, its duration, whether it saw the victim's agent unreachable. */
  passes?: string;
  error?: string;
}

/** The machine whose etcd member leads, per `etcdctl endpoint status` (undefined if unknown). */
async function etcdLeader(etcd: Machine[]): Promise<string | undefined> {
  const endpointOf = (m: Machine) => `https://${m.status!.address!}:2379`;
  try {
    const out = await etcdctl(toolchain, join(root, 'machines', PROJECT, CLUSTER, etcd[0]!.metadata.name), etcd.map(endpointOf), ['endpoint', 'status', '-w', 'json']);
    const status = JSON.parse(out) as { Endpoint: string; Status: { leader: string; header: { member_id: string } } }[];
    const leader = status.find((x) => String(x.Status.leader) === String(x.Status.header.member_id));
    return etcd.find((m) => endpointOf(m) === leader?.Endpoint)?.metadata.name;
  } catch {
    return undefined;
  }
}

/**
 * The oldest Running, Healthy machine of the role; for etcd, per --etcd-victim, a follower (odd
 * runs of `alternate`) or the leader (even runs), found with etcdctl just before the kill.
 */
async function pickVictim(role: Role, run: number): Promise<{ victim: Machine; note: string }> {
  const ms = (await machinesNow()).filter((m) => roleOf(m.spec.roles) === role && machineOk(m));
  ms.sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name));
  if (!ms[0]) throw new Error(`no Running, Healthy ${role} machine`);
  if (role !== 'etcd') return { victim: ms[0], note: '' };
  const leader = await etcdLeader(ms);
  const want = ETCD_VICTIM === 'alternate' ? (run % 2 === 1 ? 'follower' : 'leader') : ETCD_VICTIM;
  const victim =
    (want === 'leader' ? ms.find((m) => m.metadata.name === leader) : want === 'follower' && leader ? ms.find((m) => m.metadata.name !== leader) : undefined) ?? ms[0];
  return { victim, note: leader === undefined ? 'leader unknown' : victim.metadata.name === leader ? 'the etcd leader' : 'a follower' };
}

/** Polls kubectl /readyz through the endpoint every 250 ms; resolves with the first ok after a failure. */
async function pollApi(kubeconfig: string, deadline: number): Promise<number | undefined> {
  let failed = false;
  while (Date.now() < deadline) {
    let ok = false;
    try {
      ok = (await kubectl(kubeconfig, 'get', '--raw', '/readyz')).trim() === 'ok';
    } catch {
      ok = false;
    }
    if (!ok) failed = true;
    else if (failed) return Date.now();
    await sleep(250);
  }
  return undefined;
}

async function killOnce(interval: number, run: number, role: Role, kubeconfig: string): Promise<KillResult> {
  // Kill at a random moment of the check schedule (settling ends right after a pass, which
  // would otherwise put every kill at the same phase of the interval).
  const jitterMs = Math.floor(Math.random() * interval * 1000);
  await sleep(jitterMs);
  const { victim, note } = await pickVictim(role, run);
  const name = victim.metadata.name;
  const pool = victim.spec.pool;
  const before = new Set(machineLogs.keys());
  const t0 = killMachine(name);
  const deadline = t0 + TIMEOUT_MS;
  const apiP = role === 'controlplane' ? pollApi(kubeconfig, deadline) : Promise.resolve(undefined);
  const lastPass = reports.at(-1)?.t;
  const phase = lastPass !== undefined ? `kill ${sec(t0 - lastPass)} s after the last pass` : '';
  const res: KillResult = { interval, run, role, victim: name, note: [note, phase].filter(Boolean).join('; '), collateral: [] };
  const rel = (t: number | undefined) => (t === undefined ? undefined : t - t0);
  try {
    // Wait for the replacement to be Ready (and, for the control plane, the API back).
    for (;;) {
      const log = machineLogs.get(name);
      const repl = [...machineLogs.values()].find((l) => l.pool === pool && !before.has(l.name) && l.created >= t0);
      const ready = repl && firstAt(repl, t0, (s) => isReadySnap(role, s));
      if (ready !== undefined) break;
      if (Date.now() > deadline) throw new Error(`${role} ${name}: no Ready replacement after ${TIMEOUT_MS / 1000} s (detect ${sec(rel(firstAt(log, t0, (s) => s.healthy === 'False' || s.phase === 'Failed')))} s)`);
      await sleep(100);
    }
    const api = await apiP;
    const log = machineLogs.get(name)!;
    const repl = [...machineLogs.values()].find((l) => l.pool === pool && !before.has(l.name) && l.created >= t0)!;
    const seen = reports.find((r) => r.t >= t0 && r.unreachable.includes(name));
    const detectSnap = log.snaps.find((s) => s.t >= t0 && (s.healthy === 'False' || s.phase === 'Failed'));
    res.replacement = repl.name;
    res.seen = rel(seen?.t);
    res.detect = rel(detectSnap?.t);
    res.detectReason = detectSnap ? `${detectSnap.phase}/${detectSnap.healthyReason ?? ''}` : undefined;
    res.marked = rel(firstAt(log, t0, (s) => s.deleting));
    res.created = rel(repl.created);
    if (role === 'etcd') res.member = rel(firstAt(repl, t0, (s) => s.etcdMember === 'True'));
    res.ready = rel(firstAt(repl, t0, (s) => isReadySnap(role, s)));
    res.api = rel(api);
    if (role === 'controlplane' && api === undefined) res.error = 'kubectl /readyz never answered ok again (or never failed)';
    res.passes = reports
      .filter((r) => r.t >= t0)
      .slice(0, 3)
      .map((r) => `+${sec(r.t - t0)} (${r.durationMs} ms${r.unreachable.includes(name) ? ', saw it' : ''})`)
      .join(', ');
    res.settledAfter = await settle(`after killing ${name}`);
    res.clusterPhases = clusterLog
      .filter(([t]) => t >= t0)
      .map(([t, v]) => `+${sec(t - t0)} ${v}`)
      .join(', ');
    const pl = (poolLog.get(pool) ?? []).filter(([t]) => t >= t0).map(([t, v]) => `+${sec(t - t0)} ${v}`);
    if (pl.length) res.clusterPhases += `; pool ${pool}: ${pl.join(', ')}`;
    if (res.settledAfter > 1500) res.settleWaitedFor = reasonsText();
    res.victimGone = rel(log.gone);
    // Other machines replaced in this episode (anything else that was marked for deletion).
    const pools = (await store!.list('NodePool', { project: PROJECT })).items as NodePool[];
    const why = (m: string) => pools.flatMap((p) => p.status?.remediations ?? []).find((r) => r.machine === m);
    for (const l of machineLogs.values()) {
      if (l.name === name || !before.has(l.name)) continue;
      const marked = firstAt(l, t0, (s) => s.deleting);
      if (marked !== undefined) res.collateral.push(`${l.name} (${l.pool}) at +${sec(marked - t0)} s: ${why(l.name)?.reason ?? 'no remediation record'}`);
    }
    const own = why(name);
    if (own && own.reason !== 'MachineFailed') res.note += `${res.note ? '; ' : ''}remediation reason ${own.reason}`;
  } catch (err) {
    res.error = (err as Error).message;
  }
  return res;
}

function printKill(r: KillResult): void {
  const f = (x: number | undefined) => `${sec(x)}`;
  console.log(
    `  [${r.interval} s, run ${r.run}] ${r.role} ${r.victim}${r.note ? ` (${r.note})` : ''} → ${r.replacement ?? '?'}: ` +
      `seen ${f(r.seen)}, detect ${f(r.detect)} (${r.detectReason ?? '?'}), marked ${f(r.marked)}, created ${f(r.created)}` +
      `${r.role === 'etcd' ? `, member ${f(r.member)}` : ''}, ready ${f(r.ready)}${r.role === 'controlplane' ? `, kubectl /readyz ok ${f(r.api)}` : ''}` +
      `, old Machine gone ${f(r.victimGone)} s after the kill; settled ${sec(r.settledAfter)} s after that` +
      `${r.settleWaitedFor ? ` (waiting for: ${r.settleWaitedFor})` : ''}; passes stored after the kill: ${r.passes || 'none'}; Cluster: ${r.clusterPhases || 'no change'}` +
      `${r.collateral.length ? `; ALSO REPLACED: ${r.collateral.join('; ')}` : ''}${r.error ? `; ERROR: ${r.error}` : ''}`,
  );
}

async function killPhase(kubeconfig: string): Promise<KillResult[]> {
  const results: KillResult[] = [];
  for (const interval of INTERVALS) {
    const current = (await store!.get({ kind: 'Cluster', project: PROJECT, name: CLUSTER })) as Cluster;
    if (current.spec.health?.intervalSeconds !== interval || current.spec.health.metricsIntervalSeconds !== undefined) {
      await updateCluster((c) => setHealth(c, interval));
    }
    await settle(`interval ${interval} s`);
    console.log(`\n## kills at spec.health.intervalSeconds = ${interval} (metrics every 60 s, unhealthyTimeoutSeconds ${Math.max(UNHEALTHY_S, interval)}); load ${load()}`);
    for (let run = 1; run <= RUNS; run++) {
      for (const role of ROLES) {
        const r = await killOnce(interval, run, role, kubeconfig);
        printKill(r);
        results.push(r);
        if (r.error) {
          // Let it settle before going on, or stop when it does not.
          await settle(`recovering after ${r.victim}`);
        }
      }
    }
  }
  return results;
}

function summarize(results: KillResult[]): void {
  console.log('\n### kill → replacement Ready (s; median / max over runs; "seen" = the health pass that found the agent unreachable was stored)');
  const rows: string[][] = [];
  const mm = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => x !== undefined);
    return v.length ? `${sec(median(v))} / ${sec(Math.max(...v))}` : '–';
  };
  for (const interval of INTERVALS) {
    for (const role of ROLES) {
      const rs = results.filter((r) => r.interval === interval && r.role === role && !r.error);
      if (!rs.length) continue;
      const dToReady = rs.map((r) => (r.ready !== undefined && r.detect !== undefined ? r.ready - r.detect : undefined));
      rows.push([
        `${role} @ ${interval} s`,
        String(rs.length),
        mm(rs.map((r) => r.seen)),
        mm(rs.map((r) => r.detect)),
        mm(rs.map((r) => (r.marked !== undefined && r.detect !== undefined ? r.marked - r.detect : undefined))),
        mm(rs.map((r) => (r.created !== undefined && r.detect !== undefined ? r.created - r.detect : undefined))),
        mm(dToReady),
        mm(rs.map((r) => r.ready)),
        role === 'controlplane' ? mm(rs.map((r) => r.api)) : role === 'etcd' ? `member ${mm(rs.map((r) => r.member))}` : '',
      ]);
    }
  }
  table(['role @ interval', 'n', 'kill→seen', 'kill→detect', 'detect→marked', 'detect→created', 'detect→Ready', 'kill→Ready', 'kill→API ok (cp) / member (etcd)'], rows);
  const failed = results.filter((r) => r.error);
  if (failed.length) console.log(`\n${failed.length} kills had errors: ${failed.map((r) => `${r.role} ${r.victim}: ${r.error}`).join('; ')}`);
  console.log(`\n### against the goal: a killed machine Ready again within ${GOAL_MS / 1000} s of detection`);
  for (const interval of INTERVALS) {
    for (const role of ROLES) {
      const rs = results.filter((r) => r.interval === interval && r.role === role && !r.error && r.ready !== undefined && r.detect !== undefined);
      if (!rs.length) continue;
      const d = rs.map((r) => r.ready! - r.detect!);
      const met = d.filter((x) => x <= GOAL_MS).length;
      const extra = role === 'controlplane' ? `; API back (kubectl) ${rs.map((r) => (r.api !== undefined ? sec(r.api - r.detect!) : 'n/a')).join(', ')} s after detection` : '';
      console.log(
        `  ${role} @ ${interval} s: detection → Ready median ${sec(median(d))} s, max ${sec(Math.max(...d))} s (${d.map(sec).join(', ')}): ` +
          `${met === d.length ? 'MET' : met === 0 ? 'MISSED' : 'PARTLY MET'} in ${met}/${d.length}; detection itself ${rs.map((r) => sec(r.detect)).join(', ')} s after the kill${extra}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CPU of health checking

interface Window {
  label: string;
  interval: number;
  metrics: number;
  seconds: number;
  passes: number;
  scrapes: number;
  passMs: number[];
  /** ms of CPU */
  marina: number;
  byComponent: Map<Component, number>;
  others: number;
  load: string;
}

async function cpuWindow(label: string, interval: number, metrics: number): Promise<Window> {
  await updateCluster((c) => setHealth(c, interval, metrics));
  // Let the spec change's own reconciles pass, then start on a pass boundary.
  await sleep(3000);
  if (interval < 60) {
    const n = reports.length;
    const until = Date.now() + interval * 1000 + 5000;
    while (reports.length === n && Date.now() < until) await sleep(50);
  }
  const problem = await unsettled();
  if (problem) console.log(`  (${label}: not settled at the start: ${problem})`);
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const self0 = selfTicks();
  const busy0 = systemBusyTicks();
  const ticks0 = clusterTicks();
  const r0 = reports.length;
  const load0 = load();
  await sleep(IDLE_S * 1000);
  const cpu = process.cpuUsage(cpu0);
  const ticks1 = clusterTicks();
  const self = selfTicks() - self0;
  const busy = systemBusyTicks() - busy0;
  const seconds = (Date.now() - t0) / 1000;
  const inWindow = reports.slice(r0);
  const byComponent = new Map<Component, number>();
  let clusterAll = 0;
  for (const [pid, b] of ticks1) {
    const a = ticks0.get(pid);
    if (!a) continue;
    const d = b.ticks - a.ticks;
    clusterAll += d;
    byComponent.set(b.component, (byComponent.get(b.component) ?? 0) + (d * 1000) / CLK);
  }
  return {
    label,
    interval,
    metrics,
    seconds,
    passes: inWindow.length,
    scrapes: inWindow.filter((r) => r.scraped).length,
    passMs: inWindow.map((r) => r.durationMs),
    marina: (cpu.user + cpu.system) / 1000,
    byComponent,
    others: (Math.max(0, busy - self - clusterAll) * 1000) / CLK,
    load: load0,
  };
}

async function cpuPhase(): Promise<void> {
  console.log(`\n## CPU of health checking: cluster idle and Ready, ${IDLE_S} s per window; load ${load()}`);
  await settle('before the CPU windows');
  // Checks off first, then a warm-up: the cluster's processes are still busy after the kills.
  await updateCluster((c) => setHealth(c, 3600, 3600));
  await sleep(WARMUP_S * 1000);
  const windows: Window[] = [];
  for (const [label, interval, metrics] of [
    ['off (3600 s)', 3600, 3600],
    ['default (10 s, metrics 60 s)', 10, 60],
    ['1 s, metrics 60 s', 1, 60],
    ['1 s, metrics 1 s', 1, 1],
    ['off again (3600 s)', 3600, 3600],
  ] as const) {
    const w = await cpuWindow(label, interval, metrics);
    windows.push(w);
    console.log(
      `  ${label}: ${w.passes} passes (${w.scrapes} with metrics) in ${w.seconds.toFixed(1)} s; Marina ${w.marina.toFixed(0)} ms CPU; ` +
        `cluster ${[...w.byComponent].map(([c, ms]) => `${c} ${ms.toFixed(0)}`).join(', ')} ms; others ${w.others.toFixed(0)} ms; load at start ${w.load}`,
    );
  }
  const comps: Component[] = ['kube-apiserver', 'etcd', 'agent', 'load balancer', 'kube-controller-manager', 'kube-scheduler'];
  const total = (w: Window) => [...w.byComponent.values()].reduce((a, b) => a + b, 0);
  const f1 = (x: number) => x.toFixed(1);
  console.log(`\n### CPU per window (ms of CPU per second of wall time = ‰ of one core)`);
  table(
    ['window', 'passes', 'with metrics', 'pass duration median ms', 'Marina process', ...comps, 'cluster total', 'other sessions'],
    windows.map((w) => [
      w.label,
      String(w.passes),
      String(w.scrapes),
      w.passMs.length ? median(w.passMs).toFixed(0) : '–',
      f1(w.marina / w.seconds),
      ...comps.map((c) => f1((w.byComponent.get(c) ?? 0) / w.seconds)),
      f1(total(w) / w.seconds),
      f1(w.others / w.seconds),
    ]),
  );
  // Rates (per second): r_w − r_off = a·passes_w/s + b·scrapes_w/s, solved for the two 1 s windows;
  // r_off = the mean of the two off windows.
  const [off1, def, fast, fastM, off2] = windows as [Window, Window, Window, Window, Window];
  const rate = (w: Window, f: (w: Window) => number) => f(w) / w.seconds;
  const solve = (f: (w: Window) => number) => {
    const base = (rate(off1, f) + rate(off2, f)) / 2;
    const y1 = rate(fast, f) - base;
    const y2 = rate(fastM, f) - base;
    const p1 = fast.passes / fast.seconds, s1 = fast.scrapes / fast.seconds;
    const p2 = fastM.passes / fastM.seconds, s2 = fastM.scrapes / fastM.seconds;
    const det = p1 * s2 - p2 * s1;
    return { base, a: (y1 * s2 - y2 * s1) / det, b: (p1 * y2 - p2 * y1) / det, drift: rate(off2, f) - rate(off1, f) };
  };
  const marina = solve((w) => w.marina);
  const cluster = new Map(comps.map((c) => [c, solve((w) => w.byComponent.get(c) ?? 0)]));
  const all = solve(total);
  console.log(`\n### CPU per health pass (the two 1 s windows against the mean of the two off windows; "off drift" = off again − off, ms/s: the noise floor)`);
  table(
    ['process', 'per simple pass, ms', 'extra per metrics scrape, ms', 'off drift, ms/s'],
    [
      ['Marina (checker, alerts, series, reconciles)', f1(marina.a), f1(marina.b), f1(marina.drift)],
      ...comps.map((c) => [`${c} (all of the cluster)`, f1(cluster.get(c)!.a), f1(cluster.get(c)!.b), f1(cluster.get(c)!.drift)]),
      ['cluster total', f1(all.a), f1(all.b), f1(all.drift)],
    ],
  );
  const measured = rate(def, (w) => w.marina) - marina.base;
  const predicted = marina.a * (def.passes / def.seconds) + marina.b * (def.scrapes / def.seconds);
  const clusterDef = rate(def, total) - all.base;
  console.log(
    `default interval (10 s, metrics 60 s): Marina ${f1(measured)} ms/s above checks off (${(measured / 10).toFixed(2)} % of one core; the per-pass figures predict ${f1(predicted)} ms/s); ` +
      `the cluster's processes ${f1(clusterDef)} ms/s (${(clusterDef / 10).toFixed(2)} % of one core)`,
  );
}

// ---------------------------------------------------------------------------------------------
// cleanup

async function deleteCluster(): Promise<void> {
  const t0 = Date.now();
  const r = await api('DELETE', `/projects/${PROJECT}/clusters/${CLUSTER}`);
  if (![200, 202, 404].includes(r.status)) throw new Error(`delete: ${r.status} ${r.text}`);
  while ((await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).status !== 404) {
    if (Date.now() - t0 > 300_000) throw new Error('cluster not gone after 300 s');
    await sleep(250);
  }
  clusterCreated = false;
  console.log(`cluster deleted in ${sec(Date.now() - t0)} s`);
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    try {
      if (url && clusterCreated) await deleteCluster().catch((err) => console.error(`cleanup delete failed: ${String(err)}`));
      await closeAll?.().catch((err) => console.error(`close failed: ${String(err)}`));
    } finally {
      const killed = killRecordedGroups(root, dir, startedGroups);
      if (killed.length) {
        console.error(`cleanup: SIGKILLed leftover process groups ${killed.join(', ')}`);
        await sleep(500);
      }
      reportLeftovers(root, dir, startedGroups);
    }
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`# Marina healing benchmark — ${new Date().toISOString()}`);
  console.log(`Kubernetes ${toolchain.version} (etcd ${toolchain.etcdVersion}), node ${process.version}, addresses from ${ADDRESS_BASE}/16, data in ${dir}`);
  console.log(
    `load average at start: ${load()}; ${RUNS} run(s) × ${ROLES.join(', ')} at intervals ${INTERVALS.join(', ')} s; ` +
      `healing.unhealthyTimeoutSeconds ${UNHEALTHY_S} (at least the interval), other healing fields default (startup 600 s, drain 60 s, maxInFlight 40 % → 1 here)`,
  );
  await startMarina();
  const t0 = Date.now();
  const body: Cluster = {
    apiVersion: API_VERSION as Cluster['apiVersion'],
    kind: 'Cluster',
    metadata: { name: CLUSTER, project: PROJECT },
    spec: {
      health: { intervalSeconds: INTERVALS[0]! },
      nodePools: POOLS.map((p) => ({ name: p.name, roles: [p.role], replicas: p.replicas, healing: { unhealthyTimeoutSeconds: Math.max(UNHEALTHY_S, INTERVALS[0]!) } })),
    },
  };
  const created = await api('POST', `/projects/${PROJECT}/clusters`, body);
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  clusterCreated = true;
  await settle('create', TIMEOUT_MS);
  console.log(`Marina on ${url}; cluster ${CLUSTER} (3 etcd, 1 control plane, 3 workers) settled ${sec(Date.now() - t0)} s after the create`);
  const kubeconfig = join(dir, 'admin.kubeconfig');
  const kc = await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}/kubeconfig`);
  if (kc.status !== 200) throw new Error(`kubeconfig: ${kc.status}`);
  writeFileSync(kubeconfig, kc.text, { mode: 0o600 });

  if (!values['skip-kills']) summarize(await killPhase(kubeconfig));
  if (!values['skip-cpu']) await cpuPhase();
  console.log(`\nload average at end: ${load()}`);
}

try {
  await main();
} catch (err) {
  console.error(`FAILED: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
process.exit();
