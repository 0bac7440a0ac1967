// The Kubernetes-backed store next to SQLite in one run, and the failover time of two replicas.
//
//   npx tsc -p tsconfig.json && node dist/bench/store-ha.js [--objects 500] [--failovers 3]
//
// Starts etcd + kube-apiserver from the toolchain (the test fixture: etcd with --unsafe-no-fsync,
// as SQLite runs with synchronous=NORMAL) and measures, per backend, the latency (p50/p99) of
// sequential create/get/update, the throughput of 16 concurrent creates, list latency, and watch
// delivery latency (write call → event at a watcher; for Kubernetes also at a second store
// instance, i.e. another replica), and what sharing a cluster's newest health report costs (write
// it as the series' newest record; read it, as a follower answering GET .../health does). Then runs two `marina server --store kubernetes` processes and
// measures how long after SIGKILL (and after SIGTERM) of the leader the survivor holds the Lease.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { API_VERSION, type Resource } from '../src/api/meta.js';
import { KubeClient, Resources } from '../src/kube/client.js';
import { openKubernetesStore } from '../src/store/kubernetes/store.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { HealthReport } from '../src/health/types.js';
import type { SeriesStore, Store, WatchEvent } from '../src/store/types.js';
import { findToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { freePort, startServerProcess, type ServerProcess } from '../test/support/marina.js';
import { startControlPlane, type ControlPlane } from '../test/toolchain/controlplane.js';
import { load, median, table } from './support.js';

const { values: args } = parseArgs({
  options: { objects: { type: 'string', default: '500' }, failovers: { type: 'string', default: '3' } },
});
const N = Number(args.objects);
const FAILOVERS = Number(args.failovers);
const KEY = Buffer.alloc(32, 9);
const quiet = { error: () => undefined, warn: () => undefined };

/** A schema-valid Cluster of about 1 KB. */
function cluster(i: number, replicas = 3): Resource {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: `c-${String(i).padStart(6, '0')}`, project: `p${i % 10}`, labels: { tier: i % 2 ? 'web' : 'db', env: 'prod' }, annotations: { note: 'x'.repeat(300) } },
    spec: {
      provider: 'local',
      kubernetesVersion: 'v1.36.3',
      network: { podCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/16' },
      nodePools: [
        { name: 'etcd', roles: ['etcd'], replicas: 3 },
        { name: 'controlplane', roles: ['controlplane'], replicas: 1 },
        { name: 'workers', roles: ['worker'], replicas, labels: { role: 'worker' }, taints: [{ key: 'dedicated', value: 'x', effect: 'NoSchedule' }] },
      ],
    },
  };
}

