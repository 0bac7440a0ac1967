// Local-cluster benchmark (issue 4): create → Ready of real clusters through the REST API, the
// controllers and the local provider, all in this process (like test/e2e/cluster.test.ts); the
// memory and idle CPU of every process of a cluster; and how many default clusters fit.
//
//   npx tsc -p tsconfig.json && node dist/bench/cluster.js [--runs 2] [--max-clusters 6]
//     [--etcd 1,3,5] [--idle-seconds 60] [--settle-seconds 15] [--min-available-gib 3]
//     [--address-base 127.90.0.0] [--skip-timing] [--skip-fit]
//
// Timestamps: t0 is taken just before the create POST. Cluster / Machine milestones come from a
// watch on the store of this very Marina (exact to the write that made them); kubectl milestones
// from polling the real kubectl every 0.5 s with the admin kubeconfig (so they include the poll
// interval and kubectl's own start-up). Memory: every process in the process group of each
// machine agent and of the cluster's load balancer, plus their descendants (walked in /proc):
// RSS, anonymous memory (private: what a process really costs) and PSS (shared pages such as the
// node binary of the agents split among all processes mapping them, machine-wide). CPU: ticks of
// the cluster's processes, of this process (Marina + bench + reaped kubectl runs) and the rest of
// the machine (busy ticks of /proc/stat minus both), to show how much other sessions interfered.
// Deletes: when each role's Machines were marked, their process groups gone, their objects gone;
// after every delete the script checks that no process group and no directory is left.
// Cleanup on any failure or SIGINT/SIGTERM: delete the clusters through the API, then SIGKILL
// only process groups recorded by the provider under this run's temp dir, then remove the dir.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { clockTicksPerSecond } from '../src/agent/procfs.js';
import { API_VERSION } from '../src/api/meta.js';
import { buildCluster } from '../src/cli/cluster.js';
import { startControlLoops, type RunningControlLoops } from '../src/server/control-loops.js';
import { isProcessGroupAlive } from '../src/proc/index.js';
import { LocalProvider } from '../src/providers/local/index.js';
import { buildApp } from '../src/server/app.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Watch } from '../src/store/types.js';
import { resolveToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { apiRequest } from '../test/support/marina.js';
import { allStats, GIB, groupMembers, killRecordedGroups, load, memOf, reportLeftovers, median, MIB, readJson, sec, selfTicks, systemBusyTicks, table, type Mem, type ProcStat } from './support.js';

const execFileAsync = promisify(execFile);
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '2' },
    'max-clusters': { type: 'string', default: '6' },
    etcd: { type: 'string', default: '1,3,5' },
    'idle-seconds': { type: 'string', default: '60' },
    'settle-seconds': { type: 'string', default: '15' },
    'min-available-gib': { type: 'string', default: '3' },
    'address-base': { type: 'string', default: '127.90.0.0' },
    'timeout-seconds': { type: 'string', default: '300' },
    'skip-timing': { type: 'boolean', default: false },
    'skip-fit': { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const MAX_CLUSTERS = Number(values['max-clusters']);
const ETCD_SIZES = values.etcd!.split(',').map(Number);
const IDLE_S = Number(values['idle-seconds']);
const SETTLE_S = Number(values['settle-seconds']);
const MIN_AVAILABLE = Number(values['min-available-gib']) * 2 ** 30;
const ADDRESS_BASE = values['address-base']!;
const TIMEOUT_MS = Number(values['timeout-seconds']) * 1000;
const PROJECT = 'bench';
const CONTROL_PLANES = 1;
const WORKERS = 2;
const CLK = clockTicksPerSecond();

const version = defaultVersion();
const toolchain = resolveToolchain(version);

// ---------------------------------------------------------------------------------------------
// small helpers

const mib = (b: number): string => `${Math.round(b / MIB)}`;
const gib = (b: number): string => (b / GIB).toFixed(2);
function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
function memTotal(): number {
  const m = /MemTotal:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

// ---------------------------------------------------------------------------------------------
// /proc

// ---------------------------------------------------------------------------------------------
// Marina in this process

const dir = mkdtempSync(join(tmpdir(), 'marina-bench-cluster-'));
const root = join(dir, 'local');
let url = '';
let token = '';
let closeAll: (() => Promise<void>) | undefined;
/** Every process-group leader the provider started for us (agent or load balancer pid). */
const startedGroups = new Set<number>();
const liveClusters = new Set<string>();

const api = (method: string, path: string, body?: unknown) => apiRequest(url, token, method, path, body);

async function kubectl(kubeconfig: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    toolchain.paths.kubectl,
    ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kube-cache'), '--request-timeout=5s', ...args],
    { timeout: 15_000, maxBuffer: 16 * MIB },
  );
  return stdout;
}

async function startMarina(): Promise<void> {
  const store = openSqliteStore({ path: join(dir, 'marina.db'), encryptionKey: randomBytes(32) });
  await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: 'admin' }, spec: { platformAdmin: true } });
  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: PROJECT }, spec: { members: [{ user: 'admin', role: 'admin' }] } });
  token = (await store.tokens.issue({ user: 'admin' })).token;
  const { app, close } = await buildApp({ store, tokens: store.tokens, audit: store.audit, validation: { kubernetesVersions: [version] } });
  const provider = new LocalProvider({ root, addressBase: ADDRESS_BASE, binaries: () => toolchain.paths });
  let controllers: RunningControlLoops | undefined;
  const watches: Watch[] = [];
  closeAll = async () => {
    for (const w of watches) w.stop();
    await close();
    await controllers?.stop();
    await provider.close();
    await store.close();
  };
  // Default timing, as `marina server` runs.
  controllers = await startControlLoops({
    store,
    providers: { get: () => provider, list: () => [provider] },
    metrics: new Registry(),
    logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }),
    defaultKubernetesVersion: version,
  });
  watches.push(store.watch({ kind: 'Machine', project: PROJECT }, (ev) => {
    if (ev.type === 'DELETED') onMachineGone(ev.object as any);
    else onMachine(ev.object as any);
  }));
  watches.push(store.watch({ kind: 'Cluster', project: PROJECT }, (ev) => onCluster(ev.object as any)));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
}

