// Add-on benchmark (issue 13): time to apply the default set on a new cluster, drift-correction
// latency, and what the add-on controllers cost Marina with many clusters.
//
//   npx tsc -p tsconfig.json && node --expose-gc dist/bench/addons.js [--clusters 20]
//     [--drift-samples 5] [--drift-modes watch:30,resync:30,resync:5] [--window-seconds 120]
//     [--batch 2] [--min-available-gib 3] [--address-base 127.91.0.0]
//
// Marina runs in this process as `marina server` wires it (store, API, alerting, the control loops
// with the add-on starter and the shipped catalog), so the add-on starter can be stopped for the
// comparison window. Clusters have the smallest shape: one etcd+control-plane machine and
// one worker (virtual kubelet).
//   1. One cluster alone: create → Ready → every default add-on Applied → every one Healthy (from a
//      watch on the store: exact to the write).
//   2. Drift: `delete` of the coredns ConfigMap and a scale of the coredns Deployment to 5 through
//      the cluster's API, at a random point of the resync period, polled every 50 ms until put
//      back; for each mode given: `watch:<s>` with the managed objects watched (AddonPolicy
//      watchObjects true) and resync <s>, `resync:<s>` with the resync alone.
//   3. More clusters, `--batch` at a time, each until its add-ons are Healthy (apply times again).
//   4. With all clusters idle and the default resync (30 s): CPU and RSS of this process over a
//      window with the add-on controllers running, then over a window after stopping them. The
//      difference is what the controllers cost; the clusters' own CPU in both windows shows the
//      load the passes put on the apiservers.
//   5. CPU of one steady pass, measured alone: the controllers stopped, `--passes` passes over the
//      default set of one cluster one after the other (nothing to write), minus this process's
//      idle CPU rate over the same time.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { clockTicksPerSecond } from '../src/agent/procfs.js';
import type { Addon, AddonPolicy } from '../src/api/addons.js';
import type { Cluster } from '../src/api/kinds.js';
import { API_VERSION, type Resource } from '../src/api/meta.js';
import { startAlerting, type RunningAlerting } from '../src/alerts/index.js';
import { openAddons, type Addons } from '../src/addons/index.js';
import { fieldManagerOf } from '../src/addons/controller.js';
import { DefinitionIndex } from '../src/addons/definitions.js';
import { clusterContext, renderAddon } from '../src/addons/render.js';
import { syncAddon } from '../src/addons/sync.js';
import { DiscoveredObjects } from '../src/clusteraccess/objects.js';
import { KubeClient, parseKubeconfig, Resources, isNotFound } from '../src/kube/client.js';
import { LocalProvider } from '../src/providers/local/index.js';
import { buildApp } from '../src/server/app.js';
import { startControlLoops, type RunningControlLoops } from '../src/server/control-loops.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { resolveToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { apiRequest } from '../test/support/marina.js';
import { allStats, groupMembers, killRecordedGroups, load, median, MIB, readJson, reportLeftovers, sec, systemBusyTicks, table } from './support.js';

const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '20' },
    'drift-samples': { type: 'string', default: '5' },
    'drift-modes': { type: 'string', default: 'watch:30,resync:30,resync:5' },
    'skip-drift': { type: 'boolean', default: false },
    passes: { type: 'string', default: '200' },
    'window-seconds': { type: 'string', default: '120' },
    batch: { type: 'string', default: '2' },
    'min-available-gib': { type: 'string', default: '3' },
    'address-base': { type: 'string', default: '127.91.0.0' },
  },
});
const CLUSTERS = Number(values.clusters);
const DRIFT_SAMPLES = Number(values['drift-samples']);
const DRIFT_MODES = values['drift-modes']!
  .split(',')
  .filter(Boolean)
  .map((m) => {
    const [mode, seconds] = m.split(':');
    if ((mode !== 'watch' && mode !== 'resync') || !Number(seconds)) throw new Error(`--drift-modes: watch:<s> or resync:<s>, got ${JSON.stringify(m)}`);
    return { watch: mode === 'watch', resync: Number(seconds) };
  });
const WINDOW_S = Number(values['window-seconds']);
const PASSES = Number(values.passes);
const BATCH = Number(values.batch);
const MIN_AVAILABLE = Number(values['min-available-gib']) * 2 ** 30;
const ADDRESS_BASE = values['address-base']!;
const PROJECT = 'bench';
const CLK = clockTicksPerSecond();
const version = defaultVersion();
const toolchain = resolveToolchain(version);

