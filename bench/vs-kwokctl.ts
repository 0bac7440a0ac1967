// Cost and speed of one local cluster, side by side with kwokctl (issue 15), in one run on the
// same Kubernetes v1.36.3 binaries:
//   kwokctl v0.8.0, binary runtime: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
//     and one kwok controller simulating 3 Nodes (`kwokctl create cluster` + `kwokctl scale node`);
//   Marina, local provider, the same shape: one machine with the etcd and controlplane roles and 3
//     workers (virtual kubelets), created through the REST API of a real `marina server` process;
//   Marina's default cluster (3 etcd, 1 control plane, 2 workers), Ready time only.
// Ready = `/readyz` ok through the cluster's kubeconfig and every Node Ready, polled every 100 ms
// with the same client for both (t0: just before `kwokctl create` / the create POST). Memory:
// after --idle-seconds, RSS / PSS / anonymous memory summed over the cluster's processes (kwokctl:
// every process naming its workdir; Marina: every process group of the cluster's machines and of
// its endpoint, with descendants) — neither kwokctl itself nor the Marina server counts.
//   npx tsc -p tsconfig.json && node dist/bench/vs-kwokctl.js [--runs 3] [--idle-seconds 20]
// kwokctl and kwok are built from their Go module into ~/.cache/marina/kwok/v0.8.0 (see
// docs/benchmarks.md); $MARINA_KWOK_DIR overrides where they are.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { API_VERSION } from '../src/api/meta.js';
import { MarinaClient } from '../src/client/index.js';
import { KubeClient, parseKubeconfig, Resources } from '../src/kube/client.js';
import type { Node } from '../src/kube/objects.js';
import { resolveToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { endpointRecords, killLeftovers, machineRecords, pickAddressBase, processesMentioning, serverEnv, startServerProcess, type ServerProcess } from '../test/support/marina.js';
import { allStats, groupMembers, load, median, memOf, MIB } from './support.js';

const execFileAsync = promisify(execFile);
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'idle-seconds': { type: 'string', default: '20' },
    'timeout-seconds': { type: 'string', default: '120' },
    'skip-default': { type: 'boolean', default: false },
    'skip-kwok': { type: 'boolean', default: false },
    /** Extra environment of the Marina server (and so of its machines), e.g. GOGC=50 for experiments. */
    'server-env': { type: 'string', default: '' },
  },
});
const RUNS = Number(values.runs);
const IDLE_MS = Number(values['idle-seconds']) * 1000;
const TIMEOUT_MS = Number(values['timeout-seconds']) * 1000;
const version = defaultVersion();
const toolchain = resolveToolchain(version);
const BIN = dirname(toolchain.paths.etcd);
const KWOK = process.env.MARINA_KWOK_DIR ?? join(homedir(), '.cache', 'marina', 'kwok', 'v0.8.0');

interface Memory {
  processes: number;
  rss: number;
  pss: number;
  anon: number;
  byName: Map<string, number>;
}

interface Round {
  readyMs: number;
  /** Marina: the Cluster object's phase Ready, for reference. */
  clusterReadyMs?: number;
  /** Marina: when machines of each pool were started (first / last) and Running (last), ms after t0. */
  milestones?: Record<string, { started: number[]; running: number[] }>;
  mem?: Memory;
}

function memoryOf(pids: number[]): Memory {
  const m: Memory = { processes: 0, rss: 0, pss: 0, anon: 0, byName: new Map() };
  for (const pid of new Set(pids)) {
    const mem = memOf(pid);
    if (!mem) continue;
    let comm = '?';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      /* gone */
    }
    m.processes++;
    m.rss += mem.rss;
    m.pss += mem.pss;
    m.anon += mem.anon;
    m.byName.set(comm, (m.byName.get(comm) ?? 0) + mem.rss);
  }
  return m;
}