// ---------------------------------------------------------------------------------------------
// milestones from the watch

type Role = 'etcd' | 'controlplane' | 'worker';
const roleOf = (roles: string[]): Role => (roles.includes('controlplane') ? 'controlplane' : roles.includes('etcd') ? 'etcd' : 'worker');

interface Track {
  name: string;
  etcd: number;
  t0: number;
  marks: Map<string, number>;
  started: Map<Role, Set<string>>;
  running: Map<Role, Set<string>>;
  ready: Promise<void>;
  resolveReady: () => void;
  fail: (err: Error) => void;
}
const tracks = new Map<string, Track>();

function mark(t: Track, what: string): void {
  if (!t.marks.has(what)) t.marks.set(what, performance.now() - t.t0);
}

function want(t: Track, role: Role): number {
  return role === 'etcd' ? t.etcd : role === 'controlplane' ? CONTROL_PLANES : WORKERS;
}

/** Per cluster being deleted: when the last machine of each role disappeared (ms since the DELETE). */
interface Deletion {
  t0: number;
  /** role → ms when the last Machine object of that role was removed from the store */
  gone: Map<string, number>;
  /** role → ms when the last Machine of that role got its deletionTimestamp */
  marked: Map<string, number>;
  /** role → ms when the last process group of that role was gone */
  stopped: Map<string, number>;
  /** Machines seen with a deletionTimestamp */
  seen: Set<string>;
}
const deletions = new Map<string, Deletion>();

function onMachineGone(m: { spec: { cluster: string; roles: string[] } }): void {
  const d = deletions.get(m.spec.cluster);
  if (d) d.gone.set(roleOf(m.spec.roles), performance.now() - d.t0);
}

function onMachine(m: { metadata: { name: string; deletionTimestamp?: string }; spec: { cluster: string; roles: string[] }; status?: { phase?: string; failureMessage?: string; conditions?: { type: string; status: string }[] } }): void {
  const d = deletions.get(m.spec.cluster);
  if (d && m.metadata.deletionTimestamp) {
    const role = roleOf(m.spec.roles);
    if (!d.seen.has(m.metadata.name)) {
      d.seen.add(m.metadata.name);
      d.marked.set(role, performance.now() - d.t0);
    }
  }
  const t = tracks.get(m.spec.cluster);
  if (!t) return;
  const role = roleOf(m.spec.roles);
  const label = role === 'worker' ? 'workers' : role;
  if (m.status?.conditions?.some((c) => c.type === 'Bootstrapped' && c.status === 'True')) {
    const s = t.started.get(role)!;
    s.add(m.metadata.name);
    mark(t, `${label}: first machine started`);
    if (s.size >= want(t, role)) mark(t, `${label}: all machines started`);
  }
  if (m.status?.phase === 'Running') {
    const s = t.running.get(role)!;
    s.add(m.metadata.name);
    mark(t, `${label}: first machine Running`);
    if (s.size >= want(t, role)) mark(t, `${label}: all machines Running`);
  }
  if (m.status?.phase === 'Failed') t.fail(new Error(`machine ${m.metadata.name} Failed: ${m.status.failureMessage}`));
}