const dir = mkdtempSync(join(tmpdir(), 'marina-bench-addons-'));
const root = join(dir, 'local');
const startedGroups = new Set<number>();
const liveClusters = new Set<string>();
let url = '';
let token = '';
let store: ReturnType<typeof openSqliteStore>;
let addons: Addons | undefined;
let loops: RunningControlLoops | undefined;
let metrics: Registry;
let closeAll: (() => Promise<void>) | undefined;
const api = (method: string, path: string, body?: unknown) => apiRequest(url, token, method, path, body);
const memAvailable = (): number => Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;

// ---------------------------------------------------------------------------------------------
// Marina in this process, wired as src/server/main.ts wires it

async function startMarina(): Promise<void> {
  store = openSqliteStore({ path: join(dir, 'marina.db'), encryptionKey: randomBytes(32) });
  await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: 'admin' }, spec: { platformAdmin: true } });
  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: PROJECT }, spec: { members: [{ user: 'admin', role: 'admin' }] } });
  token = (await store.tokens.issue({ user: 'admin' })).token;
  const log = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' });
  metrics = new Registry();
  const validation = { kubernetesVersions: [version] };
  addons = await openAddons({ store, logger: log, validation });
  const { app, close } = await buildApp({ store, tokens: store.tokens, audit: store.audit, validation: { ...validation, addons: addons.admission }, consoleDir: false });
  const provider = new LocalProvider({ root, addressBase: ADDRESS_BASE, binaries: () => toolchain.paths });
  let alerting: RunningAlerting | undefined;
  closeAll = async () => {
    await close();
    await loops?.stop();
    await addons?.stop();
    await alerting?.stop();
    await provider.close();
    await store.close();
  };
  alerting = await startAlerting({ store, metrics, logger: log });
  const providers = { get: () => provider, list: () => [provider] };
  loops = await startControlLoops({ store, providers, metrics, logger: log, defaultKubernetesVersion: version, alerts: alerting.manager, addons });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
}

async function setPolicy(change: Partial<AddonPolicy['spec']>): Promise<void> {
  const p = (await store.get({ kind: 'AddonPolicy', project: '', name: 'default' })) as AddonPolicy;
  await store.update({ ...p, spec: { ...p.spec, ...change } } as Resource);
}

// ---------------------------------------------------------------------------------------------
// milestones from a watch on the store

interface Track {
  t0: number;
  ready?: number;
  applied: Map<string, number>;
  healthy: Map<string, number>;
  done: () => void;
  finished: Promise<void>;
}
const tracks = new Map<string, Track>();
const DEFAULTS = 4;

function startWatches(): void {
  store.watch({ kind: 'Cluster', project: PROJECT }, (ev) => {
    const c = ev.object as Cluster;
    const t = tracks.get(c.metadata.name);
    if (t && t.ready === undefined && c.status?.phase === 'Ready') t.ready = performance.now();
  });
  store.watch({ kind: 'Addon', project: PROJECT }, (ev) => {
    const a = ev.object as Addon;
    const t = tracks.get(a.spec.cluster);
    if (!t) return;
    const ok = (type: string) => a.status?.conditions?.some((c) => c.type === type && c.status === 'True');
    if (ok('Applied') && !t.applied.has(a.spec.addon)) t.applied.set(a.spec.addon, performance.now());
    if (ok('Healthy') && !t.healthy.has(a.spec.addon)) t.healthy.set(a.spec.addon, performance.now());
    if (t.healthy.size === DEFAULTS) t.done();
  });
}

interface ApplyResult {
  name: string;
  ready: number;
  applied: number;
  healthy: number;
}

async function createCluster(name: string): Promise<ApplyResult> {
  let done!: () => void;
  const t: Track = { t0: performance.now(), applied: new Map(), healthy: new Map(), done: () => done(), finished: new Promise((r) => (done = r)) };
  tracks.set(name, t);
  liveClusters.add(name);
  const body = {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name },
    spec: { nodePools: [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 }, { name: 'workers', roles: ['worker'], replicas: 1 }] },
  };
  const r = await api('POST', `/projects/${PROJECT}/clusters`, body);
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
  await Promise.race([t.finished, sleep(300_000, undefined, { ref: false }).then(() => Promise.reject(new Error(`${name}: add-ons not healthy after 300 s`)))]);
  const last = (m: Map<string, number>) => Math.max(...m.values()) - t.t0;
  return { name, ready: t.ready! - t.t0, applied: last(t.applied), healthy: last(t.healthy) };
}

