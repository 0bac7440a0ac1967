// Issue 5's chaos tests, with real processes: a `marina server` process runs one cluster (3 etcd,
// 1 control plane, 5 workers with a 40 % storm guard) and this test breaks its machines the hard
// way — SIGKILL of a machine's whole process group, SIGSTOP to freeze one — while a webhook
// receiver on 127.0.0.1 collects the notifications Marina sends.
//
//   worker killed         → replaced and Ready, its pods rescheduled, its Node gone
//   etcd member killed    → replaced one at a time; the survivors answer healthy throughout;
//                           a key written before is read after; after the second replacement
//                           the control plane is replaced (surge first) with one that knows them
//   only control plane    → replaced; the API answers again with the data intact
//   a node that flaps     → not replaced when it recovers within the unhealthy timeout; replaced
//                           exactly once when it does not, even though it comes back meanwhile
//   3 of 5 workers killed → 2 replaced at first, HealingHeldBack fires, the third follows once a
//                           replacement is healthy (never more than 2 in flight), the alert resolves
//   the receiver got firing and resolved notifications; deleting the cluster leaves nothing.
//
// Skips when the Kubernetes toolchain is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { toolchainOrSkip } from '../support/controlplane.js';
import {
  apiRequest,
  Cli,
  etcdctl,
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

const { toolchain, skip } = toolchainOrSkip();
if (skip) console.log(`SKIP e2e healing test: ${skip}`);

const PROJECT = 'default';
const CLUSTER = 'chaos';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  lastTransitionTime?: string;
}
interface MachineJson {
  metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string };
  spec: { pool: string; roles: string[]; labels?: Record<string, string> };
  status?: { phase?: string; address?: string; nodeReady?: boolean; conditions?: Condition[] };
}
interface PoolJson {
  status?: { remediations?: { machine: string; reason: string; at: string }[]; conditions?: Condition[]; healthyReplicas?: number };
}
interface AlertJson {
  spec: { rule: string; labels?: Record<string, string> };
  status?: { state?: string };
}
interface WebhookPayload {
  status: string;
  alerts: { status: string; labels: Record<string, string> }[];
}

const cond = (c: Condition[] | undefined, type: string) => c?.find((x) => x.type === type);
const healthy = (m: MachineJson) => m.status?.phase === 'Running' && cond(m.status.conditions, 'Healthy')?.status === 'True' && m.status.nodeReady !== false;