function onCluster(c: { metadata: { name: string }; status?: { phase?: string; conditions?: { type: string; status: string }[] } }): void {
  const t = tracks.get(c.metadata.name);
  if (!t) return;
  for (const cond of c.status?.conditions ?? []) {
    if (cond.status === 'True' && ['EndpointReady', 'EtcdReady', 'ControlPlaneReady', 'PoolsReady'].includes(cond.type)) mark(t, `Cluster ${cond.type}`);
  }
  if (c.status?.phase === 'Ready') {
    mark(t, '(a) Cluster phase Ready');
    t.resolveReady();
  }
  if (c.status?.phase === 'Failed') t.fail(new Error(`cluster ${c.metadata.name} Failed`));
}

// ---------------------------------------------------------------------------------------------
// create → Ready

interface RunResult {
  name: string;
  etcd: number;
  marks: Map<string, number>;
  readyMs: number;
  nodesMs: number;
  readyzMs: number;
  /**
   * Core-seconds of CPU during the run: this process (Marina + bench + kubectl), the new cluster,
   * the bench's clusters that were already running, and the rest of the machine (other sessions).
   */
  cpu: { marina: number; cluster: number; benchClusters: number; others: number; wallS: number };
  loadAtStart: string;
}

async function createAndMeasure(name: string, etcd: number): Promise<RunResult> {
  let resolveReady!: () => void;
  let fail!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    fail = rej;
  });
  ready.catch(() => undefined);
  const t: Track = {
    name,
    etcd,
    t0: 0,
    marks: new Map(),
    started: new Map([['etcd', new Set()], ['controlplane', new Set()], ['worker', new Set()]]),
    running: new Map([['etcd', new Set()], ['controlplane', new Set()], ['worker', new Set()]]),
    ready,
    resolveReady,
    fail,
  };
  const loadAtStart = load();
  const running0 = new Map<number, number>();
  {
    const stats = allStats();
    for (const c of liveClusters) for (const p of clusterProcesses(c, stats)) running0.set(p.pid, p.ticks);
  }
  const busy0 = systemBusyTicks();
  const self0 = selfTicks();
  tracks.set(name, t);
  liveClusters.add(name);
  t.t0 = performance.now();
  const body = buildCluster({ name, project: PROJECT, etcd, controlplanes: CONTROL_PLANES, workers: WORKERS });
  const created = await api('POST', `/projects/${PROJECT}/clusters`, body);
  if (created.status !== 201) throw new Error(`create ${name}: ${created.status} ${created.text}`);
  mark(t, 'POST answered (201)');

  const deadline = t.t0 + TIMEOUT_MS;
  const timeout = sleep(TIMEOUT_MS, undefined, { ref: false }).then(() => {
    throw new Error(`${name}: not Ready after ${TIMEOUT_MS / 1000} s; marks ${JSON.stringify([...t.marks])}`);
  });
  timeout.catch(() => undefined);
  await Promise.race([Promise.all([ready, pollKubectl(t, deadline)]), timeout]);
  const wallS = (performance.now() - t.t0) / 1000;
  // CPU attribution over the run: system busy = this process (+ reaped kubectl runs) + the new
  // cluster's processes (all born in this window) + everything else on the machine.
  const stats = allStats();
  const clusterTicks = clusterProcesses(name, stats).reduce((s, p) => s + p.ticks, 0);
  let benchTicks = 0;
  for (const c of liveClusters) {
    if (c === name) continue;
    for (const p of clusterProcesses(c, stats)) if (running0.has(p.pid)) benchTicks += p.ticks - running0.get(p.pid)!;
  }
  const selfD = selfTicks() - self0;
  const busyD = systemBusyTicks() - busy0;
  tracks.delete(name);
  return {
    name,
    etcd,
    marks: t.marks,
    readyMs: t.marks.get('(a) Cluster phase Ready')!,
    nodesMs: t.marks.get('(b) kubectl: every Node Ready')!,
    readyzMs: t.marks.get('(c) kubectl get --raw /readyz = ok')!,
    cpu: {
      marina: selfD / CLK,
      cluster: clusterTicks / CLK,
      benchClusters: benchTicks / CLK,
      others: Math.max(0, busyD - selfD - clusterTicks - benchTicks) / CLK,
      wallS,
    },
    loadAtStart,
  };
}