// ---------------------------------------------------------------------------------------------
// drift

async function kubeOf(name: string): Promise<KubeClient> {
  const r = await api('GET', `/projects/${PROJECT}/clusters/${name}/kubeconfig`);
  return new KubeClient(parseKubeconfig(r.text), { timeoutMs: 5000 });
}

async function until(probe: () => Promise<boolean>, timeoutMs = 180_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await probe()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error('not put back within 180 s');
    await sleep(50);
  }
}

async function driftSamples(kube: KubeClient, resync: number): Promise<{ deleted: number[]; scaled: number[] }> {
  const out = { deleted: [] as number[], scaled: [] as number[] };
  for (let i = 0; i < DRIFT_SAMPLES; i++) {
    await sleep(Math.random() * resync * 1000);
    await kube.delete(Resources.configMaps, 'coredns', { namespace: 'kube-system' });
    out.deleted.push(
      await until(async () => {
        try {
          await kube.get(Resources.configMaps, 'coredns', { namespace: 'kube-system' });
          return true;
        } catch (err) {
          if (isNotFound(err)) return false;
          throw err;
        }
      }),
    );
    await sleep(Math.random() * resync * 1000);
    await kube.patch(Resources.deployments, 'coredns', { spec: { replicas: 5 } }, { type: 'merge', namespace: 'kube-system' });
    out.scaled.push(await until(async () => (((await kube.get(Resources.deployments, 'coredns', { namespace: 'kube-system' })) as { spec?: { replicas?: number } }).spec?.replicas ?? 0) === 2));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// cost windows

function clusterTicks(): number {
  const stats = allStats();
  let ticks = 0;
  const walk = (d: string, depth: number, file: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      if (depth > 0) walk(join(d, e.name), depth - 1, file);
      else {
        const pid = readJson<{ pid?: number }>(join(d, e.name, file))?.pid;
        if (!pid) continue;
        startedGroups.add(pid);
        for (const p of groupMembers(pid, stats)) ticks += p.ticks;
      }
    }
  };
  walk(join(root, 'machines'), 2, 'machine.json');
  walk(join(root, 'endpoints'), 1, 'endpoint.json');
  return ticks;
}

async function passStats(): Promise<{ count: number; seconds: number }> {
  const text = await metrics.metrics();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return { count: num(/^marina_addon_pass_seconds_count (\S+)/m), seconds: num(/^marina_addon_pass_seconds_sum (\S+)/m) };
}

interface Window {
  marinaCore: number;
  clustersCore: number;
  othersCore: number;
  rssMiB: number;
  heapMiB: number;
  passes: number;
  passSeconds: number;
}

async function measureWindow(seconds: number): Promise<Window> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const cpu0 = process.cpuUsage();
  const cl0 = clusterTicks();
  const busy0 = systemBusyTicks();
  const p0 = await passStats();
  const rss: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await sleep(5000);
    rss.push(process.memoryUsage().rss);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const marina = (cpu.user + cpu.system) / 1e6 / wall;
  const clusters = (clusterTicks() - cl0) / CLK / wall;
  const busy = (systemBusyTicks() - busy0) / CLK / wall;
  const p1 = await passStats();
  gc?.();
  return {
    marinaCore: marina,
    clustersCore: clusters,
    othersCore: Math.max(0, busy - marina - clusters),
    rssMiB: median(rss) / MIB,
    heapMiB: process.memoryUsage().heapUsed / MIB,
    passes: p1.count - p0.count,
    passSeconds: p1.seconds - p0.seconds,
  };
}

// ---------------------------------------------------------------------------------------------

const pct = (x: number, digits = 1) => `${(x * 100).toFixed(digits)} %`;

