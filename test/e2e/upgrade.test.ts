// Issue 12's "done when", end to end with real binaries: a real `marina server` process, the real
// `marina` CLI, kubectl (the real one) as the cluster's client, one cluster shared by the steps
// (3 etcd, 2 control planes, 3 workers):
//
//   created on v1.35.4, upgraded to v1.36.3 in one call: kubectl version reports the new server,
//   every Node's kubelet is new, a ConfigMap written before is read after; a Deployment of 3 with
//   a PodDisruptionBudget minAvailable 2 never has fewer than 2 available (watched with kubectl);
//   a leaf rotation with a PodDisruptionBudget that can never be satisfied fails its worker step
//   after the drain timeout, naming that budget, and the cluster keeps serving;
//   a CA rotation (which rolls every machine again) with an old worker killed -9 mid-roll: healing
//   and the roll agree (no machine replaced twice, the pool within its surge), a kubeconfig from
//   before works between the phases and is refused after, the new one works.
//
// A probe lists ConfigMaps through the endpoint every 200 ms, each on a new connection, during
// each operation; its failure counts are logged (`# probe …`) — 0 is the goal.
//
// Skips when either toolchain version is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Operation } from '../../src/api/operations.js';
import { findToolchain } from '../../src/toolchain/resolve.js';
import { ApiProbe, describeProbe, type ProbeReport } from '../support/api-probe.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import {
  apiRequest,
  Cli,
  freePort,
  kubectl,
  machineRecords,
  pickAddressBase,
  serverEnv,
  serverLogTail,
  startServerProcess,
  teardown,
  waitUntil,
  type ServerProcess,
} from '../support/marina.js';

const FROM = 'v1.35.4';
const TO = 'v1.36.3';
const { toolchain, skip: noToolchain } = toolchainOrSkip(TO);
const older = findToolchain(FROM);
const skip = noToolchain || (older.ok ? false : `Kubernetes toolchain ${FROM} not installed; run scripts/toolchain/install.sh ${FROM}`);
if (skip) console.log(`SKIP e2e upgrade test: ${skip}`);

const P = 'default';
const C = 'up';
const DRAIN_TIMEOUT_S = 20;

interface MachineJson {
  metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string; annotations?: Record<string, string> };
  spec: { pool: string; kubernetesVersion: string; certificates?: string };
  status?: { phase?: string };
}
interface NodeJson {
  metadata: { name: string };
  status: { nodeInfo: { kubeletVersion: string }; conditions: { type: string; status: string }[] };
}

/** `kubectl get deployment NAME -w`: every availableReplicas it reports (restarted if the watch ends). */
class AvailabilityWatch {
  readonly seen: number[] = [];
  restarts = 0;
  private child: ChildProcess | undefined;
  private stopped = false;

  constructor(private readonly kubectlPath: string, private readonly kubeconfig: string, private readonly deployment: string) {}