/** Polls kubectl with the admin kubeconfig until /readyz answers ok and every Node is Ready. */
async function pollKubectl(t: Track, deadline: number): Promise<void> {
  const kubeconfig = join(dir, `${t.name}.kubeconfig`);
  for (;;) {
    const r = await api('GET', `/projects/${PROJECT}/clusters/${t.name}/kubeconfig`);
    if (r.status === 200) {
      writeFileSync(kubeconfig, r.text, { mode: 0o600 });
      break;
    }
    if (performance.now() > deadline) return;
    await sleep(250);
  }
  mark(t, 'admin kubeconfig available');
  const expected = CONTROL_PLANES + WORKERS;
  while (performance.now() < deadline) {
    if (!t.marks.has('(c) kubectl get --raw /readyz = ok')) {
      try {
        if ((await kubectl(kubeconfig, 'get', '--raw', '/readyz')).trim() === 'ok') mark(t, '(c) kubectl get --raw /readyz = ok');
      } catch {
        /* not yet */
      }
    }
    if (t.marks.has('(c) kubectl get --raw /readyz = ok')) {
      try {
        const nodes = JSON.parse(await kubectl(kubeconfig, 'get', 'nodes', '-o', 'json')) as {
          items: { status?: { conditions?: { type: string; status: string }[] } }[];
        };
        const ready = nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
        if (nodes.items.length === expected && ready === expected) {
          mark(t, '(b) kubectl: every Node Ready');
          return;
        }
      } catch {
        /* not yet */
      }
    }
    await sleep(500);
  }
}

// ---------------------------------------------------------------------------------------------
// memory

interface Member {
  kind: 'machine' | 'endpoint';
  name: string;
  role: Role | 'endpoint';
  pid: number;
  address: string;
}

async function clusterMembers(cluster: string): Promise<Member[]> {
  const machines = (await api('GET', `/projects/${PROJECT}/machines`)).json.items as { metadata: { name: string }; spec: { cluster: string; roles: string[] } }[];
  const roles = new Map(machines.filter((m) => m.spec.cluster === cluster).map((m) => [m.metadata.name, roleOf(m.spec.roles)]));
  const out: Member[] = [];
  const mdir = join(root, 'machines', PROJECT, cluster);
  for (const name of existsSync(mdir) ? readdirSync(mdir) : []) {
    const rec = readJson<{ pid?: number; address: string }>(join(mdir, name, 'machine.json'));
    if (!rec?.pid) continue;
    startedGroups.add(rec.pid);
    out.push({ kind: 'machine', name, role: roles.get(name) ?? 'worker', pid: rec.pid, address: rec.address });
  }
  const ep = readJson<{ pid?: number; address: string }>(join(root, 'endpoints', PROJECT, cluster, 'endpoint.json'));
  if (ep?.pid) {
    startedGroups.add(ep.pid);
    out.push({ kind: 'endpoint', name: 'endpoint', role: 'endpoint', pid: ep.pid, address: ep.address });
  }
  return out;
}

interface ProcSample {
  cluster: string;
  member: string;
  role: Role | 'endpoint';
  proc: string;
  pid: number;
  rss: number;
  pss: number;
  anon: number;
  ticks: number;
}

/** Every process of the cluster as recorded in the provider's files (sync: no API call). */
function clusterProcesses(cluster: string, stats = allStats()): ProcSample[] {
  const out: ProcSample[] = [];
  const mdir = join(root, 'machines', PROJECT, cluster);
  const leaders: { member: string; pid: number; lb: boolean }[] = [];
  for (const name of existsSync(mdir) ? readdirSync(mdir) : []) {
    const rec = readJson<{ pid?: number }>(join(mdir, name, 'machine.json'));
    if (rec?.pid) leaders.push({ member: name, pid: rec.pid, lb: false });
  }
  const ep = readJson<{ pid?: number }>(join(root, 'endpoints', PROJECT, cluster, 'endpoint.json'));
  if (ep?.pid) leaders.push({ member: 'endpoint', pid: ep.pid, lb: true });
  for (const l of leaders) {
    startedGroups.add(l.pid);
    for (const p of groupMembers(l.pid, stats)) {
      const m = memOf(p.pid);
      if (!m) continue;
      out.push({ cluster, member: l.member, role: 'worker', proc: p.pid === l.pid ? (l.lb ? 'load balancer' : 'agent') : p.comm, pid: p.pid, ...m, ticks: p.ticks });
    }
  }
  return out;
}

