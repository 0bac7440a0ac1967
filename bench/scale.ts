// Scale benchmark (issue 15): one real `marina server --sim` process, N clusters of the sim
// provider created through the REST API (default 1,000 clusters of 3 etcd / 1 control plane / 6
// workers = 10,000 machines), then:
//   1. time until every cluster is Ready;
//   2. steady state with health passes at their default interval: Marina's RSS and CPU;
//   3. API latency at that size: GET of one object, a list page of 500, watch fan-out;
//   4. 1 % of the machines killed at once (one per cluster, across clusters): time from the kill to
//      detection and to every replacement Ready, with every pool's storm guard checked;
//   5. SIGKILL of Marina and a restart on the same data: time until the API answers, the
//      controllers have reconciled everything once, every cluster has a health report again —
//      and that nothing was replaced because of the restart.
//   npx tsc -p tsconfig.json && node dist/bench/scale.js [--clusters 1000] [--json out.json]
// See docs/benchmarks.md, "Scale", for the figures. `runScaleBench` is also what the smoke test
// (test/bench/scale.test.ts) runs at a small size.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { maxInFlight, resolveHealing } from '../src/api/healing-policy.js';
import type { Cluster, Machine, NodePool } from '../src/api/kinds.js';
import { API_VERSION } from '../src/api/meta.js';
import { MarinaClient, type SimFault } from '../src/client/index.js';
import { parsePrometheusText } from '../src/health/prom.js';
import { startServerProcess, type ServerProcess } from '../test/support/marina.js';

export interface ScaleOptions {
  clusters: number;
  projects: number;
  etcd: number;
  workers: number;
  /** Creates in flight. */
  concurrency: number;
  /** Steady-state window (CPU, RSS), after the clusters settled. */
  steadySeconds: number;
  /** Share of machines killed at once. */
  failPercent: number;
  /** Watchers of the fan-out measurement. */
  watchers: number;
  /** Requests of the GET latency measurement. */
  gets: number;
  /** Sim start-up times (`marina server --sim-timing`); default: the server's defaults. */
  simTiming?: string;
  /** Write CPU profiles of the first server here (it is then stopped with SIGTERM, not SIGKILL, so the profile is written). */
  cpuProfDir?: string;
  /** More flags for the first server's node, e.g. --heapsnapshot-signal=SIGUSR2. */
  serverNodeArgs?: string[];
  /** Give up waiting for a phase after this long. */
  phaseTimeoutMs: number;
  /** After the restart: how long to watch for churn (replacements, clusters not Ready). */
  afterRestartMs: number;
  log: (line: string) => void;
}

export const DEFAULT_SCALE_OPTIONS: ScaleOptions = {
  clusters: 1000,
  projects: 10,
  etcd: 3,
  workers: 6,
  concurrency: 16,
  steadySeconds: 60,
  failPercent: 1,
  watchers: 100,
  gets: 2000,
  phaseTimeoutMs: 60 * 60_000,
  afterRestartMs: 15_000,
  log: (line) => console.log(line),
};

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ScaleResult {
  clusters: number;
  machines: number;
  cores: number;
  /** 1-minute load average at the start of each phase. */
  load: Record<string, number>;
  create: { seconds: number; postLatencyMs: Percentiles; allReadySeconds: number; readyAfterCreateSeconds: Percentiles };
  steady: {
    seconds: number;
    rssMiB: { min: number; max: number; end: number };
    cpuCores: number;
    healthPassesPerSecond: number;
    reconcilesPerSecond: number;
    healthPassMs?: number;
    /** Event-loop delay over the window (prom-client's monitor): p99 and max. */
    eventLoopMs: { p99: number; max: number };
  };
  api: {
    getMs: Percentiles;
    listPageMs: Percentiles;
    listPages: number;
    /** Event-loop delay while the GETs and lists ran. */
    eventLoopMs: { p99: number; max: number };
    watch: { watchers: number; events: number; allDeliveredMs: number; deliveriesPerSecond: number };
  };
  heal: {
    killed: number;
    detectSeconds: Percentiles;
    detectToReadySeconds: Percentiles;
    /** The same per pool template (etcd, control plane, workers): their replacements take different paths. */
    detectToReadyByPool: Record<string, Percentiles>;
    killToAllReadySeconds: number;
    /** Largest number of machines one pool had in flight at once, next to its guard. */
    guard: { pools: number; violations: string[]; maxInFlightSeen: number };
    remediations: number;
  };
  restart: { apiSeconds: number; resyncedSeconds: number; resumedSeconds: number; machinesBefore: number; machinesAfter: number; remediationsAfter: number; notReadyAfter: number };
}

