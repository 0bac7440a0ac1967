// Issue 4's "done when": Marina restarted in the middle of provisioning converges to the same
// result. A real `marina server` process starts creating the default cluster (`marina cluster
// create --no-wait`); as soon as one Machine is Running (the cluster far from Ready) the server's
// process group gets SIGTERM. The machines are process groups of their own and keep running. A
// new server on the same data directory adopts them and finishes the job: exactly the spec's
// machines, one live agent each (the ones that ran before the restart are the same processes),
// exactly three etcd members, Ready Nodes. Then `cluster delete --wait` leaves nothing.
//
// Skips when the Kubernetes toolchain is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProcessGroupAlive } from '../../src/proc/index.js';
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
if (skip) console.log(`SKIP e2e restart test: ${skip}`);

const SPEC: Record<string, number> = { etcd: 3, controlplane: 1, workers: 2 };

interface MachineJson {
  metadata: { name: string };
  spec: { pool: string; roles: string[] };
  status?: { phase?: string; address?: string; nodeName?: string; nodeReady?: boolean };
}
interface ClusterJson {
  status?: { phase?: string; endpoint?: string };
}
interface Member {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

describe('e2e: Marina restarted in the middle of provisioning converges', { skip, timeout: 900_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let listen = '';
  let addressBase = '';
  let server: ServerProcess | undefined;
  let cli: Cli;
  const env = () => serverEnv({ home: join(tmp, 'home'), toolchain: toolchain!, addressBase });
  const machines = async (): Promise<MachineJson[]> => (await cli.json<{ items: MachineJson[] }>(['get', 'machines'])).items;
  /** Agent pid per machine name, as recorded before the restart. */
  const agentsBefore = new Map<string, number>();
  const machineAddresses = new Set<string>();
  const endpointAddresses = new Set<string>();

  before(async () => {
    if (!toolchain) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-restart-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    listen = `127.0.0.1:${await freePort()}`;
    addressBase = await pickAddressBase(); // this run's own loopback /16, kept across the restart
    server = await startServerProcess({ dataDir, listen, logFile: join(tmp, 'server.log'), env: env() });
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token')]);
  });

  after(() => teardown({ tmp, dataDir, cli, server, cluster: 'demo' }));

  it('stops the server (SIGTERM to its process group) while the cluster is provisioning; the machines keep running', async () => {
    const created = await cli.ok(['cluster', 'create', 'demo', '--no-wait']);
    assert.equal(created.stdout, 'cluster/demo created in project default\n');
    const seen = await waitUntil(
      'a Running machine of a cluster that is not Ready yet',
      180_000,
      async () => {
        const ms = await machines();
        if (!ms.some((m) => m.status?.phase === 'Running')) return undefined;
        const c = JSON.parse((await cli.ok(['get', 'cluster', 'demo', '-o', 'json'])).stdout) as ClusterJson;
        return { ms, phase: c.status?.phase };
      },
      200,
    );
    const stopped = await server!.stop();
    assert.notEqual(seen.phase, 'Ready', 'stopped in the middle of provisioning');
    assert.deepEqual(stopped, { code: 0, signal: null, killed: false }, `clean shutdown\n${serverLogTail(server!.logFile)}`);
    assert.match(server!.log(), /SIGTERM: shutting down/);
    const running = seen.ms.filter((m) => m.status?.phase === 'Running').map((m) => m.metadata.name);
    console.log(`# stopped with ${seen.ms.length} machines (${running.length} Running: ${running.join(', ')}), cluster ${seen.phase ?? 'without status'}`);

    // What the provider started survives the server: every recorded agent still runs.
    const records = machineRecords(dataDir);
    assert.ok(records.length >= 1);
    for (const r of records) {
      machineAddresses.add(r.address);
      if (!r.pid) continue;
      assert.ok(isOurProcess(r.pid, join(r.dir, 'agent.json')), `agent of ${r.name} (pid ${r.pid}) survived the server`);
      agentsBefore.set(r.name, r.pid);
    }
    for (const name of running) assert.ok(agentsBefore.has(name), `the Running machine ${name} has a recorded agent`);
  });

  it('a new server on the same data directory converges to Ready with exactly the spec\'s machines', async () => {
    server = await startServerProcess({ dataDir, listen, logFile: join(tmp, 'server.log'), env: env() });
    assert.equal(server.bootstrapToken, undefined, 'a restart does not bootstrap again');
    const r = await cli.run(['cluster', 'wait', 'demo', '--timeout', '5m'], 400_000);
    assert.equal(r.code, 0, `cluster wait exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${serverLogTail(server.logFile)}`);
    assert.match(r.stdout, /cluster "demo" is Ready\n$/);

    const ms = await machines();
    for (const m of ms) if (m.status?.address) machineAddresses.add(m.status.address);
    const perPool: Record<string, string[]> = {};
    for (const m of ms) (perPool[m.spec.pool] ??= []).push(m.metadata.name);
    assert.deepEqual(Object.fromEntries(Object.entries(perPool).map(([p, names]) => [p, names.length])), SPEC, `machines per pool: ${JSON.stringify(perPool)}`);
    for (const m of ms) assert.equal(m.status?.phase, 'Running', `${m.metadata.name} Running`);

    // On disk: one directory per Machine, nothing else; one live agent per machine, and no other agent.
    const records = machineRecords(dataDir);
    assert.deepEqual(records.map((x) => x.name).sort(), ms.map((m) => m.metadata.name).sort(), 'machine directories = Machines');
    const agents = agentProcesses(dataDir);
    assert.equal(agents.length, ms.length, `one agent process per machine: ${JSON.stringify(agents)}`);
    for (const rec of records) {
      assert.ok(rec.pid && isOurProcess(rec.pid, join(rec.dir, 'agent.json')), `agent of ${rec.name} alive`);
      assert.deepEqual(agents.filter((a) => a.config === join(rec.dir, 'agent.json')).map((a) => a.pid), [rec.pid], `exactly the recorded agent runs for ${rec.name}`);
    }
    // The machines that ran before the restart were adopted, not started again.
    for (const [name, pid] of agentsBefore) assert.equal(records.find((x) => x.name === name)?.pid, pid, `${name} kept its agent`);
    // One endpoint, one balancer.
    const endpoints = endpointRecords(dataDir);
    assert.equal(endpoints.length, 1);
    endpointAddresses.add(endpoints[0]!.address);
    assert.ok(endpoints[0]!.pid && isOurProcess(endpoints[0]!.pid, join(endpoints[0]!.dir, 'lb.json')));
    assert.equal(processesMentioning(join(dataDir, 'local', 'endpoints') + '/').length, 1, 'one load balancer process');

    // etcd: exactly the three members of the three etcd machines, all voting.
    const etcdMachines = ms.filter((m) => m.spec.pool === 'etcd');
    const certDir = records.find((x) => x.name === etcdMachines[0]!.metadata.name)!.dir;
    const raw = await etcdctl(toolchain!, certDir, etcdMachines.map((m) => `https://${m.status!.address}:2379`), ['member', 'list', '-w', 'json']);
    const members = (JSON.parse(raw.replace(/"(ID|member_id|cluster_id|raft_term)":(\d+)/g, '"$1":"$2"')) as { members: Member[] }).members;
    assert.equal(members.length, 3, `etcd members: ${raw}`);
    assert.deepEqual(members.map((m) => m.peerURLs.join(',')).sort(), etcdMachines.map((m) => `https://${m.status!.address}:2380`).sort());
    assert.deepEqual(members.map((m) => m.name).sort(), etcdMachines.map((m) => m.metadata.name).sort(), 'every member started under its machine name');
    for (const m of members) assert.ok(!m.isLearner, `${m.name} votes`);

    // kubectl sees the Nodes of exactly these machines, Ready.
    const kc = join(tmp, 'kc');
    writeFileSync(kc, (await cli.ok(['cluster', 'kubeconfig', 'demo'])).stdout, { mode: 0o600 });
    const nodes = (JSON.parse(await kubectl(toolchain!, kc, ['get', 'nodes', '-o', 'json'])) as {
      items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[];
    }).items;
    assert.deepEqual(nodes.map((n) => n.metadata.name).sort(), ms.filter((m) => m.spec.pool !== 'etcd').map((m) => m.metadata.name).sort());
    for (const n of nodes) assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', `${n.metadata.name} Ready`);
  });

  it('`marina cluster delete --wait` after the restart leaves no process, port or directory', async () => {
    const groups = [...machineRecords(dataDir).map((r) => r.pid!), ...endpointRecords(dataDir).map((e) => e.pid!)];
    const r = await cli.run(['cluster', 'delete', 'demo', '--wait', '--timeout', '4m'], 300_000);
    assert.equal(r.code, 0, `delete exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.deepEqual(await machines(), []);
    assert.deepEqual(groups.filter(isProcessGroupAlive), [], 'no process group of the cluster is alive');
    assert.deepEqual(processesMentioning(join(dataDir, 'local')), [], 'no process runs from the provider\'s directories');
    assert.deepEqual(await listeningPorts(machineAddresses, endpointAddresses), [], 'no port is left listening');
    for (const sub of ['machines', 'endpoints']) {
      const p = join(dataDir, 'local', sub);
      assert.deepEqual(existsSync(p) ? readdirSync(p) : [], [], `local/${sub} is empty`);
    }
  });
});