/** The report of a 7-machine cluster (3 etcd, 1 control plane, 3 workers) on a metrics pass. */
function healthReport(at: number): HealthReport {
  const machines = ['etcd-0', 'etcd-1', 'etcd-2', 'cp-0', 'w-0', 'w-1', 'w-2'];
  const agentProcesses: Record<string, string[]> = { etcd: ['etcd'], cp: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'], w: ['kubelet'] };
  return {
    project: 'p0',
    cluster: 'c-000000',
    at: new Date(at).toISOString(),
    durationMs: 48,
    healthy: true,
    checks: [
      { component: 'endpoint', ok: true, message: 'ok', latencyMs: 4 },
      { component: 'apiserver', machine: 'cp-0', ok: true, message: 'ok', latencyMs: 3 },
      ...machines.slice(0, 3).map((m) => ({ component: 'etcd' as const, machine: m, ok: true, message: 'ok', latencyMs: 2 })),
      ...machines.flatMap((m) => [
        { component: 'agent' as const, machine: m, ok: true, message: 'ok', latencyMs: 2, reachable: true },
        ...agentProcesses[m.split('-')[0]!]!.map((p) => ({ component: 'agent' as const, machine: m, ok: true, message: `${p} running` })),
      ]),
      { component: 'kube-controller-manager', ok: true, message: 'lease held by cp-0, renewed 1 s ago' },
      { component: 'kube-scheduler', ok: true, message: 'lease held by cp-0, renewed 1 s ago' },
    ],
    nodes: machines.map((m) => ({ name: m, machine: m, ready: 'True' as const, problems: [] })),
    metrics: {
      at: new Date(at).toISOString(),
      etcd: machines.slice(0, 3).map((m, i) => ({ machine: m, hasLeader: true, isLeader: i === 0, leaderChangesTotal: 1, dbSizeBytes: 4_194_304, walFsyncP99Seconds: 0.004 })),
      apiservers: [{ machine: 'cp-0', requestP99Seconds: 0.05, inflightRequests: 3 }],
      machines: machines.map((m) => ({ machine: m, cpuCores: 0.12, rssBytes: 180_000_000, diskUsedBytes: 60_000_000 })),
    },
  };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (x: number): string => (x < 10 ? x.toFixed(2) : x.toFixed(1));
const lat = (xs: number[]): string => `${ms(pct(xs, 50))} / ${ms(pct(xs, 99))}`;
const perSec = (n: number, t: number): string => Math.round((n / t) * 1000).toLocaleString('en-US');

async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

/** Write call → event at each watcher, for `n` updates of one object, one write at a time. */
async function watchDelivery(writer: Store, watchers: Store[], n: number): Promise<number[][]> {
  let cur = await writer.create(cluster(999_999));
  const name = cur.metadata.name;
  let t0 = 0;
  const seen = watchers.map(() => [] as number[]);
  const subs = watchers.map((w, i) =>
    w.watch({ kind: 'Cluster', project: cur.metadata.project! }, (e: WatchEvent) => {
      if (e.object.metadata.name === name && e.type === 'MODIFIED') seen[i]!.push(performance.now() - t0);
    }),
  );
  for (let k = 0; k < n; k++) {
    t0 = performance.now();
    // SQLite delivers from within the update, the Kubernetes store once the API's watch reports it.
    cur = await writer.update({ ...cur, spec: cluster(999_999, 3 + ((k + 1) % 2)).spec });
    const deadline = Date.now() + 10_000;
    while (seen.some((s) => s.length < k + 1) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  }
  for (const s of subs) s.stop();
  return seen;
}

interface Row {
  name: string;
  sqlite: string;
  kubernetes: string;
}

async function measure(store: Store & { series: SeriesStore }, other: (Store & { series: SeriesStore }) | undefined, label: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const created: Resource[] = [];
  const createLat = await timeEach(N, async (i) => created.push(await store.create(cluster(i))));
  out.set('create, sequential: p50 / p99 ms', lat(createLat));
  out.set('create, sequential: per second', perSec(N, createLat.reduce((a, b) => a + b, 0)));
  const t0 = performance.now();
  let next = N;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 2 * N) await store.create(cluster(next++));
    }),
  );
  out.set('create, 16 concurrent: per second', perSec(N, performance.now() - t0));
  const getLat = await timeEach(N, (i) => store.get({ kind: 'Cluster', project: `p${i % 10}`, name: `c-${String(i).padStart(6, '0')}` }));
  out.set('get: p50 / p99 ms', lat(getLat));
  const updLat = await timeEach(N, async (i) => {
    created[i] = await store.update({ ...created[i]!, spec: cluster(i, 4).spec });
  });
  out.set('update: p50 / p99 ms', lat(updLat));
  out.set('update: per second', perSec(N, updLat.reduce((a, b) => a + b, 0)));
  const listLat = await timeEach(10, () => store.list('Cluster'));
  out.set(`list all ${(2 * N).toLocaleString('en-US')}: median ms`, ms(median(listLat)));
  const pageLat = await timeEach(10, () => store.list('Cluster', { project: 'p3', limit: 50 }));
  out.set('list one project, page of 50: median ms', ms(median(pageLat)));
  const watchers = other ? [store, other] : [store];
  const delivery = await watchDelivery(store, watchers, 200);
  out.set('watch delivery, same replica: p50 / p99 ms', lat(delivery[0]!));
  if (other) out.set('watch delivery, other replica: p50 / p99 ms', lat(delivery[1]!));
  const reportKb = (Buffer.byteLength(JSON.stringify(healthReport(0))) / 1024).toFixed(1);
  const shareLat = await timeEach(200, (i) => store.series.setLatest('health/p0/c-000000', new Date(i * 1000).toISOString(), healthReport(i * 1000)));
  out.set(`health report (${reportKb} KB): share it, p50 / p99 ms`, lat(shareLat));
  // Kubernetes: read through the second store instance, as a follower does.
  const readLat = await timeEach(200, () => (other ?? store).series.latest('health/p0/c-000000'));
  out.set('health report: read the shared one, p50 / p99 ms', lat(readLat));
  console.error(`# ${label} done (load ${load()})`);
  return out;
}