/** Polls the cluster's API until /readyz is ok and `nodes` Nodes are Ready; the time since t0. */
async function waitReady(kubeconfig: () => Promise<string | undefined>, nodes: number, t0: number): Promise<number> {
  let client: KubeClient | undefined;
  try {
    for (;;) {
      if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`not Ready within ${TIMEOUT_MS / 1000} s`);
      if (!client) {
        const text = await kubeconfig().catch(() => undefined);
        if (text) client = new KubeClient(parseKubeconfig(text), { timeoutMs: 2000 });
      }
      if (client) {
        const ok = await client
          .request({ method: 'GET', path: '/readyz' })
          .then(async () => {
            const list = await client!.listAll<Node>(Resources.nodes);
            return list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length >= nodes;
          })
          .catch(() => false);
        if (ok) return performance.now() - t0;
      }
      await sleep(100);
    }
  } finally {
    client?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// kwokctl

async function kwokRound(i: number): Promise<Round> {
  const workdir = mkdtempSync(join(tmpdir(), `marina-bench-kwok-${i}-`));
  const env = { ...process.env, KWOK_WORKDIR: workdir, KWOK_KUBE_VERSION: version, PATH: `${BIN}:${process.env.PATH}` };
  const kwokctl = (...args: string[]) => execFileAsync(join(KWOK, 'kwokctl'), args, { env, cwd: workdir, timeout: TIMEOUT_MS });
  const name = 'bench';
  const kubeconfigPath = join(workdir, 'clusters', name, 'kubeconfig.yaml');
  try {
    const t0 = performance.now();
    const ready = waitReady(async () => (existsSync(kubeconfigPath) ? readFileSync(kubeconfigPath, 'utf8') : undefined), 3, t0);
    await kwokctl(
      'create', 'cluster', '--name', name, '--runtime', 'binary', '--wait', `${TIMEOUT_MS / 1000}s`,
      '--etcd-binary', toolchain.paths.etcd,
      '--kube-apiserver-binary', toolchain.paths['kube-apiserver']!,
      '--kube-controller-manager-binary', toolchain.paths['kube-controller-manager']!,
      '--kube-scheduler-binary', toolchain.paths['kube-scheduler']!,
      '--kwok-controller-binary', join(KWOK, 'kwok'),
    );
    await kwokctl('scale', 'node', '--replicas', '3', '--name', name);
    const readyMs = await ready;
    await sleep(IDLE_MS);
    const mem = memoryOf(processesMentioning(workdir));
    return { readyMs, mem };
  } finally {
    await kwokctl('delete', 'cluster', '--name', name).catch(() => undefined);
    for (const pid of processesMentioning(workdir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(workdir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Marina

const PROJECT = 'default';

function clusterProcesses(dataDir: string, cluster: string): number[] {
  const leaders = [
    ...machineRecords(dataDir).filter((r) => r.cluster === cluster && r.pid).map((r) => r.pid!),
    ...endpointRecords(dataDir).filter((r) => r.cluster === cluster && r.pid).map((r) => r.pid!),
  ];
  const stats = allStats();
  return leaders.flatMap((l) => groupMembers(l, stats).map((s) => s.pid));
}

async function marinaRound(client: MarinaClient, dataDir: string, name: string, pools: { name: string; roles: ('etcd' | 'controlplane' | 'worker')[]; replicas: number }[], nodes: number, measureMemory: boolean): Promise<Round> {
  const t0 = performance.now();
  let clusterReadyMs: number | undefined;
  // Machine milestones from a watch (exact to the status write that made them).
  const milestones: NonNullable<Round['milestones']> = {};
  const seen = new Map<string, { started?: number; running?: number }>();
  const stop = new AbortController();
  const rv = (await client.list('Machine', { project: PROJECT, limit: 1 })).metadata.resourceVersion;
  const machineWatch = (async () => {
    for await (const ev of client.watch<{ apiVersion: string; kind: string; metadata: { name: string }; spec: { cluster: string; pool: string }; status?: { phase?: string; conditions?: { type: string; status: string }[] } }>('Machine', { project: PROJECT, resourceVersion: rv, signal: stop.signal })) {
      const m = ev.object;
      if (m.spec.cluster !== name) continue;
      const at = performance.now() - t0;
      const st = seen.get(m.metadata.name) ?? seen.set(m.metadata.name, {}).get(m.metadata.name)!;
      const pool = (milestones[m.spec.pool] ??= { started: [], running: [] });
      if (st.started === undefined && m.status?.conditions?.some((c) => c.type === 'Bootstrapped' && c.status === 'True')) pool.started.push((st.started = at));
      if (st.running === undefined && m.status?.phase === 'Running') pool.running.push((st.running = at));
    }
  })().catch(() => undefined);
  const watchCluster = (async () => {
    while (clusterReadyMs === undefined && performance.now() - t0 < TIMEOUT_MS) {
      const c = await client.getOptional<{ status?: { phase?: string } } & Parameters<MarinaClient['create']>[0]>('Cluster', name, PROJECT).catch(() => undefined);
      if (c?.status?.phase === 'Ready') clusterReadyMs = performance.now() - t0;
      else await sleep(100);
    }
  })();
  await client.create({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name, project: PROJECT }, spec: { provider: 'local', nodePools: pools } });
  try {
    const readyMs = await waitReady(() => client.kubeconfig(PROJECT, name), nodes, t0);
    await watchCluster;
    stop.abort();
    await machineWatch;
    let mem: Memory | undefined;
    if (measureMemory) {
      await sleep(IDLE_MS);
      mem = memoryOf(clusterProcesses(dataDir, name));
    }
    return { readyMs, milestones, ...(clusterReadyMs !== undefined ? { clusterReadyMs } : {}), ...(mem ? { mem } : {}) };
  } finally {
    await client.delete('Cluster', name, PROJECT).catch(() => undefined);
    const end = performance.now() + TIMEOUT_MS;
    while (performance.now() < end && (await client.getOptional('Cluster', name, PROJECT).catch(() => undefined))) await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------

const s = (ms: number) => (ms / 1000).toFixed(1);
const mib = (b: number) => String(Math.round(b / MIB));

function memoryRow(label: string, mems: Memory[]): string {
  const pick = (f: (m: Memory) => number) => mib(median(mems.map(f)));
  const names = [...new Set(mems.flatMap((m) => [...m.byName.keys()]))].sort();
  const parts = names.map((n) => `${n} ${mib(median(mems.map((m) => m.byName.get(n) ?? 0)))}`).join(', ');
  return `| ${label} | ${median(mems.map((m) => m.processes))} | **${pick((m) => m.rss)}** (${mems.map((m) => mib(m.rss)).join(', ')}) | ${pick((m) => m.pss)} | ${pick((m) => m.anon)} | ${parts} |`;
}

async function main(): Promise<void> {
  for (const bin of ['kwokctl', 'kwok']) if (!existsSync(join(KWOK, bin))) throw new Error(`${join(KWOK, bin)} is missing: build it (docs/benchmarks.md)`);
  const tmp = mkdtempSync(join(tmpdir(), 'marina-bench-vs-kwok-'));
  const dataDir = join(tmp, 'data');
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess({
      dataDir,
      listen: '127.0.0.1:0',
      logFile: join(tmp, 'server.log'),
      env: {
        ...serverEnv({ home: tmp, toolchain, addressBase: await pickAddressBase(), logLevel: 'warn' }),
        ...Object.fromEntries(values['server-env']!.split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string])),
      },
    });
    const client = new MarinaClient({ server: server.url, token: server.bootstrapToken!, timeoutMs: 60_000 });
    console.log(`side by side, ${RUNS} rounds, Kubernetes ${version}; load average at start ${load()}`);
    const kwok: Round[] = [];
    const marina: Round[] = [];
    const dflt: Round[] = [];
    for (let i = 0; i < RUNS; i++) {
      const l = load();
      if (!values['skip-kwok']) kwok.push(await kwokRound(i));
      marina.push(
        await marinaRound(client, dataDir, `cost-${i}`, [
          { name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 },
          { name: 'workers', roles: ['worker'], replicas: 3 },
        ], 4, true),
      );
      if (!values['skip-default']) {
        dflt.push(
          await marinaRound(client, dataDir, `default-${i}`, [
            { name: 'etcd', roles: ['etcd'], replicas: 3 },
            { name: 'cp', roles: ['controlplane'], replicas: 1 },
            { name: 'workers', roles: ['worker'], replicas: 2 },
          ], 3, false),
        );
      }
      console.log(
        `round ${i + 1} (load ${l} → ${load()}): ` +
          (kwok[i] ? `kwokctl Ready ${s(kwok[i]!.readyMs)} s, ${mib(kwok[i]!.mem!.rss)} MiB; ` : '') +
          `Marina (same shape) Ready ${s(marina[i]!.readyMs)} s (Cluster Ready ${s(marina[i]!.clusterReadyMs ?? NaN)} s), ${mib(marina[i]!.mem!.rss)} MiB` +
          (dflt[i] ? `; Marina default cluster Ready ${s(dflt[i]!.readyMs)} s (Cluster Ready ${s(dflt[i]!.clusterReadyMs ?? NaN)} s)` : ''),
      );
    }
    console.log('\n| create → /readyz ok and every Node Ready, s | median | runs |\n|---|---:|---|');
    const row = (label: string, rs: Round[], f: (r: Round) => number) => console.log(`| ${label} | **${s(median(rs.map(f)))}** | ${rs.map((r) => s(f(r))).join(', ')} |`);
    if (kwok.length > 0) row('kwokctl (1 etcd, apiserver, controller-manager, scheduler, kwok; 3 Nodes)', kwok, (r) => r.readyMs);
    row('Marina, same shape (1 etcd+controlplane machine, 3 workers; 4 Nodes)', marina, (r) => r.readyMs);
    row('Marina, same shape: Cluster phase Ready', marina, (r) => r.clusterReadyMs ?? NaN);
    if (dflt.length > 0) {
      row('Marina default cluster (3 etcd, 1 control plane, 2 workers)', dflt, (r) => r.readyMs);
      row('Marina default cluster: Cluster phase Ready', dflt, (r) => r.clusterReadyMs ?? NaN);
    }
    const breakdown = (title: string, rs: Round[]) => {
      const pools = [...new Set(rs.flatMap((r) => Object.keys(r.milestones ?? {})))];
      console.log(`\n${title} — seconds after the create call (median of the runs): started first–last / Running last`);
      for (const p of pools) {
        const first = median(rs.map((r) => Math.min(...(r.milestones?.[p]?.started ?? [NaN]))));
        const last = median(rs.map((r) => Math.max(...(r.milestones?.[p]?.started ?? [NaN]))));
        const run = median(rs.map((r) => Math.max(...(r.milestones?.[p]?.running ?? [NaN]))));
        console.log(`  ${p.padEnd(8)} started ${s(first)}–${s(last)}, Running ${s(run)}`);
      }
    };
    breakdown('Marina, same shape', marina);
    if (dflt.length > 0) breakdown('Marina default cluster', dflt);
    console.log(`\n| memory after ${IDLE_MS / 1000} s idle, MiB | processes | RSS (runs) | PSS | anon | RSS by process |\n|---|---:|---:|---:|---:|---|`);
    if (kwok.length > 0) console.log(memoryRow('kwokctl', kwok.map((r) => r.mem!)));
    console.log(memoryRow('Marina, same shape', marina.map((r) => r.mem!)));
  } finally {
    await server?.stop(60_000);
    const killed = await killLeftovers(dataDir, tmp);
    if (killed.length > 0) console.log(`killed leftovers: ${killed.join(', ')}`);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