const pct = (xs: number[]): Percentiles => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.at(-1) ?? NaN };
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const load1 = () => round(loadavg()[0]!, 2);

/** RSS (bytes) and CPU seconds (user + system) of a process. */
function procUsage(pid: number): { rss: number; cpu: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rss, cpu: (Number(f[11]) + Number(f[12])) / 100 };
}

/** The sum of a metric's samples (optionally only those whose labels match). */
async function metric(server: string, name: string, where: Record<string, string> = {}): Promise<number> {
  return (await metrics(server, [[name, where]]))[0]!;
}

/** Several metrics from one scrape (the event-loop figures reset with every scrape). */
async function metrics(server: string, wanted: [string, Record<string, string>][]): Promise<number[]> {
  const res = await fetch(`${server}/metrics`);
  const fams = parsePrometheusText(await res.text());
  return wanted.map(([name, where]) => sumOf(fams, name, where));
}

function sumOf(fams: ReturnType<typeof parsePrometheusText>, name: string, where: Record<string, string>): number {
  const fam = fams.get(name.replace(/_(count|sum|total)$/, '')) ?? fams.get(name);
  let sum = 0;
  for (const s of fam?.samples ?? []) {
    if (s.name !== name) continue;
    if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** The event-loop delay since the previous scrape, p99 and max, in ms. */
async function eventLoop(server: string): Promise<{ p99: number; max: number }> {
  const [p99, max] = await metrics(server, [
    ['nodejs_eventloop_lag_p99_seconds', {}],
    ['nodejs_eventloop_lag_max_seconds', {}],
  ]);
  return { p99: round(p99! * 1000), max: round(max! * 1000) };
}

async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

function clusterSpec(name: string, project: string, o: ScaleOptions): Cluster {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name, project },
    spec: {
      provider: 'sim',
      nodePools: [
        { name: 'etcd', roles: ['etcd'], replicas: o.etcd },
        { name: 'cp', roles: ['controlplane'], replicas: 1 },
        { name: 'workers', roles: ['worker'], replicas: o.workers },
      ],
    },
  };
}

const isHealthyMachine = (m: Machine) =>
  m.status?.phase === 'Running' && m.status.nodeReady !== false && m.status.conditions?.find((c) => c.type === 'Healthy')?.status === 'True';