interface Snapshot {
  at: number;
  procs: ProcSample[];
  busy: number;
  self: number;
}

async function snapshot(clusters: string[]): Promise<Snapshot> {
  const busy = systemBusyTicks();
  const self = selfTicks();
  const stats = allStats();
  const procs: ProcSample[] = [];
  for (const c of clusters) {
    const roles = new Map((await clusterMembers(c)).map((m) => [m.name, m.role]));
    for (const p of clusterProcesses(c, stats)) procs.push({ ...p, role: roles.get(p.member) ?? 'worker' });
  }
  return { at: performance.now(), procs, busy, self };
}

const sum = (ps: ProcSample[], f: (p: ProcSample) => number): number => ps.reduce((s, p) => s + f(p), 0);

interface CpuWindow {
  /** cores used by the cluster processes present at both ends */
  clusters: number;
  /** this process (Marina + bench) and its reaped children */
  marina: number;
  /** the rest of the machine (other sessions) */
  others: number;
}

function cpuBetween(a: Snapshot, b: Snapshot): CpuWindow {
  const before = new Map(a.procs.map((p) => [p.pid, p.ticks]));
  let ticks = 0;
  for (const p of b.procs) if (before.has(p.pid)) ticks += p.ticks - before.get(p.pid)!;
  const s = (b.at - a.at) / 1000;
  const self = b.self - a.self;
  return { clusters: ticks / CLK / s, marina: self / CLK / s, others: Math.max(0, b.busy - a.busy - self - ticks) / CLK / s };
}

const pct = (cores: number): string => `${(cores * 100).toFixed(0)} %`;

async function factsTotal(cluster: string): Promise<number> {
  let total = 0;
  for (const m of await clusterMembers(cluster)) {
    if (m.kind !== 'machine') continue;
    try {
      const r = await fetch(`http://${m.address}:10250/facts`, { signal: AbortSignal.timeout(3000) });
      total += ((await r.json()) as { total: { rssBytes: number } }).total.rssBytes;
    } catch {
      return NaN;
    }
  }
  return total;
}

function printMemory(title: string, snap: { procs: ProcSample[] }, cpu?: CpuWindow): void {
  const procs = snap.procs;
  console.log(`\n${title}`);
  const roles: (Role | 'endpoint')[] = ['etcd', 'controlplane', 'worker', 'endpoint'];
  const rows: string[][] = [];
  for (const r of roles) {
    const ps = procs.filter((p) => p.role === r);
    if (ps.length === 0) continue;
    const members = new Set(ps.map((p) => p.member)).size;
    const comps = [...new Set(ps.map((p) => p.proc))]
      .map((c) => {
        const cs = ps.filter((p) => p.proc === c);
        return `${c} ${mib(sum(cs, (p) => p.rss) / members)}/${mib(sum(cs, (p) => p.anon) / members)}`;
      })
      .join(', ');
    rows.push([
      r === 'endpoint' ? 'endpoint (load balancer)' : `${r} machine`,
      String(members),
      mib(sum(ps, (p) => p.rss) / members),
      mib(sum(ps, (p) => p.anon) / members),
      mib(sum(ps, (p) => p.pss) / members),
      mib(sum(ps, (p) => p.rss)),
      mib(sum(ps, (p) => p.anon)),
      comps,
    ]);
  }
  rows.push([
    'whole cluster',
    String(new Set(procs.map((p) => p.member)).size),
    '',
    '',
    '',
    mib(sum(procs, (p) => p.rss)),
    mib(sum(procs, (p) => p.anon)),
    `${procs.length} processes; PSS ${mib(sum(procs, (p) => p.pss))}`,
  ]);
  table(['role', 'n', 'RSS each', 'anon each', 'PSS each', 'RSS total', 'anon total', 'per process, per machine: RSS/anon'], rows);
  if (cpu) console.log(`CPU over the window: cluster ${pct(cpu.clusters)} of one core; Marina+bench ${pct(cpu.marina)}; other sessions ${pct(cpu.others)}`);
}

// ---------------------------------------------------------------------------------------------
// delete

