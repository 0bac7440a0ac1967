// Issue 4's "done when", through the product's real surfaces: a `marina server` process (its own
// process group, its own data directory and loopback block via MARINA_LOCAL_ADDRESS_BASE), the
// `marina` CLI as a newcomer uses it (README), and the real kubectl / etcdctl.
//
// One cluster (3 etcd, 1 control plane, 2 workers: the CLI's defaults) goes through the whole flow:
// login with the admin token file → `cluster create demo` follows progress until Ready →
// `cluster kubeconfig` → kubectl sees Ready Nodes with Marina's labels and runs a Deployment →
// `get machines` agrees → with one etcd member stopped the API stays available → `cluster scale`
// 2 → 4 → 1 workers, kubectl agreeing each time → `cluster delete --wait` leaves no process, no
// process group, no listening port and no machine or endpoint directory.
//
// Skips when the Kubernetes toolchain is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProcessAlive, isProcessGroupAlive } from '../../src/proc/index.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import {
  agentProcesses,
  Cli,
  endpointRecords,
  etcdctl,
  freePort,
  pickAddressBase,
  isOurProcess,
  kubectl,
  listeningPorts,
  machineRecords,
  processesMentioning,
  serverEnv,
  serverLogTail,
  startServerProcess,
  teardown,
  waitUntil,
  type ServerProcess,
} from '../support/marina.js';

const { toolchain, skip } = toolchainOrSkip();
if (skip) console.log(`SKIP e2e newcomer test: ${skip}`);

const PROJECT = 'default'; // created by the server's first start; the newcomer's only project

interface MachineJson {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { cluster: string; pool: string; roles: string[] };
  status?: { phase?: string; address?: string; nodeName?: string; nodeReady?: boolean };
}
interface NodeJson {
  metadata: { name: string; labels: Record<string, string> };
  spec: { taints?: { key: string; effect: string }[] };
  status: { conditions: { type: string; status: string }[]; addresses?: { type: string; address: string }[] };
}
interface PodJson {
  metadata: { name: string };
  spec: { nodeName?: string };
  status: { phase?: string };
}
interface FactsJson {
  machine: string;
  agent: { pid: number };
  processes: { name: string; pid?: number; state: string }[];
}

const isReady = (n: NodeJson) => n.status.conditions.find((c) => c.type === 'Ready')?.status === 'True';

