// End to end with the real binaries: the REST API, the controllers and the local provider create a
// cluster (3 etcd, 1 control plane, 2 workers) of genuine etcd / kube-apiserver / controller-manager
// / scheduler processes with virtual kubelets; kubectl (the real one) sees Ready Nodes with Marina's
// labels, runs a Deployment, follows a scale 2 → 3 → 1, and after the delete nothing is left: no
// process, no listening port, no directory. Skips when the toolchain is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual, promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { API_VERSION } from '../../src/api/meta.js';
import { startControlLoops, type RunningControlLoops } from '../../src/server/control-loops.js';
import { isPortListening } from '../../src/proc/index.js';
import { LocalProvider } from '../../src/providers/local/index.js';
import { buildApp } from '../../src/server/app.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { findToolchain } from '../../src/toolchain/resolve.js';
import { defaultVersion } from '../../src/toolchain/versions.js';
import { apiRequest, pickAddressBase, waitUntil } from '../support/marina.js';

const execFileAsync = promisify(execFile);
const version = defaultVersion();
const found = findToolchain(version);
const skip = found.ok ? false : `Kubernetes toolchain ${version} not installed; run scripts/toolchain/install.sh ${version}`;
if (skip) console.log(`SKIP e2e cluster test: ${skip}`);

const PROJECT = 'e2e';

interface Machine {
  metadata: { name: string };
  spec: { pool: string };
  status?: { phase?: string; address?: string };
}

/** PIDs of processes whose command line mentions `dir` (what the provider started for us). */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}