/** Deletes the clusters, waits until they are gone, checks nothing is left; returns ms. */
async function deleteClusters(names: string[], quiet = false): Promise<number> {
  const t0 = performance.now();
  const groups = new Map<string, number[]>();
  const members = new Map<string, Member[]>();
  for (const n of names) {
    members.set(n, await clusterMembers(n));
    groups.set(n, members.get(n)!.map((m) => m.pid));
  }
  // Watch the process groups die (100 ms resolution).
  const stoppedAt = new Map<number, number>();
  const poll = setInterval(() => {
    for (const pids of groups.values()) for (const pid of pids) if (!stoppedAt.has(pid) && !isProcessGroupAlive(pid)) stoppedAt.set(pid, performance.now());
  }, 100);
  for (const n of names) {
    deletions.set(n, { t0: performance.now(), gone: new Map(), marked: new Map(), stopped: new Map(), seen: new Set() });
    const r = await api('DELETE', `/projects/${PROJECT}/clusters/${n}`);
    if (![200, 202, 404].includes(r.status)) throw new Error(`delete ${n}: ${r.status} ${r.text}`);
  }
  const deadline = performance.now() + 300_000;
  for (const n of names) {
    while ((await api('GET', `/projects/${PROJECT}/clusters/${n}`)).status !== 404) {
      if (performance.now() > deadline) throw new Error(`cluster ${n} not gone after 300 s`);
      await sleep(250);
    }
    liveClusters.delete(n);
  }
  const ms = performance.now() - t0;
  clearInterval(poll);
  for (const n of names) {
    const alive = groups.get(n)!.filter((pid) => isProcessGroupAlive(pid));
    const dirs = [join(root, 'machines', PROJECT, n), join(root, 'endpoints', PROJECT, n)].filter((d) => existsSync(d));
    if (alive.length || dirs.length) throw new Error(`cluster ${n} deleted but left process groups ${alive.join(',')} / dirs ${dirs.join(',')}`);
    const d = deletions.get(n)!;
    for (const m of members.get(n)!) {
      const at = stoppedAt.get(m.pid);
      const role = m.role;
      if (at !== undefined) d.stopped.set(role, Math.max(d.stopped.get(role) ?? 0, at - d.t0));
    }
    const roles = ['etcd', 'controlplane', 'worker', 'endpoint'].filter((r) => d.stopped.has(r) || d.gone.has(r));
    if (!quiet) {
      console.log(
        `  ${n}: delete (s after DELETE; last of each role: marked / processes gone / Machine object gone): ` +
          roles.map((r) => `${r} ${sec(d.marked.get(r))} / ${sec(d.stopped.get(r))} / ${sec(d.gone.get(r))}`).join(', ') +
          `; Cluster object gone ${sec(ms)}; no process group, no directory left`,
      );
    }
    deletions.delete(n);
  }
  return ms;
}

// ---------------------------------------------------------------------------------------------
// phases

const MARK_ORDER = [
  'POST answered (201)',
  'Cluster EndpointReady',
  'admin kubeconfig available',
  'etcd: first machine started',
  'etcd: first machine Running',
  'etcd: all machines started',
  'etcd: all machines Running',
  'Cluster EtcdReady',
  'controlplane: first machine started',
  '(c) kubectl get --raw /readyz = ok',
  'Cluster ControlPlaneReady',
  'controlplane: first machine Running',
  'workers: first machine started',
  'workers: all machines started',
  'workers: first machine Running',
  'workers: all machines Running',
  '(b) kubectl: every Node Ready',
  'Cluster PoolsReady',
  '(a) Cluster phase Ready',
];

function printRun(r: RunResult): void {
  console.log(
    `  ${r.name}: (a) Ready ${sec(r.readyMs)} s, (b) Nodes Ready ${sec(r.nodesMs)} s, (c) /readyz ${sec(r.readyzMs)} s; ` +
      `CPU in ${r.cpu.wallS.toFixed(1)} s: marina+bench+kubectl ${r.cpu.marina.toFixed(1)}, cluster ${r.cpu.cluster.toFixed(1)}, ` +
      `${r.cpu.benchClusters > 0 ? `earlier bench clusters ${r.cpu.benchClusters.toFixed(1)}, ` : ''}others ${r.cpu.others.toFixed(1)} core-s; load at start ${r.loadAtStart}`,
  );
}