async function driftPhase(): Promise<void> {
  console.log('\n## Drift correction (coredns ConfigMap deleted / Deployment scaled to 5, at a random point of the period)\n');
  const kube = await kubeOf('c01');
  const rows: string[][] = [];
  for (const mode of DRIFT_MODES) {
    await setPolicy({ resyncSeconds: mode.resync, watchObjects: mode.watch });
    // Let the policy reach the controllers and, with watches, a pass start them.
    await sleep(3000);
    const s = await driftSamples(kube, mode.resync);
    const all = [...s.deleted, ...s.scaled];
    const watching = loops?.addons?.watchedKinds('bench', 'c01').join(' ') || 'none';
    rows.push([mode.watch ? 'watch' : 'resync only', `${mode.resync} s`, String(all.length), sec(median(s.deleted)), sec(median(s.scaled)), sec(Math.max(...all)), s.deleted.map(sec).join(' '), s.scaled.map(sec).join(' '), watching]);
  }
  kube.close();
  table(['found by', 'resync', 'samples', 'delete: median (s)', 'scale: median (s)', 'max (s)', 'delete samples (s)', 'scale samples (s)', 'kinds watched on c01'], rows);
  await setPolicy({ resyncSeconds: 30, watchObjects: true });
}

async function clustersPhase(first: ApplyResult): Promise<void> {
  const results = [first];
  for (let i = 2; i <= CLUSTERS; i += BATCH) {
    if (memAvailable() < MIN_AVAILABLE) {
      console.log(`\nstopped at ${liveClusters.size} clusters: MemAvailable ${(memAvailable() / 2 ** 30).toFixed(1)} GiB < ${values['min-available-gib']} GiB`);
      break;
    }
    const names = Array.from({ length: Math.min(BATCH, CLUSTERS - i + 1) }, (_, k) => `c${String(i + k).padStart(2, '0')}`);
    results.push(...(await Promise.all(names.map(createCluster))));
  }
  console.log(`\n## The default set, every cluster (created ${BATCH} at a time next to the running ones)\n`);
  const col = (f: (r: ApplyResult) => number) => results.map(f);
  table(['figure (s)', 'median', 'min', 'max'], [
    ['create → Ready', sec(median(col((r) => r.ready))), sec(Math.min(...col((r) => r.ready))), sec(Math.max(...col((r) => r.ready)))],
    ['create → all 4 Applied', sec(median(col((r) => r.applied))), sec(Math.min(...col((r) => r.applied))), sec(Math.max(...col((r) => r.applied)))],
    ['Ready → all 4 Healthy', sec(median(col((r) => r.healthy - r.ready))), sec(Math.min(...col((r) => r.healthy - r.ready))), sec(Math.max(...col((r) => r.healthy - r.ready)))],
  ]);
}

async function costPhase(): Promise<void> {
  const n = liveClusters.size;
  console.log(`\n## Cost with ${n} clusters (${n * DEFAULTS} add-ons, resync 30 s), ${WINDOW_S} s windows, load average ${load()}\n`);
  await sleep(30_000);
  const on = await measureWindow(WINDOW_S);
  await loops!.addons!.stop();
  await sleep(10_000);
  const off = await measureWindow(WINDOW_S);
  table(['window', 'Marina CPU (of one core)', 'Marina RSS (MiB)', 'heap after GC (MiB)', 'clusters\' CPU', 'other sessions\' CPU', 'add-on passes', 'pass wall time (s)'], [
    ['add-on controllers running', pct(on.marinaCore), on.rssMiB.toFixed(0), on.heapMiB.toFixed(0), pct(on.clustersCore), pct(on.othersCore), String(on.passes), on.passSeconds.toFixed(1)],
    ['add-on controllers stopped', pct(off.marinaCore), off.rssMiB.toFixed(0), off.heapMiB.toFixed(0), pct(off.clustersCore), pct(off.othersCore), '0', '0'],
  ]);
  console.log(
    `\nadd-on controllers: ${pct(on.marinaCore - off.marinaCore)} of a core in Marina for ${n} clusters (${pct((on.marinaCore - off.marinaCore) / n, 2)} per cluster), ` +
      `${on.passes} passes in ${WINDOW_S} s (${(on.passSeconds / Math.max(1, on.passes) * 1000).toFixed(0)} ms wall each), RSS ${(on.rssMiB - off.rssMiB).toFixed(0)} MiB more while running; ` +
      `apiservers: ${pct(on.clustersCore - off.clustersCore)} of a core more across the clusters`,
  );
}

