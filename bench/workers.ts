// Real workers vs virtual workers (issue 17): create → Ready time and memory per worker.
//
//   npx tsc -p tsconfig.json && node dist/bench/workers.js [--runs 2] [--workers 2] [--settle-seconds 20]
//
// Through a real `marina server` process (its own data dir and loopback block). Per runtime
// (virtual, then containerd) and run: a cluster with 1 etcd, 1 control plane and a worker pool of
// 0 is created and waited for (Ready); then the pool is scaled to N and the clock starts. Per
// worker: create → Ready is from the scale request to the first poll (every 250 ms, REST API) that
// shows its Machine Running with nodeReady true — the Node is Ready in the cluster's API; for real
// workers that includes containerd start, image import, the kubelet's TLS bootstrap (Marina
// creates the token and approves the CSR) and the pod CIDR. After `--settle-seconds`, memory per
// worker: the machine agent's process group plus descendants (RSS, from /proc) and, for real
// workers, what the kernel charges the node's cgroup (containerd, shims, kubelet, kube-proxy,
// sandboxes: memory.usage_in_bytes, page cache of the imported images included; and its rss line
// of memory.stat). Then the cluster is deleted and nothing of it may be left.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { API_VERSION } from '../src/api/meta.js';
import { cgroupDirs, cgroupMounts, memoryBytes } from '../src/agent/node-runtime/cgroups.js';
import { resolveToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { apiRequest, freePort, pickAddressBase, serverEnv, startServerProcess, type ServerProcess } from '../test/support/marina.js';
import { nodeCacheEnv, nodeFootprints, leftovers } from '../test/workers/support.js';
import { allStats, groupMembers, load, median, MIB, readJson, sec, table } from './support.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
    'settle-seconds': { type: 'string', default: '20' },
  },
});
const RUNS = Number(values.runs);
const WORKERS = Number(values.workers);
const SETTLE_MS = Number(values['settle-seconds']) * 1000;
const PROJECT = 'default';

interface MachineJson {
  metadata: { name: string; creationTimestamp: string };
  spec: { pool: string };
  status?: { phase?: string; nodeReady?: boolean };
}

interface Sample {
  runtime: string;
  /** RSS per command name (node, containerd, kubelet, ...) of every worker's process group. */
  byCommand: Map<string, number[]>;
  readyMs: number[];
  agentRssMiB: number[];
  cgroupMiB: number[];
  cgroupRssMiB: number[];
}

/** memory.stat `rss` (cgroup v1) or `anon` (v2) of a cgroup subtree: private memory, no page cache. */
function cgroupRssBytes(rel: string): number {
  for (const mp of cgroupMounts()) {
    const file = join(mp, rel, 'memory.stat');
    if (!existsSync(file)) continue;
    const stat = readFileSync(file, 'utf8');
    const m = /^(?:total_rss|anon) (\d+)$/m.exec(stat);
    if (m) return Number(m[1]);
  }
  return Number.NaN;
}