async function timingPhase(): Promise<void> {
  console.log(`\n## create → Ready: ${ETCD_SIZES.join(' / ')} etcd, ${CONTROL_PLANES} control plane, ${WORKERS} workers; ${RUNS} run(s) each, interleaved`);
  const results = new Map<number, RunResult[]>(ETCD_SIZES.map((n) => [n, []]));
  const memory = new Map<number, { ready: Snapshot; idle: Snapshot; cpu: CpuWindow; facts: number }>();
  const deletes: number[] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const etcd of ETCD_SIZES) {
      const name = `e${etcd}-r${run}`;
      const r = await createAndMeasure(name, etcd);
      results.get(etcd)!.push(r);
      printRun(r);
      if (run === 1) {
        const ready = await snapshot([name]);
        console.log(`  ${name}: right after Ready RSS ${mib(sum(ready.procs, (p) => p.rss))} MiB, anon ${mib(sum(ready.procs, (p) => p.anon))} MiB; idling ${IDLE_S} s ...`);
        await sleep(IDLE_S * 1000);
        const idle = await snapshot([name]);
        const facts = await factsTotal(name);
        memory.set(etcd, { ready, idle, cpu: cpuBetween(ready, idle), facts });
        console.log(`  ${name}: after ${IDLE_S} s idle RSS ${mib(sum(idle.procs, (p) => p.rss))} MiB, anon ${mib(sum(idle.procs, (p) => p.anon))} MiB; agents' /facts RSS total (machines, no LB) ${mib(facts)} MiB`);
      }
      const d = await deleteClusters([name]);
      deletes.push(d);
    }
  }

  console.log('\n### create → Ready (s since the create POST; median, min–max over runs)');
  const header = ['milestone', ...ETCD_SIZES.map((n) => `${n} etcd`)];
  const rows: string[][] = [];
  const fmt = (xs: number[]) => (xs.length === 0 ? '–' : xs.length === 1 ? sec(xs[0]) : `${sec(median(xs))} (${sec(Math.min(...xs))}–${sec(Math.max(...xs))})`);
  for (const m of MARK_ORDER) {
    const cells = ETCD_SIZES.map((n) => fmt(results.get(n)!.map((r) => r.marks.get(m)).filter((x): x is number => x !== undefined)));
    if (cells.every((c) => c === '–')) continue;
    rows.push([m, ...cells]);
  }
  table(header, rows);
  console.log('\nper run (a / b / c, s):');
  for (const n of ETCD_SIZES) console.log(`  ${n} etcd: ${results.get(n)!.map((r) => `${sec(r.readyMs)} / ${sec(r.nodesMs)} / ${sec(r.readyzMs)}`).join('   ')}`);
  console.log('\nCPU during the create runs (core-seconds; others = everything on the machine that is not Marina, the bench, kubectl or the new cluster):');
  for (const n of ETCD_SIZES) {
    console.log(`  ${n} etcd: ${results.get(n)!.map((r) => `marina ${r.cpu.marina.toFixed(1)} + cluster ${r.cpu.cluster.toFixed(1)} + others ${r.cpu.others.toFixed(1)} in ${r.cpu.wallS.toFixed(1)} s (load ${r.loadAtStart.split(' ')[0]})`).join('; ')}`);
  }
  console.log(`delete → gone: median ${sec(median(deletes))} s (${deletes.map(sec).join(', ')})`);

  for (const n of ETCD_SIZES) {
    const m = memory.get(n);
    if (!m) continue;
    printMemory(`### memory: ${n} etcd + ${CONTROL_PLANES} cp + ${WORKERS} workers, right after Ready (MiB)`, m.ready);
    printMemory(`### memory: ${n} etcd + ${CONTROL_PLANES} cp + ${WORKERS} workers, after ${IDLE_S} s idle (MiB)`, m.idle, m.cpu);
  }
}