describe('e2e: a local cluster from create to delete', { skip, timeout: 600_000 }, () => {
  let dir = '';
  let url = '';
  let token = '';
  let kubeconfig = '';
  let closeAll: (() => Promise<void>) | undefined;
  const machineAddresses = new Set<string>();
  let endpointHost = '';

  const api = (method: string, path: string, body?: unknown) => apiRequest(url, token, method, path, body);

  const kubectl = async (...args: string[]): Promise<string> => {
    assert.ok(found.ok);
    const { stdout } = await execFileAsync(found.toolchain.paths.kubectl, ['--kubeconfig', kubeconfig, ...args], { timeout: 30_000 });
    return stdout;
  };
  const workerNodes = async (): Promise<string[]> =>
    (await kubectl('get', 'nodes', '-l', 'marina.dev/pool=workers', '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/).filter(Boolean);
  const setWorkers = async (replicas: number): Promise<void> => {
    for (;;) {
      const c = (await api('GET', `/projects/${PROJECT}/clusters/demo`)).json;
      c.spec.nodePools = c.spec.nodePools.map((p: { name: string }) => (p.name === 'workers' ? { ...p, replicas } : p));
      const r = await api('PUT', `/projects/${PROJECT}/clusters/demo`, c);
      if (r.status === 200) return;
      assert.equal(r.status, 409, r.text);
    }
  };
  const machines = async (): Promise<Machine[]> => (await api('GET', `/projects/${PROJECT}/machines`)).json.items as Machine[];

  before(async () => {
    if (!found.ok) return;
    const toolchain = found.toolchain;
    dir = mkdtempSync(join(tmpdir(), 'marina-e2e-'));
    const store = openSqliteStore({ path: join(dir, 'marina.db'), encryptionKey: randomBytes(32) });
    await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: 'admin' }, spec: { platformAdmin: true } });
    await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: PROJECT }, spec: { members: [{ user: 'admin', role: 'admin' }] } });
    token = (await store.tokens.issue({ user: 'admin' })).token;
    const { app, close } = await buildApp({ store, tokens: store.tokens, audit: store.audit, validation: { kubernetesVersions: [version] } });
    // A free random /16 of its own, so a developer's Marina or a parallel run never collides with it.
    const addressBase = await pickAddressBase();
    const provider = new LocalProvider({ root: join(dir, 'local'), addressBase, binaries: () => toolchain.paths, startTimeoutMs: 120_000 });
    let controllers: RunningControlLoops | undefined;
    closeAll = async () => {
      await close();
      await controllers?.stop();
      await provider.close();
      await store.close();
    };
    controllers = await startControlLoops({
      store,
      providers: { get: () => provider, list: () => [provider] },
      metrics: new Registry(),
      logger: pino({ level: process.env.E2E_LOG_LEVEL ?? 'warn' }),
      defaultKubernetesVersion: version,
      timing: { drainTimeoutMs: 20_000 },
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  after(async () => {
    if (!dir) return;
    try {
      // A failed test may leave the cluster: delete it so the provider stops what it started.
      if (url && (await api('GET', `/projects/${PROJECT}/clusters/demo`)).status === 200) {
        await api('DELETE', `/projects/${PROJECT}/clusters/demo`);
        await waitUntil('cluster deletion during cleanup', 120_000, async () =>
          (await api('GET', `/projects/${PROJECT}/clusters/demo`)).status === 404 ? true : undefined,
        ).catch(() => undefined);
      }
      await closeAll?.();
    } finally {
      // Last resort: processes the provider started for this test (never anything else).
      for (const pid of processesUnder(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('creates a cluster that becomes Ready, with Ready Nodes carrying Marina labels', async () => {
    const started = Date.now();
    const created = await api('POST', `/projects/${PROJECT}/clusters`, {
      apiVersion: API_VERSION,
      kind: 'Cluster',
      metadata: { name: 'demo' },
      spec: {
        nodePools: [
          { name: 'etcd', roles: ['etcd'], replicas: 3 },
          { name: 'cp', roles: ['controlplane'], replicas: 1 },
          { name: 'workers', roles: ['worker'], replicas: 2, labels: { tier: 'web' } },
        ],
      },
    });
    assert.equal(created.status, 201, created.text);
    const cluster = await waitUntil('cluster Ready', 180_000, async () => {
      const c = (await api('GET', `/projects/${PROJECT}/clusters/demo`)).json;
      return c?.status?.phase === 'Ready' ? c : undefined;
    });
    console.log(`# cluster Ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    endpointHost = new URL(cluster.status.endpoint).hostname;
    for (const m of await machines()) if (m.status?.address) machineAddresses.add(m.status.address);
    assert.equal(machineAddresses.size, 6);

    const kc = await api('GET', `/projects/${PROJECT}/clusters/demo/kubeconfig`);
    assert.equal(kc.status, 200, kc.text);
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kc.text, { mode: 0o600 });

    assert.equal((await kubectl('get', '--raw', '/readyz')).trim(), 'ok');
    const nodes = JSON.parse(await kubectl('get', 'nodes', '-o', 'json')) as {
      items: { metadata: { name: string; labels: Record<string, string> }; spec: { taints?: { key: string; effect: string }[] }; status: { conditions: { type: string; status: string }[] } }[];
    };
    assert.equal(nodes.items.length, 3, 'control plane + 2 workers; etcd-only machines have no Node');
    for (const n of nodes.items) {
      assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', `${n.metadata.name} Ready`);
      assert.equal(n.metadata.labels['marina.dev/cluster'], 'demo');
      assert.equal(n.metadata.labels['marina.dev/machine'], n.metadata.name);
    }
    const workers = nodes.items.filter((n) => n.metadata.labels['marina.dev/pool'] === 'workers');
    assert.equal(workers.length, 2);
    for (const w of workers) {
      assert.equal(w.metadata.labels.tier, 'web');
      assert.equal(w.metadata.labels['node-role.kubernetes.io/worker'], '', 'role label applied by Marina (NodeRestriction keeps kubelets from it)');
    }
    const cp = nodes.items.find((n) => n.metadata.labels['marina.dev/pool'] === 'cp')!;
    assert.equal(cp.metadata.labels['node-role.kubernetes.io/control-plane'], '');
    // (node.kubernetes.io/not-ready may still linger for a moment: the node-lifecycle controller owns it.)
    assert.ok(cp.spec.taints?.some((t) => `${t.key}:${t.effect}` === 'node-role.kubernetes.io/control-plane:NoSchedule'), JSON.stringify(cp.spec.taints));

    // kube-apiserver probes the controller-manager and the scheduler at 127.0.0.1 (the agent
    // relays it to the control-plane machine), and etcd through its own client.
    type ComponentStatuses = { items: { metadata: { name: string }; conditions: { type: string; status: string; message?: string; error?: string }[] }[] };
    let last = '';
    await waitUntil('componentstatuses all Healthy', 30_000, async () => {
      const cs = JSON.parse(await kubectl('get', 'componentstatuses', '-o', 'json')) as ComponentStatuses;
      last = JSON.stringify(cs.items);
      const healthy = new Set(cs.items.filter((i) => i.conditions.some((c) => c.type === 'Healthy' && c.status === 'True')).map((i) => i.metadata.name));
      return ['controller-manager', 'scheduler', 'etcd-0'].every((n) => healthy.has(n)) ? true : undefined;
    }).catch((err: Error) => assert.fail(`${err.message}; last: ${last}`));
  });

  it('runs a Deployment on the workers', async () => {
    await kubectl('create', 'deployment', 'web', '--image=registry.k8s.io/pause:3.10', '--replicas=3');
    const pods = await waitUntil('3 Running pods', 60_000, async () => {
      const list = JSON.parse(await kubectl('get', 'pods', '-l', 'app=web', '-o', 'json')) as {
        items: { spec: { nodeName?: string }; status: { phase?: string } }[];
      };
      const running = list.items.filter((p) => p.status.phase === 'Running');
      return running.length === 3 ? running : undefined;
    });
    const workers = await workerNodes();
    for (const p of pods) assert.ok(workers.includes(p.spec.nodeName ?? ''), 'pods land on workers, not on the tainted control plane');
  });

  it('scales the workers 2 → 3 → 1; removed Nodes are drained and deleted', async () => {
    await setWorkers(3);
    await waitUntil('3 Ready worker Nodes', 120_000, async () => {
      const out = await kubectl('get', 'nodes', '-l', 'marina.dev/pool=workers', '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}');
      return out.trim().split(/\s+/).filter((s) => s === 'True').length === 3 ? true : undefined;
    });
    for (const m of await machines()) if (m.status?.address) machineAddresses.add(m.status.address);

    await setWorkers(1);
    await waitUntil('1 worker Node', 120_000, async () => ((await workerNodes()).length === 1 ? true : undefined));
    await waitUntil('1 worker Machine', 60_000, async () => ((await machines()).filter((m) => m.spec.pool === 'workers').length === 1 ? true : undefined));
    // The Deployment's pods moved to the remaining worker.
    await waitUntil('3 Running pods on the last worker', 90_000, async () => {
      const [last] = await workerNodes();
      const list = JSON.parse(await kubectl('get', 'pods', '-l', 'app=web', '-o', 'json')) as {
        items: { spec: { nodeName?: string }; status: { phase?: string } }[];
      };
      const ok = list.items.filter((p) => p.status.phase === 'Running' && p.spec.nodeName === last);
      return ok.length === 3 ? true : undefined;
    });
    // The cluster's status follows its pools' on its own next reconcile.
    await waitUntil('cluster status: 1/1 workers', 60_000, async () => {
      const c = (await api('GET', `/projects/${PROJECT}/clusters/demo`)).json;
      const workers = c.status?.pools?.find((p: { name: string }) => p.name === 'workers');
      return workers && isDeepStrictEqual({ replicas: workers.replicas, readyReplicas: workers.readyReplicas, updatedReplicas: workers.updatedReplicas }, { replicas: 1, readyReplicas: 1, updatedReplicas: 1 }) ? true : undefined;
    });
  });

  it('deletes the cluster and leaves no process, port or directory behind', async () => {
    const del = await api('DELETE', `/projects/${PROJECT}/clusters/demo`);
    assert.ok([200, 202].includes(del.status), del.text);
    await waitUntil('cluster gone', 120_000, async () => ((await api('GET', `/projects/${PROJECT}/clusters/demo`)).status === 404 ? true : undefined));
    assert.deepEqual((await api('GET', `/projects/${PROJECT}/machines`)).json.items, []);
    assert.deepEqual((await api('GET', `/projects/${PROJECT}/nodepools`)).json.items, []);
    assert.deepEqual((await api('GET', `/projects/${PROJECT}/secrets`)).json.items, []);

    assert.deepEqual(processesUnder(dir), [], 'no process of the cluster is left');
    const listening: string[] = [];
    for (const host of machineAddresses) {
      for (const port of [2379, 2380, 6443, 10250, 10257, 10259]) if (await isPortListening(host, port, 300)) listening.push(`${host}:${port}`);
    }
    if (endpointHost && (await isPortListening(endpointHost, 6443, 300))) listening.push(`${endpointHost}:6443`);
    assert.deepEqual(listening, [], 'no port is left listening');
    for (const sub of ['machines', 'endpoints']) {
      const p = join(dir, 'local', sub);
      assert.deepEqual(existsSync(p) ? readdirSync(p) : [], [], `${sub} directory is empty`);
    }
  });
});