/** CPU of one steady pass over the default set of c01 (everything in place: reads, no writes). */
async function passPhase(): Promise<void> {
  const kubeconfig = (await api('GET', `/projects/${PROJECT}/clusters/c01/kubeconfig`)).text;
  const client = new KubeClient(parseKubeconfig(kubeconfig), { timeoutMs: 10_000 });
  const kube = new DiscoveredObjects(client);
  const cluster = (await store.get({ kind: 'Cluster', project: PROJECT, name: 'c01' })) as Cluster;
  const defs = await DefinitionIndex.start(store);
  const jobs = ((await store.list('Addon', { project: PROJECT })).items as Addon[])
    .filter((a) => a.spec.cluster === 'c01')
    .map((a) => {
      const def = defs.get(a.spec.addon, a.spec.version)!;
      const prepared = defs.prepare(def);
      if (typeof prepared === 'string') throw new Error(prepared);
      return { a, def, rendered: renderAddon(prepared, a.spec.values, clusterContext(cluster)) };
    });
  const pass = async (job: (typeof jobs)[number]) => {
    const r = await syncAddon({
      api: kube,
      fieldManager: fieldManagerOf(job.a.spec.addon),
      objects: job.rendered.objects,
      defaultNamespace: job.def.spec.namespace,
      inventory: job.a.status?.inventory ?? [],
      unchanged: true,
    });
    if (r.applied > 0) throw new Error(`${job.a.spec.addon}: a steady pass wrote ${r.applied} objects`);
    return job.rendered.objects.length;
  };
  for (const j of jobs) await pass(j); // warm-up: discovery, connections, JIT
  const idle0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(10_000);
  const idle = process.cpuUsage(idle0);
  const idleRate = (idle.user + idle.system) / (performance.now() - t0); // µs of CPU per ms
  const cpu0 = process.cpuUsage();
  const t1 = performance.now();
  let objects = 0;
  for (let i = 0; i < PASSES; i++) objects += await pass(jobs[i % jobs.length]!);
  const wall = performance.now() - t1;
  const used = process.cpuUsage(cpu0);
  const cpuMs = (used.user + used.system - idleRate * wall) / 1000;
  defs.stop();
  client.close();
  const perPass = cpuMs / PASSES;
  const perSecond30 = (liveClusters.size * DEFAULTS) / 30;
  console.log(`\n## One steady pass, alone (${PASSES} passes over c01's ${jobs.length} add-ons, ${objects} object reads)\n`);
  table(['figure', 'value'], [
    ['CPU per pass (Marina, minus its idle rate)', `${perPass.toFixed(2)} ms`],
    ['CPU per object read and compared', `${(cpuMs / objects).toFixed(3)} ms`],
    ['wall time per pass', `${(wall / PASSES).toFixed(1)} ms`],
    [`⇒ ${liveClusters.size} clusters × ${DEFAULTS} add-ons every 30 s`, `${(perSecond30 * perPass / 10).toFixed(2)} % of a core`],
    [`⇒ per cluster (${DEFAULTS} add-ons, 30 s)`, `${((DEFAULTS / 30) * perPass / 10).toFixed(3)} % of a core`],
  ]);
}

async function main(): Promise<void> {
  console.log(`# Marina add-on benchmark — ${new Date().toISOString()}`);
  console.log(`Kubernetes ${toolchain.version}, node ${process.version}, ${CLUSTERS} clusters of 1 etcd+control-plane machine + 1 worker, addresses from ${ADDRESS_BASE}/16`);
  console.log(`load average at start: ${load()}; MemAvailable ${(memAvailable() / 2 ** 30).toFixed(1)} GiB`);
  await startMarina();
  startWatches();

  // 1. one cluster alone
  const first = await createCluster('c01');
  console.log('\n## The default set on a new cluster (alone on Marina)\n');
  table(['cluster', 'create → Ready (s)', 'create → all 4 Applied (s)', 'create → all 4 Healthy (s)', 'Ready → all Healthy (s)'], [
    [first.name, sec(first.ready), sec(first.applied), sec(first.healthy), sec(first.healthy - first.ready)],
  ]);

  if (!values['skip-drift']) await driftPhase();
  await clustersPhase(first);
  await costPhase();
  await passPhase();
}


let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    try {
      if (url && liveClusters.size > 0) {
        for (const c of liveClusters) await api('DELETE', `/projects/${PROJECT}/clusters/${c}`).catch(() => undefined);
        const deadline = Date.now() + 300_000;
        for (const c of [...liveClusters]) {
          while ((await api('GET', `/projects/${PROJECT}/clusters/${c}`)).status !== 404 && Date.now() < deadline) await sleep(500);
          liveClusters.delete(c);
        }
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

try {
  await main();
} catch (err) {
  console.error(`FAILED: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
process.exit();