async function main(): Promise<void> {
  const version = defaultVersion();
  const toolchain = resolveToolchain(version);
  const tmp = mkdtempSync(join(tmpdir(), 'mrn-bench-w-'));
  const dataDir = join(tmp, 'data');
  mkdirSync(join(tmp, 'home'));
  let server: ServerProcess | undefined;
  const samples: Sample[] = [];
  const cleanup = async () => {
    await server?.stop(60_000).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${await freePort()}`,
      logFile: join(tmp, 'server.log'),
      env: { ...serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase(), logLevel: 'warn' }), ...nodeCacheEnv() },
    });
    const token = server.bootstrapToken!;
    const api = (method: string, path: string, body?: unknown) => apiRequest(server!.url, token, method, path, body);
    console.log(`# bench/workers: Kubernetes ${version}, ${WORKERS} workers per run, ${RUNS} runs per runtime, load ${load()}`);

    for (const runtime of ['virtual', 'containerd'] as const) {
      const sample: Sample = { runtime, byCommand: new Map(), readyMs: [], agentRssMiB: [], cgroupMiB: [], cgroupRssMiB: [] };
      samples.push(sample);
      for (let run = 0; run < RUNS; run++) {
        const name = `w${runtime === 'virtual' ? 'v' : 'c'}${run}`;
        const pool = (replicas: number) => ({ name: 'workers', roles: ['worker'], replicas, ...(runtime === 'containerd' ? { runtime: { type: 'containerd' } } : {}) });
        const spec = { nodePools: [{ name: 'etcd', roles: ['etcd'], replicas: 1 }, { name: 'cp', roles: ['controlplane'], replicas: 1 }, pool(0)] };
        const created = await api('POST', `/projects/${PROJECT}/clusters`, { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec });
        if (created.status !== 201) throw new Error(created.text);
        await until(`${name} Ready`, 600_000, async () => (await api('GET', `/projects/${PROJECT}/clusters/${name}`)).json?.status?.phase === 'Ready');

        // Scale 0 → N: the clock starts with the request.
        const t0 = Date.now();
        for (;;) {
          const c = (await api('GET', `/projects/${PROJECT}/clusters/${name}`)).json;
          c.spec.nodePools[2] = pool(WORKERS);
          if ((await api('PUT', `/projects/${PROJECT}/clusters/${name}`, c)).status === 200) break;
        }
        const readyAt = new Map<string, number>();
        await until(`${WORKERS} ${runtime} workers Ready`, 600_000, async () => {
          const items = ((await api('GET', `/projects/${PROJECT}/machines?labelSelector=marina.dev/pool%3Dworkers`)).json?.items ?? []) as MachineJson[];
          for (const m of items) if (m.status?.phase === 'Running' && m.status.nodeReady && !readyAt.has(m.metadata.name)) readyAt.set(m.metadata.name, Date.now() - t0);
          return readyAt.size >= WORKERS;
        }, 250);
        sample.readyMs.push(...readyAt.values());

        await sleep(SETTLE_MS);
        const stats = allStats();
        const records = readdirMachines(dataDir, name);
        const nodes = nodeFootprints(dataDir).filter((n) => records.some((r) => r.name === n.machine));
        for (const r of records.filter((x) => readyAt.has(x.name))) {
          const members = groupMembers(r.pid, stats);
          const rss = members.reduce((sum, s) => sum + rssOf(s.pid), 0);
          sample.agentRssMiB.push(rss / MIB);
          const perCommand = new Map<string, number>();
          for (const p of members) perCommand.set(p.comm, (perCommand.get(p.comm) ?? 0) + rssOf(p.pid));
          for (const [comm, bytes] of perCommand) (sample.byCommand.get(comm) ?? sample.byCommand.set(comm, []).get(comm)!).push(bytes / MIB);
          const node = nodes.find((n) => n.machine === r.name);
          if (node) {
            sample.cgroupMiB.push(memoryBytes(node.cgroupRoot) / MIB);
            sample.cgroupRssMiB.push(cgroupRssBytes(node.cgroupRoot) / MIB);
          }
        }
        console.log(`# ${name}: workers Ready after ${[...readyAt.values()].map((ms) => sec(ms)).join(', ')} s (load ${load()})`);

        await api('DELETE', `/projects/${PROJECT}/clusters/${name}`);
        await until(`${name} deleted`, 300_000, async () => (await api('GET', `/projects/${PROJECT}/clusters/${name}`)).status === 404);
        const left = await leftovers(nodes);
        if (Object.values(left).some((l) => l.length > 0) || nodes.some((n) => cgroupDirs(n.cgroupRoot).length > 0)) {
          throw new Error(`${name} left ${JSON.stringify(left)}`);
        }
      }
    }

    console.log('');
    table(
      ['runtime', 'workers', 'create → Ready median (s)', 'min–max (s)', 'agent process group RSS (MiB)', 'node cgroup charge (MiB)', 'node cgroup rss (MiB)'],
      samples.map((s) => [
        s.runtime,
        String(s.readyMs.length),
        sec(median(s.readyMs)),
        `${sec(Math.min(...s.readyMs))}–${sec(Math.max(...s.readyMs))}`,
        median(s.agentRssMiB).toFixed(0),
        s.cgroupMiB.length ? median(s.cgroupMiB).toFixed(0) : '–',
        s.cgroupRssMiB.length ? median(s.cgroupRssMiB).toFixed(0) : '–',
      ]),
    );
    console.log('');
    table(
      ['runtime', 'process (in the agent\'s group)', 'RSS median (MiB)'],
      samples.flatMap((s) => [...s.byCommand].sort((a, b) => median(b[1]) - median(a[1])).map(([comm, xs]) => [s.runtime, comm, median(xs).toFixed(0)])),
    );
    console.log(`# load at the end ${load()}`);
  } finally {
    await cleanup();
  }
}

function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Machine records (name, agent pid) of one cluster in the local provider's directory. */
function readdirMachines(dataDir: string, cluster: string): { name: string; pid: number }[] {
  const dir = join(dataDir, 'local', 'machines', PROJECT, cluster);
  if (!existsSync(dir)) return [];
  const out: { name: string; pid: number }[] = [];
  for (const name of readdirSync(dir)) {
    const r = readJson<{ pid?: number }>(join(dir, name, 'machine.json'));
    if (r?.pid) out.push({ name, pid: r.pid });
  }
  return out;
}

async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>, pollMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