async function failover(cp: ControlPlane, dir: string): Promise<{ kill: number[]; term: number[]; renewToAcquire: number[] }> {
  const client = await KubeClient.fromKubeconfigFile(cp.kubeconfig);
  const env = { PATH: process.env.PATH, HOME: dir, MARINA_ENCRYPTION_KEY: KEY.toString('hex'), MARINA_LOG_LEVEL: 'warn' };
  type LeaseSpec = { holderIdentity?: string; renewTime?: string; acquireTime?: string };
  const lease = async (ns: string): Promise<LeaseSpec> =>
    (await client.get<{ metadata?: object; spec?: LeaseSpec }>(Resources.leases, 'marina-controllers', { namespace: ns }).catch(() => undefined))?.spec ?? {};
  const holder = async (ns: string): Promise<string> => (await lease(ns)).holderIdentity ?? '';
  const pidOf = (h: string) => Number(/_(\d+)_[0-9a-f]+$/.exec(h)?.[1]);
  const result = { kill: [] as number[], term: [] as number[], renewToAcquire: [] as number[] };
  const servers: ServerProcess[] = [];
  try {
    for (let run = 0; run < FAILOVERS * 2; run++) {
      const signal = run % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
      const ns = `failover-${run}`;
      const data = join(dir, `data-${run}`);
      mkdirSync(data, { recursive: true });
      const pair: ServerProcess[] = [];
      for (const name of ['a', 'b']) {
        const s = await startServerProcess({
          dataDir: data,
          listen: `127.0.0.1:${await freePort()}`,
          logFile: join(dir, `server-${run}-${name}.log`),
          env,
          args: ['--store', 'kubernetes', '--kubeconfig', cp.kubeconfig, '--namespace', ns],
        });
        pair.push(s);
        servers.push(s);
      }
      let leader: ServerProcess | undefined;
      while (!leader) {
        const h = await holder(ns);
        leader = pair.find((s) => s.pid === pidOf(h));
        await new Promise((r) => setTimeout(r, 50));
      }
      // Let the follower observe a few renewals, as in steady state.
      await new Promise((r) => setTimeout(r, 5000));
      const survivor = pair.find((s) => s !== leader)!;
      const before = await lease(ns);
      const t0 = performance.now();
      process.kill(-leader.pid, signal);
      let after: LeaseSpec = {};
      while (pidOf((after = await lease(ns)).holderIdentity ?? '') !== survivor.pid) await new Promise((r) => setTimeout(r, 20));
      const took = performance.now() - t0;
      (signal === 'SIGKILL' ? result.kill : result.term).push(took);
      // The renewal read just before the kill may be followed by one more; then this is shorter.
      if (signal === 'SIGKILL') result.renewToAcquire.push(Date.parse(after.acquireTime!) - Date.parse(before.renewTime!));
      console.error(`# failover ${run} (${signal}): ${Math.round(took)} ms (load ${load()})`);
      for (const s of pair) await s.stop(5000);
    }
  } finally {
    for (const s of servers) await s.stop(5000).catch(() => undefined);
    client.close();
  }
  return result;
}

async function main(): Promise<void> {
  const found = findToolchain(defaultVersion());
  if (!found.ok) throw new Error(`toolchain ${defaultVersion()} missing: ${found.missing.join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'marina-bench-store-ha-'));
  let cp: ControlPlane | undefined;
  try {
    console.error(`# load before: ${load()}`);
    const sqlite = openSqliteStore({ path: join(dir, 'bench.db'), encryptionKey: KEY, logger: quiet });
    const sq = await measure(sqlite, undefined, 'sqlite');
    await sqlite.close();

    cp = await startControlPlane({ toolchain: found.toolchain, dir: join(dir, 'mgmt'), components: ['etcd', 'kube-apiserver'] });
    const clientA = await KubeClient.fromKubeconfigFile(cp.kubeconfig);
    const clientB = await KubeClient.fromKubeconfigFile(cp.kubeconfig);
    const a = await openKubernetesStore({ client: clientA, namespace: 'bench', encryptionKey: KEY, logger: quiet });
    const b = await openKubernetesStore({ client: clientB, namespace: 'bench', encryptionKey: KEY, logger: quiet });
    const kube = await measure(a, b, 'kubernetes');
    await a.close();
    await b.close();
    clientA.close();
    clientB.close();

    const rows: Row[] = [...kube.keys()].map((name) => ({ name, sqlite: sq.get(name) ?? '—', kubernetes: kube.get(name)! }));
    console.log(`\nStore, ${N.toLocaleString('en-US')} objects (+${N.toLocaleString('en-US')} concurrent), Cluster of ~1 KB:\n`);
    table(['operation', 'SQLite (file, WAL)', 'Kubernetes API (etcd + kube-apiserver)'], rows.map((r) => [r.name, r.sqlite, r.kubernetes]));

    const f = await failover(cp, dir);
    console.log('\nFailover: from signal to the survivor holding the Lease (lease 15 s, renew deadline 10 s, retry 2 s):\n');
    const dur = (x: number) => (x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(1)} s`);
    const row = (label: string, xs: number[]) => [label, String(xs.length), dur(median(xs)), dur(Math.min(...xs)), dur(Math.max(...xs))];
    table(
      ['', 'runs', 'median', 'min', 'max'],
      [
        row('SIGKILL: signal → survivor holds the Lease', f.kill),
        row('SIGKILL: last renewal seen → survivor acquired (Lease times)', f.renewToAcquire),
        row('SIGTERM (Lease released): signal → survivor holds it', f.term),
      ],
    );
    console.log(`\n# load after: ${load()}`);
  } finally {
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