/** Polls `probe` until it answers something, or throws after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 250): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function runScaleBench(opts: Partial<ScaleOptions> = {}): Promise<ScaleResult> {
  const o: ScaleOptions = { ...DEFAULT_SCALE_OPTIONS, ...opts };
  const log = o.log;
  const tmp = mkdtempSync(join(tmpdir(), 'marina-bench-scale-'));
  const dataDir = join(tmp, 'data');
  const env = {
    PATH: process.env.PATH,
    HOME: tmp,
    MARINA_LOG_LEVEL: process.env.MARINA_LOG_LEVEL ?? 'info',
  };
  const serverArgs = ['--sim', ...(o.simTiming ? ['--sim-timing', o.simTiming] : [])];
  const start = (logName: string, nodeArgs: string[] = []) =>
    startServerProcess({ dataDir, listen: '127.0.0.1:0', logFile: join(tmp, logName), env, args: serverArgs, nodeArgs, timeoutMs: 120_000 });
  let server: ServerProcess | undefined;
  const aborter = new AbortController();
  const machinesPerCluster = o.etcd + 1 + o.workers;
  const result = { clusters: o.clusters, machines: o.clusters * machinesPerCluster, cores: cpus().length, load: {} } as ScaleResult;
  try {
    server = await start('server.log', [...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : []), ...(o.serverNodeArgs ?? [])]);
    const token = server.bootstrapToken!;
    let client = new MarinaClient({ server: server.url, token, timeoutMs: 120_000 });
    log(`marina server --sim (pid ${server.pid}) at ${server.url}; ${o.clusters} clusters of ${o.etcd} etcd / 1 control plane / ${o.workers} workers in ${o.projects} projects`);
    const projects = Array.from({ length: o.projects }, (_, i) => `scale-${String(i).padStart(2, '0')}`);
    for (const p of projects) await client.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: p }, spec: { members: [{ user: 'admin', role: 'admin' }] } });
    const names = Array.from({ length: o.clusters }, (_, i) => ({ project: projects[i % o.projects]!, name: `c${String(i).padStart(4, '0')}` }));
    const key = (project: string | undefined, name: string) => `${project ?? ''}/${name}`;

    // ---------------------------------------------------------------------------- 1. create
    result.load.create = load1();
    const readyAt = new Map<string, number>();
    const createdAt = new Map<string, number>();
    const clusterWatch = (async () => {
      for await (const ev of client.watchResumable<Cluster>('Cluster', { initial: true, signal: aborter.signal })) {
        const k = key(ev.object.metadata.project, ev.object.metadata.name);
        if (ev.object.status?.phase === 'Ready' && !readyAt.has(k)) readyAt.set(k, performance.now());
      }
    })().catch(() => undefined);
    const t0 = performance.now();
    const postMs = await pool(names.length, o.concurrency, async (i) => {
      const { project, name } = names[i]!;
      const t = performance.now();
      await client.create(clusterSpec(name, project, o));
      createdAt.set(key(project, name), performance.now());
      if ((i + 1) % Math.max(1, Math.floor(o.clusters / 10)) === 0) log(`  created ${i + 1}/${o.clusters} (${round((performance.now() - t0) / 1000)} s), Ready so far ${readyAt.size}`);
      return performance.now() - t;
    });
    const createdSeconds = (performance.now() - t0) / 1000;
    await until(`all ${o.clusters} clusters Ready (${readyAt.size} so far)`, o.phaseTimeoutMs, async () => {
      if (readyAt.size >= o.clusters) return true;
      return undefined;
    }, 1000);
    const allReady = Math.max(...readyAt.values());
    result.create = {
      seconds: round(createdSeconds),
      postLatencyMs: pct(postMs),
      allReadySeconds: round((allReady - t0) / 1000),
      readyAfterCreateSeconds: pct(names.map((n) => (readyAt.get(key(n.project, n.name))! - createdAt.get(key(n.project, n.name))!) / 1000)),
    };
    log(`all ${o.clusters} clusters Ready ${result.create.allReadySeconds} s after the first create (creates took ${result.create.seconds} s)`);

    // ---------------------------------------------------------------------------- 2. steady state
    // Let the last machines settle and every cluster have its health passes, then measure.
    await until('every machine Running and healthy', o.phaseTimeoutMs, async () => {
      const running = await metric(server!.url, 'marina_machines', { phase: 'Running' });
      return running >= result.machines ? true : undefined;
    }, 1000);
    await sleep(Math.min(30_000, o.steadySeconds * 500));
    result.load.steady = load1();
    const u0 = procUsage(server.pid);
    const passes0 = await metric(server.url, 'marina_health_pass_duration_seconds_count');
    const passSum0 = await metric(server.url, 'marina_health_pass_duration_seconds_sum');
    const rec0 = await metric(server.url, 'marina_reconcile_total');
    const s0 = performance.now();
    const rss: number[] = [];
    while (performance.now() - s0 < o.steadySeconds * 1000) {
      rss.push(procUsage(server.pid).rss);
      await sleep(1000);
    }
    const window = (performance.now() - s0) / 1000;
    const u1 = procUsage(server.pid);
    // First scrape after the window: the event-loop figures cover the window (each scrape resets them).
    const eventLoopMs = await eventLoop(server.url);
    const passes = (await metric(server.url, 'marina_health_pass_duration_seconds_count')) - passes0;
    const passSum = (await metric(server.url, 'marina_health_pass_duration_seconds_sum')) - passSum0;
    const recs = (await metric(server.url, 'marina_reconcile_total')) - rec0;
    const MiB = 2 ** 20;
    result.steady = {
      seconds: round(window),
      rssMiB: { min: Math.round(Math.min(...rss) / MiB), max: Math.round(Math.max(...rss) / MiB), end: Math.round(u1.rss / MiB) },
      cpuCores: round((u1.cpu - u0.cpu) / window, 3),
      healthPassesPerSecond: round(passes / window),
      reconcilesPerSecond: round(recs / window),
      ...(passes > 0 ? { healthPassMs: round((passSum / passes) * 1000, 2) } : {}),
      eventLoopMs,
    };
    log(`steady state over ${result.steady.seconds} s: RSS ${result.steady.rssMiB.min}–${result.steady.rssMiB.max} MiB, CPU ${result.steady.cpuCores} cores, ${result.steady.healthPassesPerSecond} health passes/s, ${result.steady.reconcilesPerSecond} reconciles/s, event loop delay p99 ${eventLoopMs.p99} ms max ${eventLoopMs.max} ms`);

    // ---------------------------------------------------------------------------- 3. API latency
    result.load.api = load1();
    await metric(server.url, 'nodejs_eventloop_lag_max_seconds'); // resets the event-loop figures
    const getMs = await pool(o.gets, 4, async (i) => {
      const n = names[(i * 7919) % names.length]!;
      const t = performance.now();
      await client.get('Cluster', n.name, n.project);
      return performance.now() - t;
    });
    const pageMs: number[] = [];
    let pages = 0;
    for (let round_ = 0; round_ < 3; round_++) {
      let cont: string | undefined;
      do {
        const t = performance.now();
        const page = await client.list('Machine', { limit: 500, ...(cont ? { continue: cont } : {}) });
        pageMs.push(performance.now() - t);
        pages++;
        cont = page.metadata.continue;
      } while (cont);
    }
    const apiLoop = await eventLoop(server.url);
    const watchEvents = Math.min(100, o.clusters);
    const got = Array.from({ length: o.watchers }, () => 0);
    const fanout = new AbortController();
    const rv = (await client.list('Cluster', { limit: 1 })).metadata.resourceVersion;
    let doneAt = 0;
    const allGot = new Promise<void>((resolve) => {
      for (let w = 0; w < o.watchers; w++) {
        void (async () => {
          for await (const ev of client.watch<Cluster>('Cluster', { resourceVersion: rv, signal: fanout.signal })) {
            if (ev.object.metadata.annotations?.['bench/fanout'] && ++got[w]! === watchEvents && got.every((g) => g >= watchEvents)) {
              doneAt = performance.now();
              resolve();
            }
          }
        })().catch(() => undefined);
      }
    });
    await sleep(1000); // every watch stream open
    const w0 = performance.now();
    await pool(watchEvents, 8, async (i) => {
      const n = names[i]!;
      await client.patch('Cluster', n.name, n.project, { metadata: { annotations: { 'bench/fanout': String(i) } } });
    });
    await Promise.race([allGot, sleep(120_000)]);
    fanout.abort();
    result.api = {
      getMs: pct(getMs),
      listPageMs: pct(pageMs),
      listPages: pages,
      eventLoopMs: apiLoop,
      watch: {
        watchers: o.watchers,
        events: watchEvents,
        allDeliveredMs: doneAt ? Math.round(doneAt - w0) : NaN,
        deliveriesPerSecond: doneAt ? Math.round((o.watchers * watchEvents) / ((doneAt - w0) / 1000)) : NaN,
      },
    };
    log(`API: get p50 ${round(result.api.getMs.p50, 2)} ms p99 ${round(result.api.getMs.p99, 2)} ms; list page of 500 p50 ${round(result.api.listPageMs.p50)} ms p99 ${round(result.api.listPageMs.p99)} ms; ${o.watchers} watchers had all ${watchEvents} events after ${result.api.watch.allDeliveredMs} ms`);

    // ---------------------------------------------------------------------------- 4. heal 1 %
    result.load.heal = load1();
    const machineList = (await client.listAll<Machine>('Machine')).items;
    const pools = (await client.listAll<NodePool>('NodePool')).items;
    const budgetOf = new Map(pools.map((p) => [key(p.metadata.project, p.metadata.name), maxInFlight(resolveHealing(p.spec.healing), p.spec.replicas, p.spec.roles)]));
    const kills = Math.min(o.clusters, Math.max(1, Math.round((result.machines * o.failPercent) / 100)));
    // One machine per cluster, of clusters spread evenly; the role in proportion to the machines.
    const stride = Math.max(1, Math.floor(o.clusters / kills));
    const victims: Machine[] = [];
    for (let i = 0; i < kills && i * stride < names.length; i++) {
      const n = names[i * stride]!;
      const ms = machineList.filter((m) => m.metadata.project === n.project && m.spec.cluster === n.name);
      victims.push(ms[(i * 31) % ms.length]!);
    }
    const victimKeys = new Set(victims.map((m) => key(m.metadata.project, m.metadata.name)));
    const poolOf = (m: Machine) => key(m.metadata.project, m.metadata.labels?.['marina.dev/nodepool'] ?? '');
    const detectedAt = new Map<string, number>();
    /** Replacements: machines added after the kill, with their pool and when they were first healthy. */
    const replacement = new Map<string, { pool: string; healthyAt?: number }>();
    /** Per pool: machines being deleted now. */
    const deleting = new Map<string, Set<string>>();
    const guard = { violations: [] as string[], maxInFlightSeen: 0 };
    let killedAt = 0;
    const watchFrom = (await client.list('Machine', { limit: 1 })).metadata.resourceVersion;
    const machineWatch = (async () => {
      for await (const ev of client.watch<Machine>('Machine', { resourceVersion: watchFrom, signal: aborter.signal })) {
        const m = ev.object;
        const k = key(m.metadata.project, m.metadata.name);
        const now = performance.now();
        const p = poolOf(m);
        const failed = m.status?.phase === 'Failed' || m.status?.conditions?.some((c) => c.type === 'Healthy' && c.status === 'False');
        if (victimKeys.has(k) && !detectedAt.has(k) && failed) detectedAt.set(k, now);
        if (ev.type === 'ADDED' && killedAt > 0) replacement.set(k, { pool: p });
        const r = replacement.get(k);
        if (r && r.healthyAt === undefined && isHealthyMachine(m)) r.healthyAt = now;
        const del = deleting.get(p) ?? deleting.set(p, new Set()).get(p)!;
        if (ev.type === 'DELETED') del.delete(k);
        else if (m.metadata.deletionTimestamp) del.add(k);
        // One remediation is a machine being removed and its replacement booting: the pool has as
        // many in flight as the larger of the two, and the guard bounds that.
        const booting = [...replacement.values()].filter((x) => x.pool === p && x.healthyAt === undefined).length;
        const n = Math.max(del.size, booting);
        guard.maxInFlightSeen = Math.max(guard.maxInFlightSeen, n);
        const budget = budgetOf.get(p) ?? 1;
        if (n > budget) guard.violations.push(`${p}: ${n} in flight, guard ${budget}`);
      }
    })().catch(() => undefined);
    await sleep(500);
    const remediations0 = await metric(server.url, 'marina_remediations_total');
    killedAt = performance.now();
    await client.injectSimFaults(victims.map((m): SimFault => ({ type: 'KillMachine', project: m.metadata.project!, cluster: m.spec.cluster, machine: m.metadata.name })));
    log(`killed ${victims.length} machines (${[...new Set(victims.map((v) => v.spec.pool))].map((p) => `${victims.filter((v) => v.spec.pool === p).length} ${p}`).join(', ')})`);
    const healedAt = await until('every killed machine replaced and every pool full and healthy', o.phaseTimeoutMs, async () => {
      const replaced = [...replacement.values()];
      if (detectedAt.size < victims.length || replaced.length < victims.length || replaced.some((r) => r.healthyAt === undefined)) return undefined;
      const ms = (await client.listAll<Machine>('Machine')).items;
      if (ms.length !== result.machines || !ms.every(isHealthyMachine)) return undefined;
      return Math.max(...replaced.map((r) => r.healthyAt!));
    }, 500);
    const detect = victims.map((m) => (detectedAt.get(key(m.metadata.project, m.metadata.name))! - killedAt) / 1000);
    // Each victim's pool has one replacement (one victim per cluster): its Ready against the victim's detection.
    const repByPool = new Map<string, number>();
    for (const r of replacement.values()) if (r.healthyAt !== undefined) repByPool.set(r.pool, Math.max(repByPool.get(r.pool) ?? 0, r.healthyAt));
    const detectToReady = victims.map((m) => (repByPool.get(poolOf(m))! - detectedAt.get(key(m.metadata.project, m.metadata.name))!) / 1000);
    result.heal = {
      killed: victims.length,
      detectSeconds: pct(detect),
      detectToReadySeconds: pct(detectToReady),
      detectToReadyByPool: Object.fromEntries(
        [...new Set(victims.map((v) => v.spec.pool))].map((pool) => [pool, pct(detectToReady.filter((_, i) => victims[i]!.spec.pool === pool))]),
      ),
      killToAllReadySeconds: round((healedAt - killedAt) / 1000),
      guard: { pools: pools.length, ...guard },
      remediations: (await metric(server.url, 'marina_remediations_total')) - remediations0,
    };
    log(`healing: detected p50 ${round(result.heal.detectSeconds.p50)} s max ${round(result.heal.detectSeconds.max)} s after the kill; replacement Ready p50 ${round(result.heal.detectToReadySeconds.p50)} s max ${round(result.heal.detectToReadySeconds.max)} s after detection; all Ready ${result.heal.killToAllReadySeconds} s after the kill; ${result.heal.remediations} remediations; guard violations: ${guard.violations.length}`);
    await Promise.race([machineWatch, sleep(0)]);

    // ---------------------------------------------------------------------------- 5. SIGKILL and restart
    result.load.restart = load1();
    const machinesBefore = (await client.listAll<Machine>('Machine')).items.length;
    aborter.abort();
    await Promise.race([clusterWatch, sleep(1000)]);
    const k0 = performance.now();
    if (o.cpuProfDir) {
      await server.stop(120_000); // a profile is written on a clean exit only
      log('(cpu profiles: server stopped with SIGTERM instead of SIGKILL)');
    } else {
      process.kill(-server.pid, 'SIGKILL');
      await until('the server process gone', 30_000, async () => (server!.running() ? undefined : true), 50);
    }
    const restarted = await start('server-restarted.log');
    server = restarted;
    client = new MarinaClient({ server: restarted.url, token, timeoutMs: 120_000 });
    await client.healthz();
    const apiSeconds = (performance.now() - k0) / 1000;
    const want = { cluster: o.clusters, nodepool: o.clusters * 3, machine: result.machines };
    const resynced = await until('every object reconciled once and the queues empty', o.phaseTimeoutMs, async () => {
      for (const [controller, n] of Object.entries(want)) {
        if ((await metric(restarted.url, 'marina_reconcile_total', { controller })) < n) return undefined;
        if ((await metric(restarted.url, 'marina_workqueue_depth', { controller })) > 0) return undefined;
      }
      return performance.now();
    }, 250);
    const resumed = await until('a health report for every cluster', o.phaseTimeoutMs, async () =>
      (await metric(restarted.url, 'marina_health_reports')) >= o.clusters ? performance.now() : undefined, 250);
    // A few passes later: the restart replaced nothing and every cluster is still Ready.
    await sleep(o.afterRestartMs);
    const after = (await client.listAll<Machine>('Machine')).items;
    const clustersAfter = (await client.listAll<Cluster>('Cluster')).items;
    result.restart = {
      apiSeconds: round(apiSeconds),
      resyncedSeconds: round((resynced - k0) / 1000),
      resumedSeconds: round((resumed - k0) / 1000),
      machinesBefore,
      machinesAfter: after.length,
      remediationsAfter: await metric(restarted.url, 'marina_remediations_total'),
      notReadyAfter: clustersAfter.filter((c) => c.status?.phase !== 'Ready').length,
    };
    log(`restart after SIGKILL: API ${result.restart.apiSeconds} s, resynced ${result.restart.resyncedSeconds} s, health resumed ${result.restart.resumedSeconds} s; machines ${machinesBefore} → ${after.length}, remediations ${result.restart.remediationsAfter}, clusters not Ready ${result.restart.notReadyAfter}`);
    return result;
  } finally {
    aborter.abort();
    await server?.stop(60_000);
    rmSync(tmp, { recursive: true, force: true });
  }
}