async function fitPhase(): Promise<void> {
  console.log(`\n## how many default clusters fit (3 etcd, 1 cp, 2 workers), up to ${MAX_CLUSTERS}, stop when MemAvailable < ${gib(MIN_AVAILABLE)} GiB`);
  const before = memAvailable();
  console.log(`MemTotal ${gib(memTotal())} GiB, MemAvailable before the first cluster ${gib(before)} GiB, load ${load()}`);
  const names: string[] = [];
  const rows: string[][] = [];
  let last: { rss: number; anon: number; pss: number; drop: number; cpu: CpuWindow; k: number } | undefined;
  for (let k = 1; k <= MAX_CLUSTERS; k++) {
    if (memAvailable() < MIN_AVAILABLE) {
      console.log(`stopping: MemAvailable ${gib(memAvailable())} GiB < ${gib(MIN_AVAILABLE)} GiB`);
      break;
    }
    const name = `fit-${k}`;
    const r = await createAndMeasure(name, 3);
    names.push(name);
    printRun(r);
    const s0 = await snapshot(names);
    await sleep(SETTLE_S * 1000);
    const s1 = await snapshot(names);
    const avail = memAvailable();
    const cpu = cpuBetween(s0, s1);
    const rss = sum(s1.procs, (p) => p.rss);
    const anon = sum(s1.procs, (p) => p.anon);
    const pss = sum(s1.procs, (p) => p.pss);
    last = { rss, anon, pss, drop: before - avail, cpu, k };
    rows.push([
      String(k),
      sec(r.readyMs),
      sec(r.nodesMs),
      sec(r.readyzMs),
      gib(rss),
      gib(anon),
      gib(avail),
      gib(before - avail),
      pct(cpu.clusters),
      pct(cpu.others),
      load().split(' ')[0]!,
      mib(process.memoryUsage().rss),
    ]);
    console.log(
      `  after ${k}: RSS ${gib(rss)} GiB, anon ${gib(anon)} GiB, PSS ${gib(pss)} GiB, MemAvailable ${gib(avail)} GiB; ` +
        `CPU over ${SETTLE_S} s: clusters ${pct(cpu.clusters)}, Marina ${pct(cpu.marina)}, others ${pct(cpu.others)}; load ${load()}`,
    );
    if (avail < MIN_AVAILABLE) {
      console.log(`stopping: MemAvailable ${gib(avail)} GiB < ${gib(MIN_AVAILABLE)} GiB`);
      break;
    }
  }
  console.log(`\n### default clusters side by side (each row measured ${SETTLE_S} s after that cluster was Ready; CPU % of one core over those ${SETTLE_S} s)`);
  table(
    ['clusters', '(a) Ready s', '(b) Nodes s', '(c) readyz s', 'RSS all GiB', 'anon all GiB', 'MemAvailable GiB', 'MemAvail drop GiB', 'CPU clusters', 'CPU others', 'load 1m', 'Marina RSS MiB'],
    rows,
  );
  if (last) {
    const k = last.k;
    const total = 24 * GIB;
    const per = { rss: last.rss / k, anon: last.anon / k, pss: last.pss / k, drop: last.drop / k, cores: last.cpu.clusters / k };
    console.log(
      `\nper default cluster with ${k} running: RSS ${mib(per.rss)} MiB, anon ${mib(per.anon)} MiB, PSS ${mib(per.pss)} MiB, ` +
        `MemAvailable drop ${mib(per.drop)} MiB (machine-wide: includes other sessions), CPU ${pct(per.cores)} of a core`,
    );
    console.log(
      `EXTRAPOLATION (measured up to ${k} clusters only): 24 GiB / per-cluster = ${Math.floor(total / per.rss)} by RSS (shared binary pages counted in every process), ` +
        `${Math.floor(total / per.anon)} by anonymous memory (binary pages shared), ${Math.floor(total / per.pss)} by PSS; ` +
        `CPU: ${pct(per.cores)} per cluster would fill 2 cores at ~${Math.floor(2 / per.cores)} clusters`,
    );
  }
  const d = await deleteClusters(names, true);
  console.log(`deleted all ${names.length} clusters together: ${sec(d)} s, nothing left`);
}

// ---------------------------------------------------------------------------------------------
// cleanup

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    try {
      if (url && liveClusters.size > 0) {
        console.log(`cleanup: deleting ${[...liveClusters].join(', ')}`);
        await deleteClusters([...liveClusters], true).catch((err) => console.error(`cleanup delete failed: ${String(err)}`));
      }
      await closeAll?.().catch((err) => console.error(`close failed: ${String(err)}`));
    } finally {
      const killed = killRecordedGroups(root, dir, startedGroups);
      if (killed.length) {
        console.error(`cleanup: SIGKILLed leftover process groups ${killed.join(', ')}`);
        await sleep(500);
      }
      reportLeftovers(root, dir, startedGroups, '\n');
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
  console.log(`# Marina local-cluster benchmark — ${new Date().toISOString()}`);
  console.log(`Kubernetes ${toolchain.version} (etcd ${toolchain.etcdVersion}), node ${process.version}, addresses from ${ADDRESS_BASE}/16, data in ${dir}`);
  console.log(`uptime: ${readFileSync('/proc/uptime', 'utf8').split(' ')[0]} s; load average at start: ${load()}; MemAvailable ${gib(memAvailable())} / ${gib(memTotal())} GiB`);
  await startMarina();
  console.log(`Marina (API + controllers, default timing) on ${url}`);
  if (!values['skip-timing']) await timingPhase();
  if (!values['skip-fit']) await fitPhase();
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