describe('e2e: health checks, alerts and auto-healing under real failures', { skip, timeout: 1_200_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let server: ServerProcess | undefined;
  let cli: Cli | undefined;
  let token = '';
  let kc = '';
  let receiver: http.Server | undefined;
  const received: WebhookPayload[] = [];

  const api = async (method: string, path: string, body?: unknown) => apiRequest(server!.url, token, method, path, body);
  const k = (...args: string[]) => kubectl(toolchain!, kc, ['--request-timeout=10s', ...args], 20_000);
  const machines = async (): Promise<MachineJson[]> => {
    const r = await api('GET', `/projects/${PROJECT}/machines?labelSelector=marina.dev/cluster%3D${CLUSTER}`);
    assert.equal(r.status, 200, r.text);
    return r.json.items as MachineJson[];
  };
  const pool = async (name: string): Promise<PoolJson> => (await api('GET', `/projects/${PROJECT}/nodepools/${CLUSTER}-${name}`)).json as PoolJson;
  const remediations = async (name: string) => (await pool(name)).status?.remediations ?? [];
  const alerts = async (): Promise<AlertJson[]> => (await api('GET', `/projects/${PROJECT}/alerts`)).json.items as AlertJson[];
  const pid = (machine: string): number => {
    const r = machineRecords(dataDir).find((x) => x.name === machine);
    assert.ok(r?.pid, `machine ${machine} has an agent pid on disk`);
    return r.pid;
  };
  const kill = (machine: string) => process.kill(-pid(machine), 'SIGKILL');
  /** Every pool at full strength, every machine Running and Healthy, the cluster Ready. */
  const settled = async (what: string, timeoutMs = 180_000) =>
    waitUntil(what, timeoutMs, async () => {
      const ms = await machines();
      const c = (await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).json as { status?: { phase?: string } };
      const live = ms.filter((m) => !m.metadata.deletionTimestamp);
      const count = (p: string) => live.filter((m) => m.spec.pool === p).length;
      const ok = c.status?.phase === 'Ready' && ms.length === live.length && count('etcd') === 3 && count('cp') === 1 && count('workers') === 5 && live.every(healthy);
      return ok ? ms : undefined;
    }, 500);
  const pick = (ms: MachineJson[], p: string) => ms.filter((m) => m.spec.pool === p).map((m) => m.metadata.name);
  const fail = (msg: string) => `${msg}\n${serverLogTail(server!.logFile, 6000)}`;

  before(async () => {
    if (!toolchain) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-healing-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        try {
          received.push(JSON.parse(body) as WebhookPayload);
        } catch {
          /* not ours */
        }
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', r));
    const port = await freePort();
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${port}`,
      logFile: join(tmp, 'server.log'),
      env: serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase() }),
    });
    token = server.bootstrapToken!;
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token')]);
  });

  after(async () => {
    await teardown({ tmp, dataDir, ...(cli ? { cli } : {}), ...(server ? { server } : {}), cluster: CLUSTER });
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
  });

  it('creates a cluster with fast checks and a 40 % storm guard, and a webhook channel', async () => {
    const ch = await api('POST', `/projects/${PROJECT}/notificationchannels`, {
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'NotificationChannel',
      metadata: { name: 'receiver' },
      spec: { type: 'webhook', url: `http://127.0.0.1:${(receiver!.address() as AddressInfo).port}/hook` },
    });
    assert.equal(ch.status, 201, ch.text);
    const r = await api('POST', `/projects/${PROJECT}/clusters`, {
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'Cluster',
      metadata: { name: CLUSTER },
      spec: {
        health: { intervalSeconds: 1, metricsIntervalSeconds: 5 },
        nodePools: [
          { name: 'etcd', roles: ['etcd'], replicas: 3 },
          { name: 'cp', roles: ['controlplane'], replicas: 1 },
          { name: 'workers', roles: ['worker'], replicas: 5, labels: { tier: 'web' }, healing: { maxInFlight: '40%', unhealthyTimeoutSeconds: 4, drainTimeoutSeconds: 20 } },
        ],
      },
    });
    assert.equal(r.status, 201, r.text);
    await settled('the cluster Ready with 9 healthy machines', 400_000).catch((e: Error) => assert.fail(fail(e.message)));
    const kcRes = await fetch(`${server!.url}/api/v1alpha1/projects/${PROJECT}/clusters/${CLUSTER}/kubeconfig`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(kcRes.status, 200);
    kc = join(tmp, 'kubeconfig');
    writeFileSync(kc, await kcRes.text(), { mode: 0o600 });
    await k('create', 'configmap', 'before', '--from-literal=written=before-the-chaos');
    await k('create', 'deployment', 'web', '--image=nginx', '--replicas=4');
    await waitUntil('4 Running pods of web', 120_000, async () => {
      const pods = JSON.parse(await k('get', 'pods', '-l', 'app=web', '-o', 'json')).items as { status: { phase?: string } }[];
      return pods.filter((p) => p.status.phase === 'Running').length === 4 ? true : undefined;
    });
    const health = await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.json.latest.healthy, true, JSON.stringify(health.json.latest.checks.filter((c: { ok: boolean }) => !c.ok)));
    assert.equal(health.json.latest.nodes.length, 6, 'control plane + 5 workers register Nodes');
  });

  it('kill -9 of a worker: replaced and Ready, its pods rescheduled, its Node gone', async () => {
    const pods = JSON.parse(await k('get', 'pods', '-l', 'app=web', '-o', 'json')).items as { metadata: { name: string }; spec: { nodeName: string } }[];
    const victim = pods[0]!.spec.nodeName;
    kill(victim);
    await waitUntil('the worker remediated', 60_000, async () => ((await remediations('workers')).some((r) => r.machine === victim) ? true : undefined));
    const ms = await settled('the worker pool back to 5 healthy machines').catch((e: Error) => assert.fail(fail(e.message)));
    assert.ok(!ms.some((m) => m.metadata.name === victim));
    for (const m of ms.filter((x) => x.spec.pool === 'workers')) assert.deepEqual(m.spec.labels, { tier: 'web' }, 'replacements keep the pool labels');
    const rs = (await remediations('workers')).filter((r) => r.machine === victim);
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.reason, 'MachineFailed');
    await waitUntil('4 Running pods of web, none on the dead node, which is gone', 120_000, async () => {
      const now = JSON.parse(await k('get', 'pods', '-l', 'app=web', '-o', 'json')).items as { spec: { nodeName?: string }; status: { phase?: string }; metadata: { deletionTimestamp?: string } }[];
      const running = now.filter((p) => p.status.phase === 'Running' && !p.metadata.deletionTimestamp);
      const nodes = (JSON.parse(await k('get', 'nodes', '-o', 'json')).items as { metadata: { name: string } }[]).map((n) => n.metadata.name);
      return running.length === 4 && running.every((p) => p.spec.nodeName !== victim) && !nodes.includes(victim) ? true : undefined;
    });
  });

  /** Kills one etcd follower among `among`; returns once it is replaced, with the survivors probed throughout. */
  async function killEtcdFollower(among: ReadonlySet<string>): Promise<{ victim: string; probes: number; unhealthy: string[] }> {
    const etcd = (await machines()).filter((m) => m.spec.pool === 'etcd');
    const endpointOf = (m: MachineJson) => `https://${m.status!.address!}:2379`;
    const certDir = machineRecords(dataDir).find((r) => r.name === etcd[0]!.metadata.name)!.dir;
    // Kill a follower: a leader's death would add an election (a second or two without a leader)
    // that is not a loss of quorum but looks like one to a health probe.
    const status = JSON.parse(await etcdctl(toolchain!, certDir, etcd.map(endpointOf), ['endpoint', 'status', '-w', 'json'])) as { Endpoint: string; Status: { leader: string; header: { member_id: string } } }[];
    const follower = status.find((s) => s.Status.leader !== s.Status.header.member_id && among.has(etcd.find((m) => endpointOf(m) === s.Endpoint)?.metadata.name ?? ''));
    assert.ok(follower, `a follower among ${[...among].join(', ')}: ${JSON.stringify(status)}`);
    const victim = etcd.find((m) => endpointOf(m) === follower.Endpoint)!;
    const survivors = etcd.filter((m) => m !== victim);
    const survivorDir = machineRecords(dataDir).find((r) => r.name === survivors[0]!.metadata.name)!.dir;
    kill(victim.metadata.name);
    let probes = 0;
    const unhealthy: string[] = [];
    let done = false;
    const monitor = (async () => {
      while (!done) {
        try {
          await etcdctl(toolchain!, survivorDir, survivors.map(endpointOf), ['endpoint', 'health']);
        } catch (err) {
          unhealthy.push((err as Error).message.slice(0, 300));
        }
        probes++;
        await sleep(300);
      }
    })();
    try {
      await waitUntil('the etcd member remediated', 60_000, async () => ((await remediations('etcd')).some((r) => r.machine === victim.metadata.name) ? true : undefined));
      await settled('etcd back to 3 healthy members').catch((e: Error) => assert.fail(fail(e.message)));
    } finally {
      done = true;
      await monitor;
    }
    const members = JSON.parse(await etcdctl(toolchain!, survivorDir, survivors.map(endpointOf), ['member', 'list', '-w', 'json'])) as { members: { name?: string; isLearner?: boolean }[] };
    assert.equal(members.members.length, 3);
    assert.ok(members.members.every((m) => !m.isLearner), 'the new member was promoted');
    // Members are named after their machines (a replacement may reuse the freed address).
    assert.ok(!members.members.some((m) => m.name === victim.metadata.name), `the dead member was removed: ${JSON.stringify(members.members)}`);
    return { victim: victim.metadata.name, probes, unhealthy };
  }

  it('kill -9 of an etcd member, twice: replaced one at a time, the survivors healthy throughout, data intact, the apiserver refreshed', async () => {
    const [cp] = pick(await machines(), 'cp');
    // Both victims are members the control plane's apiserver was started with.
    const original = new Set(pick(await machines(), 'etcd'));
    const first = await killEtcdFollower(original);
    original.delete(first.victim);
    assert.ok(first.probes >= 3, `the survivors were probed (${first.probes} times)`);
    assert.deepEqual(first.unhealthy, [], 'the surviving members answered healthy at every probe: quorum was never lost');
    assert.equal((await k('get', 'configmap', 'before', '-o', 'jsonpath={.data.written}')).trim(), 'before-the-chaos');
    assert.deepEqual(await remediations('cp'), [], 'its apiserver still knows two live members: left alone');

    // A second replacement would leave the apiserver knowing one live member (its etcd client
    // never learns new ones): Marina replaces the control plane with one that knows them all.
    const second = await killEtcdFollower(original);
    assert.deepEqual(second.unhealthy, [], 'quorum never lost during the second replacement either');
    const refreshed = await waitUntil('the control plane refreshed', 90_000, async () => (await remediations('cp')).find((r) => r.machine === cp && r.reason === 'EtcdEndpointsStale'));
    const after = await settled('a refreshed control plane').catch((e: Error) => assert.fail(fail(e.message)));
    // The working control plane was removed only once its replacement was up (a surge), so a
    // single-control-plane cluster kept its API.
    const successor = after.find((m) => m.spec.pool === 'cp')! as MachineJson & { metadata: { annotations?: Record<string, string> } };
    assert.equal(successor.metadata.annotations?.['marina.dev/replaces'], cp);
    const upSince = cond(successor.status?.conditions, 'Healthy')?.lastTransitionTime ?? '';
    assert.ok(Date.parse(upSince) <= Date.parse(refreshed.at), `the successor was healthy (${upSince}) before ${cp} was removed (${refreshed.at})`);
    await waitUntil('the API through the endpoint', 60_000, async () => ((await k('get', '--raw', '/readyz').catch(() => '')).trim() === 'ok' ? true : undefined));
    assert.equal((await k('get', 'configmap', 'before', '-o', 'jsonpath={.data.written}')).trim(), 'before-the-chaos');
  });

  it('kill -9 of the only control-plane machine: replaced, the API answers again, data intact', async () => {
    const [victim] = pick(await machines(), 'cp');
    kill(victim!);
    await waitUntil('the control plane remediated', 60_000, async () => ((await remediations('cp')).some((r) => r.machine === victim) ? true : undefined));
    await settled('a new control plane').catch((e: Error) => assert.fail(fail(e.message)));
    await waitUntil('the API through the endpoint', 60_000, async () => ((await k('get', '--raw', '/readyz').catch(() => '')).trim() === 'ok' ? true : undefined));
    assert.equal((await k('get', 'configmap', 'before', '-o', 'jsonpath={.data.written}')).trim(), 'before-the-chaos');
    // No worker was touched while the API was away: their agents answered, so none was judged broken.
    const workerRemediations = (await remediations('workers')).length;
    assert.equal(workerRemediations, 1, 'only the worker killed earlier was ever replaced');
  });

  it('a node that flaps within the unhealthy timeout is left alone; one that stays down is replaced exactly once', async () => {
    const [victim] = pick(await machines(), 'workers');
    const group = -pid(victim!);
    // Frozen for less than the 4 s unhealthy timeout: detected, not replaced.
    process.kill(group, 'SIGSTOP');
    await sleep(2000);
    process.kill(group, 'SIGCONT');
    await sleep(8000);
    assert.equal((await remediations('workers')).filter((r) => r.machine === victim).length, 0, 'a short flap is not remediated');
    const back = (await machines()).find((m) => m.metadata.name === victim);
    assert.ok(back && healthy(back), `the flapping machine is healthy again: ${JSON.stringify(back?.status?.conditions)}`);

    // Frozen past the timeout: replaced; it comes back during its removal and is still replaced once.
    process.kill(group, 'SIGSTOP');
    try {
      await waitUntil('the frozen worker remediated', 60_000, async () => ((await remediations('workers')).some((r) => r.machine === victim) ? true : undefined));
    } finally {
      process.kill(group, 'SIGCONT');
    }
    await settled('the worker pool back to 5 healthy machines').catch((e: Error) => assert.fail(fail(e.message)));
    await sleep(5000);
    const rs = (await remediations('workers')).filter((r) => r.machine === victim);
    assert.equal(rs.length, 1, 'one failure, one replacement');
    assert.equal(rs[0]!.reason, 'Unhealthy');
    assert.equal((await machines()).filter((m) => m.spec.pool === 'workers').length, 5);
  });

  it('3 of 5 workers killed with a 40 % guard: 2 replaced first, HealingHeldBack fires, the third follows, the alert resolves', async () => {
    const before = (await remediations('workers')).length;
    const victims = pick(await machines(), 'workers').slice(0, 3);
    const killedAt = new Date().toISOString();
    for (const v of victims) kill(v);
    const held = await waitUntil('HealingHeldBack on the worker pool', 60_000, async () => {
      const p = await pool('workers');
      const c = cond(p.status?.conditions, 'HealingHeldBack');
      return c?.status === 'True' ? p : undefined;
    }, 200);
    const first = (held.status?.remediations ?? []).slice(before);
    assert.equal(first.length, 2, `exactly 2 remediated at first: ${JSON.stringify(first)}`);
    assert.equal(cond(held.status?.conditions, 'HealingHeldBack')?.reason, 'MaxInFlight');
    await waitUntil('HealingHeldBack alert firing', 30_000, async () =>
      (await alerts()).some((a) => a.spec.rule === 'HealingHeldBack' && a.status?.state === 'firing') ? true : undefined,
    );
    const ms = await settled('all 5 workers healthy again').catch((e: Error) => assert.fail(fail(e.message)));
    const all = (await remediations('workers')).slice(before);
    assert.deepEqual(all.map((r) => r.machine).sort(), [...victims].sort(), 'each killed worker replaced once');
    // The guard bounds replacements in flight to 2: the third went only once one of the first two
    // replacements was healthy.
    const third = all[2]!;
    // Successors created since the kill: the first remediation's time as the lower bound once left
    // out a successor created in the same millisecond range (a CI dry run; 1 of 2 counted).
    const replacements = ms.filter((m) => m.spec.pool === 'workers' && !victims.includes(m.metadata.name) && m.metadata.creationTimestamp > killedAt && m.metadata.creationTimestamp < third.at);
    assert.equal(replacements.length, 2, `two replacements created before the third remediation: ${JSON.stringify(ms.map((m) => [m.metadata.name, m.metadata.creationTimestamp]))}`);
    // Condition times have whole seconds; the remediation record has milliseconds.
    const healthyBefore = replacements.filter((m) => Date.parse(cond(m.status?.conditions, 'Healthy')?.lastTransitionTime ?? '') <= Date.parse(third.at));
    assert.ok(healthyBefore.length >= 1, `a replacement was healthy before the third remediation (${third.at}): ${JSON.stringify(replacements.map((m) => cond(m.status?.conditions, 'Healthy')))}`);
    await waitUntil('HealingHeldBack resolved', 30_000, async () =>
      (await alerts()).some((a) => a.spec.rule === 'HealingHeldBack' && a.status?.state === 'resolved') ? true : undefined,
    );
  });

  it('the webhook receiver got firing and resolved notifications', async () => {
    const seen = (rule: string, status: string) => received.some((p) => p.alerts.some((a) => a.labels.alertname === rule && a.status === status));
    await waitUntil('notifications delivered', 60_000, async () =>
      seen('HealingHeldBack', 'firing') && seen('HealingHeldBack', 'resolved') && seen('ComponentUnhealthy', 'firing') && seen('ComponentUnhealthy', 'resolved') ? true : undefined,
    );
  });

  it('deleting the cluster stops everything it ran', async () => {
    const r = await cli!.run(['cluster', 'delete', CLUSTER, '--wait', '--timeout', '3m'], 200_000);
    assert.equal(r.code, 0, fail(r.stderr));
    assert.deepEqual(machineRecords(dataDir), []);
  });
});