function printResult(r: ScaleResult): void {
  const ms = (p: Percentiles, d = 1) => `${round(p.p50, d)} / ${round(p.p99, d)} / ${round(p.max, d)}`;
  console.log('\n| figure | value |\n|---|---:|');
  const rows: [string, string][] = [
    ['clusters / machines', `${r.clusters} / ${r.machines}`],
    ['load average (1 min) at create / steady / api / heal / restart', Object.values(r.load).join(' / ')],
    ['creates (POST) took, s', String(r.create.seconds)],
    ['POST latency p50 / p99 / max, ms', ms(r.create.postLatencyMs)],
    ['first create → all Ready, s', String(r.create.allReadySeconds)],
    ['create → Ready per cluster p50 / p99 / max, s', ms(r.create.readyAfterCreateSeconds)],
    [`steady state (${r.steady.seconds} s): RSS min–max, MiB`, `${r.steady.rssMiB.min}–${r.steady.rssMiB.max}`],
    ['steady state: CPU, cores', String(r.steady.cpuCores)],
    ['steady state: health passes/s (mean pass, ms)', `${r.steady.healthPassesPerSecond} (${r.steady.healthPassMs ?? 'n/a'})`],
    ['steady state: reconciles/s', String(r.steady.reconcilesPerSecond)],
    ['steady state: event-loop delay p99 / max, ms', `${r.steady.eventLoopMs.p99} / ${r.steady.eventLoopMs.max}`],
    ['GET cluster p50 / p99 / max, ms', ms(r.api.getMs, 2)],
    [`list Machines, page of 500 (${r.api.listPages} pages) p50 / p99 / max, ms`, ms(r.api.listPageMs)],
    ['event-loop delay during the GETs and lists p99 / max, ms', `${r.api.eventLoopMs.p99} / ${r.api.eventLoopMs.max}`],
    [`watch fan-out: ${r.api.watch.watchers} watchers × ${r.api.watch.events} events, all delivered after, ms`, `${r.api.watch.allDeliveredMs} (${r.api.watch.deliveriesPerSecond}/s)`],
    [`machines killed at once`, String(r.heal.killed)],
    ['kill → detected p50 / p99 / max, s', ms(r.heal.detectSeconds)],
    ['detected → replacement Ready p50 / p99 / max, s', ms(r.heal.detectToReadySeconds)],
    ...Object.entries(r.heal.detectToReadyByPool).map(([pool, p]): [string, string] => [`  of pool ${pool} p50 / p99 / max, s`, ms(p)]),
    ['kill → every replacement Ready, s', String(r.heal.killToAllReadySeconds)],
    ['remediations / storm-guard violations / max in flight in one pool', `${r.heal.remediations} / ${r.heal.guard.violations.length} / ${r.heal.guard.maxInFlightSeen}`],
    ['SIGKILL → API answers / resynced / health resumed, s', `${r.restart.apiSeconds} / ${r.restart.resyncedSeconds} / ${r.restart.resumedSeconds}`],
    ['after the restart: machines before → after, remediations, clusters not Ready', `${r.restart.machinesBefore} → ${r.restart.machinesAfter}, ${r.restart.remediationsAfter}, ${r.restart.notReadyAfter}`],
  ];
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const num = (name: string, dflt: number) => (opt(name) !== undefined ? Number(opt(name)) : dflt);
  const d = DEFAULT_SCALE_OPTIONS;
  const simTiming = opt('sim-timing');
  const cpuProfDir = opt('cpu-prof-dir');
  const serverNodeArgs = opt('server-node-args');
  const r = await runScaleBench({
    clusters: num('clusters', d.clusters),
    projects: num('projects', d.projects),
    workers: num('workers', d.workers),
    etcd: num('etcd', d.etcd),
    concurrency: num('concurrency', d.concurrency),
    steadySeconds: num('steady-seconds', d.steadySeconds),
    failPercent: num('fail-percent', d.failPercent),
    watchers: num('watchers', d.watchers),
    gets: num('gets', d.gets),
    ...(simTiming ? { simTiming } : {}),
    ...(cpuProfDir ? { cpuProfDir } : {}),
    ...(serverNodeArgs ? { serverNodeArgs: serverNodeArgs.split(' ').filter(Boolean) } : {}),
  });
  printResult(r);
  const json = opt('json');
  if (json) writeFileSync(json, JSON.stringify(r, null, 2));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