  start(): void {
    if (this.stopped) return;
    const child = spawn(this.kubectlPath, ['--kubeconfig', this.kubeconfig, 'get', 'deployment', this.deployment, '-w', '-o', 'jsonpath={.status.availableReplicas}{"\\n"}'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.child = child;
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) this.seen.push(l.trim() === '' ? 0 : Number(l.trim()));
    });
    child.on('exit', () => {
      if (this.stopped) return;
      // The watch ends when the apiserver it was connected to goes away: a new one reports the
      // current state first, so nothing is hidden across the restart but the gap itself.
      this.restarts++;
      setTimeout(() => this.start(), 200);
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

describe('e2e: upgrade v1.35.4 → v1.36.3 and certificate rotations on one HA cluster', { skip, timeout: 1_800_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let server: ServerProcess | undefined;
  let cli: Cli;
  let token = '';
  let kc = '';
  const probes: ApiProbe[] = [];
  const watches: AvailabilityWatch[] = [];
  const counts: Record<string, ProbeReport> = {};
  /** Cleared by the after hook too, so a failed test leaves no polling loop behind. */
  let watching = false;

  const api = (method: string, path: string, body?: unknown) => apiRequest(server!.url, token, method, path, body);
  const k = (...args: string[]) => kubectl(toolchain!, kc, ['--request-timeout=15s', ...args], 30_000);
  const getOp = async (name: string): Promise<Operation> => (await api('GET', `/projects/${P}/operations/${name}`)).json as Operation;
  const machines = async (): Promise<MachineJson[]> => (await api('GET', `/projects/${P}/machines?labelSelector=marina.dev/cluster%3D${C}`)).json.items as MachineJson[];
  const logs = () => serverLogTail(server!.logFile, 6000);
  const steps = (op: Operation) => JSON.stringify(op.status?.steps?.map((s) => [s.name, s.state, s.message]));
  const stepState = (op: Operation, name: string) => op.status?.steps?.find((s) => s.name === name)?.state;
  const probe = (kubeconfig: string): ApiProbe => {
    const p = new ApiProbe(kubeconfig);
    probes.push(p);
    p.start();
    return p;
  };
  const downloadKubeconfig = async (file: string): Promise<string> => {
    const text = (await cli.ok(['cluster', 'kubeconfig', C])).stdout;
    writeFileSync(file, text, { mode: 0o600 });
    return text;
  };
  /** Starts an operation with the CLI (--no-wait); its name. */
  const start = async (args: string[]): Promise<string> => {
    const r = await cli.ok([...args, '--no-wait']);
    const m = /operation\/(\S+) created/.exec(r.stdout);
    assert.ok(m, `an operation was created: ${r.stdout}`);
    return m[1]!;
  };
  const ended = (name: string, timeoutMs = 900_000) =>
    waitUntil(`operation ${name} ends`, timeoutMs, async () => {
      const op = await getOp(name);
      return ['Succeeded', 'Failed', 'Cancelled'].includes(op.status?.phase ?? '') ? op : undefined;
    }, 1000).catch(async (err: Error) => assert.fail(`${err.message}: ${steps(await getOp(name))}\n${logs()}`));
  /** The operation's phase if it ended Failed or Cancelled, else undefined. */
  const endedEarly = async (name: string): Promise<string | undefined> => {
    const phase = (await getOp(name)).status?.phase ?? '';
    return ['Failed', 'Cancelled'].includes(phase) ? phase : undefined;
  };
  const nodes = async (): Promise<NodeJson[]> => (JSON.parse(await k('get', 'nodes', '-o', 'json')) as { items: NodeJson[] }).items;

  before(async () => {
    if (!toolchain) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-upgrade-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    // Both versions from the toolchain cache (MARINA_BIN_DIR would pin every cluster to one).
    const { MARINA_BIN_DIR: _one, ...env } = serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase() });
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${await freePort()}`,
      logFile: join(tmp, 'server.log'),
      env: { ...env, MARINA_TOOLCHAIN_DIR: dirname(dirname(toolchain.paths.etcd)) },
    });
    token = server.bootstrapToken!;
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token'), '--project', P]);
  });

  after(async () => {
    watching = false;
    for (const w of watches) w.stop();
    await Promise.all(probes.map((p) => p.stop()));
    await teardown({ tmp, dataDir, cli, server, cluster: C });
  });

  it(`creates a 3 etcd / 2 control plane / 3 worker cluster on ${FROM}, a ConfigMap, a Deployment of 3 with a PodDisruptionBudget minAvailable 2`, async () => {
    const file = join(tmp, 'cluster.json');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'marina.dev/v1alpha1',
        kind: 'Cluster',
        metadata: { name: C },
        spec: {
          kubernetesVersion: FROM,
          health: { intervalSeconds: 2 },
          nodePools: [
            { name: 'etcd', roles: ['etcd'], replicas: 3 },
            { name: 'cp', roles: ['controlplane'], replicas: 2 },
            { name: 'workers', roles: ['worker'], replicas: 3, healing: { unhealthyTimeoutSeconds: 4, drainTimeoutSeconds: DRAIN_TIMEOUT_S } },
          ],
        },
      }),
    );
    const r = await cli.run(['cluster', 'create', C, '-f', file, '--timeout', '8m'], 600_000);
    assert.equal(r.code, 0, `create exited ${r.code}\n${r.stdout}\n${r.stderr}\n${logs()}`);
    kc = join(tmp, 'kubeconfig');
    await downloadKubeconfig(kc);
    const version = JSON.parse(await k('version', '-o', 'json')) as { serverVersion: { gitVersion: string } };
    assert.equal(version.serverVersion.gitVersion, FROM);
    await k('create', 'configmap', 'before-upgrade', '--from-literal=written=before');
    await k('create', 'deployment', 'web', '--image=registry.k8s.io/pause:3.10', '--replicas=3');
    await k('create', 'poddisruptionbudget', 'web', '--selector=app=web', '--min-available=2');
    await waitUntil('web: 3 available, its budget allows 1 disruption', 120_000, async () => {
      const d = JSON.parse(await k('get', 'deployment', 'web', '-o', 'json')) as { status: { availableReplicas?: number } };
      const b = JSON.parse(await k('get', 'pdb', 'web', '-o', 'json')) as { status?: { disruptionsAllowed?: number } };
      return d.status.availableReplicas === 3 && b.status?.disruptionsAllowed === 1 ? true : undefined;
    });
  });

  it(`upgrades to ${TO} in one call: new server and kubelets, the ConfigMap kept, web never below 2 available`, async () => {
    const p = probe(await downloadKubeconfig(kc));
    const watch = new AvailabilityWatch(toolchain!.paths.kubectl, kc, 'web');
    watches.push(watch);
    const began = Date.now();
    const name = await start(['cluster', 'upgrade', C, '--version', TO]);
    // Watched from the moment the workers roll (the control planes roll before: the watch's
    // apiserver would go away under it).
    await waitUntil('the workers step', 900_000, async () => {
      const op = await getOp(name);
      return stepState(op, 'workers') !== 'Pending' || ['Failed', 'Cancelled'].includes(op.status?.phase ?? '') ? true : undefined;
    }, 500);
    watch.start();
    const op = await ended(name);
    watch.stop();
    counts.upgrade = await p.stop();
    console.log(`# upgrade: ${((Date.now() - began) / 1000).toFixed(1)} s; probe ${describeProbe(counts.upgrade)}; web available seen during the worker roll: ${watch.seen.join(',')} (watch restarts ${watch.restarts})`);
    assert.equal(op.status?.phase, 'Succeeded', `${op.status?.message}\n${steps(op)}\n${logs()}`);
    assert.deepEqual(op.status?.steps?.map((s) => s.name), ['preflight', 'snapshot', 'storeSnapshot', 'verifySnapshot', 'setVersion', 'etcd', 'controlPlanes', 'workers', 'importedServers', 'verify']);

    const version = JSON.parse(await k('version', '-o', 'json')) as { serverVersion: { gitVersion: string } };
    assert.equal(version.serverVersion.gitVersion, TO, 'kubectl version reports the new server');
    const ns = await nodes();
    assert.equal(ns.length, 5, 'the control planes and the workers are Nodes');
    for (const n of ns) {
      assert.equal(n.status.nodeInfo.kubeletVersion, TO, `${n.metadata.name}: kubelet ${TO}`);
      assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', `${n.metadata.name} Ready`);
    }
    assert.equal((await k('get', 'configmap', 'before-upgrade', '-o', 'jsonpath={.data.written}')).trim(), 'before', 'the ConfigMap written before is read after');
    assert.ok(watch.seen.length > 0, 'kubectl watched web during the worker roll');
    assert.ok(Math.min(...watch.seen) >= 2, `web never below 2 available: ${watch.seen.join(',')}`);
    const ms = (await machines()).filter((m) => !m.metadata.deletionTimestamp && m.spec.pool !== 'etcd');
    assert.ok(ms.every((m) => m.spec.kubernetesVersion === TO), 'every Kubernetes machine on the new version');
    assert.equal(counts.upgrade.failures, 0, `failed requests during the upgrade: ${describeProbe(counts.upgrade)}`);
  });

  it('a leaf rotation with a PodDisruptionBudget that can never be satisfied: the worker step fails after the drain timeout, naming it', async () => {
    await k('create', 'deployment', 'stuck', '--image=registry.k8s.io/pause:3.10', '--replicas=1');
    await k('create', 'poddisruptionbudget', 'stuck', '--selector=app=stuck', '--min-available=1');
    await waitUntil('stuck: its budget allows no disruption', 120_000, async () => {
      const b = JSON.parse(await k('get', 'pdb', 'stuck', '-o', 'json')) as { status?: { currentHealthy?: number; disruptionsAllowed?: number } };
      return b.status?.currentHealthy === 1 && b.status.disruptionsAllowed === 0 ? true : undefined;
    });
    const p = probe(await downloadKubeconfig(kc));
    const began = Date.now();
    const name = await start(['cluster', 'rotate-certificates', C]);
    const op = await ended(name).finally(async () => {
      // The budget goes whatever happened; the CA rotation's drains get time for the worker it kills.
      await k('delete', 'poddisruptionbudget', 'stuck');
      await k('delete', 'deployment', 'stuck');
      const cluster = (await api('GET', `/projects/${P}/clusters/${C}`)).json as { spec: { nodePools: { name: string; healing?: Record<string, unknown> }[] } };
      for (const pool of cluster.spec.nodePools) if (pool.name === 'workers') pool.healing = { ...pool.healing, drainTimeoutSeconds: 180 };
      const put = await api('PUT', `/projects/${P}/clusters/${C}`, cluster);
      assert.equal(put.status, 200, put.text);
    });
    counts.leafRotation = await p.stop();
    console.log(`# leaf rotation (ends at the stuck budget): ${((Date.now() - began) / 1000).toFixed(1)} s; probe ${describeProbe(counts.leafRotation)}`);
    assert.equal(op.status?.phase, 'Failed', steps(op));
    const workers = op.status?.steps?.find((s) => s.name === 'workers');
    assert.equal(workers?.state, 'Failed', steps(op));
    assert.match(workers?.message ?? '', new RegExp(`timed out after ${DRAIN_TIMEOUT_S} s`), 'the drain timeout ended the wait');
    assert.match(workers?.message ?? '', /PodDisruptionBudget default\/stuck/, 'the budget is named');
    assert.deepEqual(['etcd', 'controlPlanes'].map((s) => stepState(op, s)), ['Succeeded', 'Succeeded']);
    assert.match(op.status?.message ?? '', /paused/, 'the rolls are paused, the cluster serves');
    const pool = (await api('GET', `/projects/${P}/nodepools/${C}-workers`)).json as { status?: { conditions?: { type: string; reason?: string; message?: string }[] } };
    const upToDate = pool.status?.conditions?.find((c) => c.type === 'UpToDate');
    assert.match(upToDate?.message ?? '', /default\/stuck/, `the pool's condition names the budget: ${JSON.stringify(upToDate)}`);
    assert.equal((await k('get', 'configmap', 'before-upgrade', '-o', 'jsonpath={.data.written}')).trim(), 'before', 'the cluster serves');
    assert.equal(counts.leafRotation.failures, 0, `failed requests during the leaf rotation: ${describeProbe(counts.leafRotation)}`);
  });

  it('a CA rotation in two phases, a worker killed -9 mid-roll: the old kubeconfig works between the phases and is refused after', async () => {
    const oldKc = join(tmp, 'kubeconfig-before-ca');
    const oldText = await downloadKubeconfig(oldKc);
    const pOld = probe(oldText);
    const before = new Set((await machines()).map((m) => m.metadata.name));
    const began = Date.now();
    const name = await start(['cluster', 'rotate-certificates', C, '--ca']);

    // Phase 1 re-issued the admin kubeconfig: the new one is what a user downloads now.
    await waitUntil('phase 1 begun (reissue)', 300_000, async () => (stepState(await getOp(name), 'reissue') === 'Succeeded' ? true : undefined), 500);
    const newKc = join(tmp, 'kubeconfig-after-ca');
    const newText = await downloadKubeconfig(newKc);
    assert.notEqual(newText, oldText, 'the admin kubeconfig was re-issued');
    const pNew = probe(newText);

    // Machines are watched (polled) until the end: how many workers at once, who replaces whom.
    let mostWorkers = 0;
    const twoSuccessors: string[] = [];
    watching = true;
    const poll = (async () => {
      while (watching) {
        const live = (await machines().catch(() => [])).filter((m) => !m.metadata.deletionTimestamp);
        mostWorkers = Math.max(mostWorkers, live.filter((m) => m.spec.pool === 'workers').length);
        // A machine replaced twice: two live successors for it at once.
        const replaced = live.flatMap((m) => m.metadata.annotations?.['marina.dev/replaces'] ?? []);
        for (const r of replaced) if (replaced.indexOf(r) !== replaced.lastIndexOf(r) && !twoSuccessors.includes(r)) twoSuccessors.push(r);
        await new Promise((r) => setTimeout(r, 300));
      }
    })();

    // Mid-roll of the workers (phase 1): an old worker that is not the one being replaced, killed -9.
    let victim: string | undefined;
    await waitUntil('a worker successor in flight', 600_000, async () => {
      if (await endedEarly(name)) return true;
      const ms = (await machines()).filter((m) => m.spec.pool === 'workers' && !m.metadata.deletionTimestamp);
      const replaced = new Set(ms.flatMap((m) => (before.has(m.metadata.name) ? [] : [m.metadata.annotations?.['marina.dev/replaces'] ?? ''])));
      if (replaced.size === 0) return undefined;
      victim = ms.find((m) => before.has(m.metadata.name) && !replaced.has(m.metadata.name))?.metadata.name;
      return victim ? true : undefined;
    }, 300);
    assert.equal(await endedEarly(name), undefined, steps(await getOp(name)));
    const pid = machineRecords(dataDir).find((r) => r.name === victim)?.pid;
    assert.ok(pid, `the victim ${victim} has an agent pid`);
    process.kill(-pid, 'SIGKILL');
    console.log(`# killed -9 worker ${victim} mid-roll`);

    // Between the phases: every apiserver serves phase-1 certificates, the old CAs are still trusted.
    await waitUntil('phase 1 rolled (workers step done)', 900_000, async () => {
      const op = await getOp(name);
      return stepState(op, 'workers') === 'Succeeded' || (await endedEarly(name)) ? true : undefined;
    }, 300);
    assert.equal(await endedEarly(name), undefined, steps(await getOp(name)));
    const between = await kubectl(toolchain!, oldKc, ['--request-timeout=15s', 'get', 'configmap', 'before-upgrade', '-o', 'jsonpath={.data.written}']);
    const afterCheck = await getOp(name);
    assert.equal(between.trim(), 'before', 'the old kubeconfig works between the phases');
    assert.equal(stepState(afterCheck, 'finalControlPlanes'), 'Pending', `checked before phase 2 reached the apiservers: ${steps(afterCheck)}`);
    await waitUntil('phase 2 begun', 300_000, async () => (stepState(await getOp(name), 'dropOldCAs') === 'Succeeded' || (await endedEarly(name)) ? true : undefined), 300);
    counts.caPhase1OldKubeconfig = await pOld.stop();

    const op = await ended(name);
    watching = false;
    await poll;
    counts.caRotation = await pNew.stop();
    console.log(`# CA rotation: ${((Date.now() - began) / 1000).toFixed(1)} s; probe with the old kubeconfig until phase 2: ${describeProbe(counts.caPhase1OldKubeconfig)}; probe with the new kubeconfig from phase 1 on: ${describeProbe(counts.caRotation)}`);
    assert.equal(op.status?.phase, 'Succeeded', `${op.status?.message}\n${steps(op)}\n${logs()}`);
    assert.match(op.status?.result?.note ?? '', /keep working until phase 2/);

    // After: the old kubeconfig is refused, the new one works.
    const refused = await kubectl(toolchain!, oldKc, ['--request-timeout=10s', 'get', 'configmap', 'before-upgrade']).then(
      () => '',
      (err: Error) => err.message,
    );
    assert.match(refused, /x509|certificate|Unauthorized|unknown authority/i, `the old kubeconfig is refused: ${refused || 'it worked'}`);
    assert.equal((await kubectl(toolchain!, newKc, ['get', 'configmap', 'before-upgrade', '-o', 'jsonpath={.data.written}'])).trim(), 'before');

    // Healing and the roll agreed on the killed worker.
    const pool = (await api('GET', `/projects/${P}/nodepools/${C}-workers`)).json as { status?: { remediations?: { machine: string; reason: string }[] } };
    assert.equal(pool.status?.remediations?.filter((r) => r.machine === victim).length, 1, `healing replaced ${victim} once: ${JSON.stringify(pool.status?.remediations)}`);
    assert.deepEqual(twoSuccessors, [], 'no machine had two successors at once');
    assert.ok(mostWorkers <= 4, `at most replicas + maxSurge workers at once (saw ${mostWorkers})`);
    const live = (await machines()).filter((m) => !m.metadata.deletionTimestamp);
    assert.equal(live.filter((m) => m.spec.pool === 'workers').length, 3);
    assert.ok(live.every((m) => m.spec.certificates === `${name}.2`), `every machine on phase 2: ${live.map((m) => `${m.metadata.name}=${m.spec.certificates}`).join(', ')}`);
    const ns = await kubectl(toolchain!, newKc, ['get', 'nodes', '-o', 'json']).then((t) => (JSON.parse(t) as { items: NodeJson[] }).items);
    assert.equal(ns.length, 5);
    for (const n of ns) assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', `${n.metadata.name} Ready`);
    assert.equal(counts.caPhase1OldKubeconfig.failures, 0, `failed requests with the old kubeconfig during phase 1: ${describeProbe(counts.caPhase1OldKubeconfig)}`);
    assert.equal(counts.caRotation.failures, 0, `failed requests with the new kubeconfig: ${describeProbe(counts.caRotation)}`);
  });
});