describe('e2e: the newcomer flow through `marina server`, the marina CLI and kubectl', { skip, timeout: 900_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let server: ServerProcess | undefined;
  let cli: Cli;
  let kc = '';
  /** This run's loopback /16 (e.g. `127.142.`), so concurrent runs never share addresses. */
  let addressPrefix = '';
  /** Every machine / endpoint address the cluster ever had (scaled-away machines included). */
  const machineAddresses = new Set<string>();
  const endpointAddresses = new Set<string>();

  const k = (...args: string[]) => kubectl(toolchain!, kc, args);
  const nodes = async (selector?: string): Promise<NodeJson[]> =>
    (JSON.parse(await k('get', 'nodes', ...(selector ? ['-l', selector] : []), '-o', 'json')) as { items: NodeJson[] }).items;
  const machines = async (): Promise<MachineJson[]> => (await cli.json<{ kind: string; items: MachineJson[] }>(['get', 'machines'])).items;
  const noteAddresses = (ms: MachineJson[]) => ms.forEach((m) => m.status?.address && machineAddresses.add(m.status.address));
  const facts = async (address: string): Promise<FactsJson> => {
    const res = await fetch(`http://${address}:10250/facts`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    return (await res.json()) as FactsJson;
  };

  before(async () => {
    if (!toolchain) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-newcomer-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    const port = await freePort();
    const addressBase = await pickAddressBase();
    addressPrefix = addressBase.slice(0, -3);
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${port}`,
      logFile: join(tmp, 'server.log'),
      env: serverEnv({ home: join(tmp, 'home'), toolchain, addressBase }),
    });
  });

  after(() => teardown({ tmp, dataDir, cli, server, cluster: 'demo' }));

  it('logs in with the admin token file written at the first start', async () => {
    assert.ok(server!.bootstrapToken, 'the first start prints a bootstrap admin token');
    const r = await cli.ok(['login', server!.url, '--token-file', join(dataDir, 'admin-token')]);
    assert.match(r.stdout, /admin \(platform admin\)/);
    const me = JSON.parse((await cli.ok(['whoami', '-o', 'json'])).stdout) as { user: string };
    assert.equal(me.user, 'admin');
  });

  it('`marina cluster create demo` follows the default cluster until it is Ready', async () => {
    const r = await cli.run(['cluster', 'create', 'demo', '--timeout', '5m'], 400_000);
    assert.equal(r.code, 0, `cluster create exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${serverLogTail(server!.logFile)}`);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `cluster/demo created in project ${PROJECT}`);
    for (const l of lines.slice(1, -1)) assert.match(l, /^\[\d+\.\ds\] (cluster demo|machine demo-\S+) /, `progress line: ${l}`);
    const created = (pool: string, roles: string) =>
      lines.filter((l) => new RegExp(`^\\[\\d+\\.\\ds\\] machine demo-${pool}-[a-z0-9]{5} created \\(pool ${pool}, roles ${roles}\\)$`).test(l)).length;
    assert.deepEqual([created('etcd', 'etcd'), created('controlplane', 'controlplane'), created('workers', 'worker')], [3, 1, 2], r.stdout);
    const running = lines.filter((l) => /^\[\d+\.\ds\] machine demo-\S+ Running \((\S+)\)$/.exec(l)?.[1]?.startsWith(addressPrefix));
    assert.equal(running.length, 6, `one Running line per machine, at an address of MARINA_LOCAL_ADDRESS_BASE:\n${r.stdout}`);
    assert.ok(lines.some((l) => /^\[\d+\.\ds\] cluster demo Ready$/.test(l)), r.stdout);
    assert.match(lines.at(-1)!, /^cluster "demo" is Ready \(.+\); kubeconfig: marina cluster kubeconfig demo -p default$/, 'the only project is the default');
  });

  it('`marina cluster kubeconfig` gives kubectl a cluster of Ready Nodes with Marina\'s labels', async () => {
    const r = await cli.ok(['cluster', 'kubeconfig', 'demo']);
    kc = join(tmp, 'kc');
    writeFileSync(kc, r.stdout, { mode: 0o600 });
    const cluster = JSON.parse((await cli.ok(['get', 'cluster', 'demo', '-o', 'json'])).stdout) as { status: { endpoint: string; phase: string } };
    assert.equal(cluster.status.phase, 'Ready');
    const endpoint = new URL(cluster.status.endpoint);
    assert.ok(endpoint.hostname.startsWith(addressPrefix), endpoint.hostname);
    endpointAddresses.add(endpoint.hostname);
    assert.match(r.stdout, new RegExp(`server: ${cluster.status.endpoint.replaceAll('.', '\\.')}`), 'kubectl goes through the cluster endpoint');

    assert.equal((await k('get', '--raw', '/readyz')).trim(), 'ok');
    const all = await nodes();
    assert.equal(all.length, 3, 'control plane + 2 workers (etcd-only machines have no Node)');
    for (const n of all) {
      assert.ok(isReady(n), `${n.metadata.name} is Ready`);
      assert.equal(n.metadata.labels['marina.dev/cluster'], 'demo');
      assert.equal(n.metadata.labels['marina.dev/machine'], n.metadata.name);
    }
    const byPool = (p: string) => all.filter((n) => n.metadata.labels['marina.dev/pool'] === p);
    assert.equal(byPool('controlplane').length, 1);
    assert.equal(byPool('workers').length, 2);
    for (const w of byPool('workers')) assert.equal(w.metadata.labels['node-role.kubernetes.io/worker'], '');
    const cp = byPool('controlplane')[0]!;
    assert.equal(cp.metadata.labels['node-role.kubernetes.io/control-plane'], '');
    assert.ok(cp.spec.taints?.some((t) => `${t.key}:${t.effect}` === 'node-role.kubernetes.io/control-plane:NoSchedule'), JSON.stringify(cp.spec.taints));
  });

  it('runs `kubectl create deployment web --image=nginx --replicas=3`; `marina get machines` agrees with kubectl', async () => {
    await k('create', 'deployment', 'web', '--image=nginx', '--replicas=3');
    const pods = await waitUntil('3 Running pods of web', 90_000, async () => {
      const list = (JSON.parse(await k('get', 'pods', '-l', 'app=web', '-o', 'json')) as { items: PodJson[] }).items;
      const run = list.filter((p) => p.status.phase === 'Running');
      return run.length === 3 ? run : undefined;
    });
    const workerNames = (await nodes('marina.dev/pool=workers')).map((n) => n.metadata.name);
    for (const p of pods) assert.ok(workerNames.includes(p.spec.nodeName ?? ''), `${p.metadata.name} runs on a worker, not on the tainted control plane`);

    const ms = await machines();
    noteAddresses(ms);
    assert.equal(ms.length, 6);
    const count = (pool: string) => ms.filter((m) => m.spec.pool === pool).length;
    assert.deepEqual([count('etcd'), count('controlplane'), count('workers')], [3, 1, 2]);
    for (const m of ms) {
      assert.equal(m.spec.cluster, 'demo');
      assert.equal(m.status?.phase, 'Running', `${m.metadata.name} Running`);
      assert.ok(m.status?.address?.startsWith(addressPrefix), `${m.metadata.name} at ${m.status?.address}`);
    }
    assert.equal(new Set(ms.map((m) => m.status?.address)).size, 6, 'every machine has its own address');
    // Machines with a kubelet are exactly kubectl's Nodes, at the same addresses.
    const all = await nodes();
    const withNode = ms.filter((m) => m.spec.pool !== 'etcd');
    assert.deepEqual(withNode.map((m) => m.status?.nodeName).sort(), all.map((n) => n.metadata.name).sort());
    for (const m of withNode) {
      const n = all.find((x) => x.metadata.name === m.status?.nodeName)!;
      assert.equal(m.status?.nodeReady, true);
      assert.equal(n.metadata.labels['marina.dev/pool'], m.spec.pool);
      assert.equal(n.status.addresses?.find((a) => a.type === 'InternalIP')?.address, m.status?.address);
    }
    for (const m of ms.filter((x) => x.spec.pool === 'etcd')) assert.equal(m.status?.nodeName, undefined, 'etcd-only machines have no Node');
    // And the provider's records on disk describe the same machines, each with a live agent.
    const records = machineRecords(dataDir);
    assert.deepEqual(records.map((r) => r.name).sort(), ms.map((m) => m.metadata.name).sort());
    for (const r of records) {
      assert.equal(r.address, ms.find((m) => m.metadata.name === r.name)!.status?.address);
      assert.ok(r.pid && isOurProcess(r.pid, join(r.dir, 'agent.json')), `agent of ${r.name} runs`);
    }
  });

  it('keeps the Kubernetes API available while one of the three etcd members is stopped', async () => {
    const etcdMachines = (await machines()).filter((m) => m.spec.pool === 'etcd');
    assert.equal(etcdMachines.length, 3);
    const dirOf = (name: string) => machineRecords(dataDir).find((r) => r.name === name)!.dir;
    const endpoints = etcdMachines.map((m) => `https://${m.status!.address}:2379`);
    const certDir = dirOf(etcdMachines[0]!.metadata.name);
    // Stop the leader: the hardest case (an election must happen without it).
    const raw = await etcdctl(toolchain!, certDir, endpoints, ['endpoint', 'status', '-w', 'json']);
    const status = JSON.parse(raw.replace(/"(member_id|leader|cluster_id|raft_term)":(\d+)/g, '"$1":"$2"')) as {
      Endpoint: string;
      Status: { header: { member_id: string }; leader: string };
    }[];
    const leader = status.find((s) => s.Status.header.member_id === s.Status.leader);
    assert.ok(leader, `a leader among ${raw}`);
    const victim = etcdMachines.find((m) => leader.Endpoint === `https://${m.status!.address}:2379`)!;
    const victimEndpoint = `https://${victim.status!.address}:2379`;
    const f = await facts(victim.status!.address!);
    const etcdPid = f.processes.find((p) => p.name === 'etcd')?.pid;
    assert.ok(etcdPid && isProcessAlive(etcdPid), `the agent of ${victim.metadata.name} reports its etcd pid: ${JSON.stringify(f.processes)}`);

    // SIGSTOP: the agent sees no exit (so it does not restart etcd); the member just stops
    // answering, like a hung or partitioned machine: peers and clients must route around it.
    process.kill(etcdPid, 'SIGSTOP');
    const stoppedAt = Date.now();
    try {
      await assert.rejects(etcdctl(toolchain!, certDir, [victimEndpoint], ['endpoint', 'health']), 'the stopped member no longer answers');
      // One round: readiness, a write and a (quorum) read through the cluster endpoint, each bounded.
      let n = 0;
      const round = async () => {
        const i = n++;
        const kb = (...args: string[]) => kubectl(toolchain!, kc, ['--request-timeout=10s', ...args], 20_000);
        assert.equal((await kb('get', '--raw', '/readyz')).trim(), 'ok');
        await kb('create', 'configmap', `while-stopped-${i}`, `--from-literal=i=${i}`);
        assert.equal((await kb('get', 'configmap', `while-stopped-${i}`, '-o', 'jsonpath={.data.i}')).trim(), String(i));
      };
      // A hung member holds the requests that kube-apiserver's etcd client already sent it until
      // the client's keepalive gives up on the connection (upstream: 30 s + 10 s); the leader's
      // election is quicker. So first wait until the API answers steadily ...
      let streak = 0;
      await waitUntil('the API answering steadily with one etcd member stopped', 180_000, async () => {
        try {
          await round();
        } catch (err) {
          streak = 0;
          throw err;
        }
        return ++streak >= 3 ? true : undefined;
      }, 200);
      console.log(`# API steady ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s after stopping the etcd leader`);
      // ... then it must keep answering, reads and writes alike, for as long as the member is down.
      for (let i = 0; i < 10; i++) await round();
      const health = await etcdctl(toolchain!, certDir, endpoints.filter((e) => e !== victimEndpoint), ['endpoint', 'health']);
      assert.equal(health.split('\n').filter((l) => / is healthy/.test(l)).length, 2, `the other two members are healthy: ${health}`);
      const stillStopped = await etcdctl(toolchain!, certDir, [victimEndpoint], ['endpoint', 'health']).then(() => false, () => true);
      assert.ok(stillStopped, 'the member was stopped for the whole check');
    } finally {
      process.kill(etcdPid, 'SIGCONT');
    }
    // The member catches up, and the cluster is whole again.
    await waitUntil('all three etcd members healthy', 60_000, async () => {
      const out = await etcdctl(toolchain!, certDir, endpoints, ['endpoint', 'health']);
      return out.split('\n').filter((l) => / is healthy/.test(l)).length === 3 ? true : undefined;
    });
    assert.equal((await facts(victim.status!.address!)).processes.find((p) => p.name === 'etcd')?.pid, etcdPid, 'etcd was stopped and continued, never restarted');
    await cli.ok(['cluster', 'wait', 'demo', '--timeout', '2m'], 150_000);
  });

  it('scales the workers 2 → 4 → 1 with `marina cluster scale --wait`; kubectl agrees each time', async () => {
    for (const [from, to] of [
      [2, 4],
      [4, 1],
    ] as const) {
      const r = await cli.run(['cluster', 'scale', 'demo', '--pool', 'workers', '--replicas', String(to), '--wait', '--timeout', '4m'], 300_000);
      assert.equal(r.code, 0, `scale to ${to} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${serverLogTail(server!.logFile)}`);
      assert.match(r.stdout, new RegExp(`^cluster/demo scaled \\(pool workers: ${from} → ${to}\\)\n`));
      assert.match(r.stdout, /\ncluster "demo" is Ready \(.+\)\n$/);
      // Right after --wait returns: Kubernetes, Marina's Machines and the provider's records agree.
      const workers = await nodes('marina.dev/pool=workers');
      assert.equal(workers.length, to, `${to} worker Nodes: ${workers.map((n) => n.metadata.name).join(' ')}`);
      for (const n of workers) assert.ok(isReady(n), `${n.metadata.name} Ready`);
      const ms = await machines();
      noteAddresses(ms);
      const workerMachines = ms.filter((m) => m.spec.pool === 'workers');
      assert.deepEqual(workerMachines.map((m) => m.status?.nodeName).sort(), workers.map((n) => n.metadata.name).sort());
      for (const m of workerMachines) assert.equal(m.status?.phase, 'Running');
      assert.equal(machineRecords(dataDir).filter((r) => r.name.startsWith('demo-workers-')).length, to, 'one machine directory per worker');
      assert.equal((await nodes()).length, 1 + to);
    }
    // The Deployment's pods moved to the one remaining worker.
    const [last] = (await nodes('marina.dev/pool=workers')).map((n) => n.metadata.name);
    await waitUntil('3 Running pods on the last worker', 120_000, async () => {
      const list = (JSON.parse(await k('get', 'pods', '-l', 'app=web', '-o', 'json')) as { items: PodJson[] }).items;
      return list.filter((p) => p.status.phase === 'Running' && p.spec.nodeName === last).length === 3 ? true : undefined;
    });
  });

  it('`marina cluster delete demo --wait` leaves no process, process group, port or directory', async () => {
    const records = machineRecords(dataDir);
    const endpoints = endpointRecords(dataDir);
    assert.equal(records.length, 5, '3 etcd + 1 control plane + 1 worker');
    assert.equal(endpoints.length, 1);
    for (const e of endpoints) endpointAddresses.add(e.address);
    for (const r of records) machineAddresses.add(r.address);
    // Every process of the cluster, as the machines report them.
    const groups = [...records.map((r) => r.pid!), endpoints[0]!.pid!];
    const pids = new Set<number>(groups);
    for (const r of records) {
      const f = await facts(r.address);
      assert.equal(f.agent.pid, r.pid);
      for (const p of f.processes) if (p.pid) pids.add(p.pid);
    }
    assert.ok(pids.size >= 5 + 1 + 3 + 3, `agents, balancer, 3 etcd, kube-apiserver, controller-manager, scheduler: ${[...pids].join(' ')}`);
    assert.equal(agentProcesses(dataDir).length, 5);

    const r = await cli.run(['cluster', 'delete', 'demo', '--wait', '--timeout', '4m'], 300_000);
    assert.equal(r.code, 0, `delete exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stdout, /^cluster\/demo deletion started/);
    assert.match(r.stdout, /\ncluster\/demo deleted \(.+\)\n$/);

    // Right after --wait returns, nothing is left.
    assert.deepEqual((await cli.json<{ items: unknown[] }>(['get', 'clusters'])).items, []);
    assert.deepEqual(await machines(), []);
    assert.deepEqual((await cli.json<{ items: unknown[] }>(['get', 'nodepools'])).items, []);
    assert.deepEqual([...pids].filter(isProcessAlive), [], 'no process of the cluster is alive');
    assert.deepEqual(groups.filter(isProcessGroupAlive), [], 'no process group of the cluster is alive');
    assert.deepEqual(processesMentioning(join(dataDir, 'local')), [], 'no process runs from the provider\'s directories');
    assert.deepEqual(await listeningPorts(machineAddresses, endpointAddresses), [], 'no port is left listening');
    for (const sub of ['machines', 'endpoints']) {
      const p = join(dataDir, 'local', sub);
      assert.deepEqual(existsSync(p) ? readdirSync(p) : [], [], `local/${sub} is empty`);
    }
    // The server itself is untouched.
    assert.ok(server!.running());
  });
});
