// Issue 18's "the test plays the hypervisor": a cluster of provider openstack (3 etcd, 2 control
// planes, 3 real workers) created through Marina's API against the real OpenStack control plane
// (Nova's fake driver boots nothing, Octavia's no-op driver forwards nothing), and this test does
// what the missing hypervisor and load balancer would:
//   - each ACTIVE server "boots": a network namespace holding its Neutron port's address (joined to
//     the host by a veth pair; the host routes that address to it) runs the user data's
//     `marina agent join` with the token from the user data's token file;
//   - the load balancer's VIP is an address on the host where a TCP relay forwards to the pool
//     members Octavia records;
//   - a server being deleted (Nova's delete task shows) or gone is "powered off": its agent
//     stopped, its namespace removed.
// The cluster becomes Ready (each etcd member and control plane on its own host: anti-affinity);
// the worker pool scales 3 → 4 through the API (the new server is booted by this test and its
// Node goes Ready); a worker's server put into ERROR through Nova's os-resetState is replaced (a
// new server, the ERROR one deleted, the pool back to 4 Ready Nodes);
// deleting the cluster leaves nothing tagged in OpenStack.
//
// Needs root on Linux (namespaces, cgroups); MARINA_OPENSTACK_STATE=DIR reuses a control plane.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopProcessGroup } from '../../src/proc/index.js';
import type { ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { BIN, kubectl, waitUntil } from '../support/marina.js';
import { ensureRealNodeArtifacts, freeSubnet30, linkExists, nodeCacheEnv, realNodeSkip, sweepLeftoverNodes } from '../workers/support.js';
import { authenticate, type Session } from './client.js';
import { acquireHostLock } from './host-lock.js';
import { sharedOpenStack, stopSharedOpenStack, unavailableReason, type OpenStackEnv } from './controlplane.js';
import { assertNothingTagged, clusterServers, createCluster, deleteCluster, NOVA, poolsOf, PROJECT, scalePool, startMarina, userDataJoin, type Marina } from './marina-api.js';

const run = promisify(execFile);
/** The shape: 3 etcd, 2 control planes and this many real workers. */
const WORKERS = 3;
const skipReason = realNodeSkip() || (await unavailableReason());
if (skipReason) console.log(`SKIP OpenStack hypervisor e2e: ${skipReason}`);

after(() => stopSharedOpenStack());

interface Vm {
  name: string;
  netns: string;
  hostVeth: string;
  dir: string;
  agent?: ChildProcess;
}

describe('e2e: Marina on OpenStack with the test as hypervisor and load balancer', { skip: skipReason || false, timeout: 1_800_000 }, () => {
  const id = randomBytes(3).toString('hex');
  const cluster = `osh-${id}`;
  const dummy = `mrnd${id}`;
  let env: OpenStackEnv;
  let toolchain: ResolvedToolchain;
  let admin: Session;
  let tmp = '';
  let marina: Marina | undefined;
  let clusterUid = '';
  const vms = new Map<string, Vm>(); // Nova server id → the "VM" this test runs for it
  let relay: { vip: string; server: Server; sockets: Set<Socket> } | undefined;
  let members: { address: string; port: number }[] = [];
  let hypervisor: Promise<void> | undefined;
  let stopping = false;
  const notes: string[] = [];
  let releaseVip: (() => void) | undefined;

  before(async () => {
    toolchain = await ensureRealNodeArtifacts();
    env = (await sharedOpenStack((line) => console.log(line))).env;
    admin = await authenticate(env.endpoints.keystone, {
      password: { username: env.admin.username, password: env.admin.password, projectName: env.admin.projectName },
    });
    // Octavia's no-op driver gives every load balancer the same VIP, which this test plays on the
    // host: another run of it on this host waits for this one (and this one for it).
    releaseVip = await acquireHostLock('octavia-noop-vip', (pid) => console.log(`# waiting for the hypervisor test in process ${pid} (the no-op load balancers' VIP is one address)`));
    tmp = mkdtempSync(join(tmpdir(), 'mrn-osh-'));
    // Marina listens on an address of its own on the host (beyond loopback: HTTPS with its CA),
    // which the "VMs" reach through their default route.
    const marinaAddress = (await freeSubnet30()).host;
    // (on a veth pair left in the host: these kernels have no dummy links)
    await run('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy}p`]);
    await run('ip', ['addr', 'add', `${marinaAddress}/32`, 'dev', dummy]);
    for (const l of [dummy, `${dummy}p`]) await run('ip', ['link', 'set', l, 'up']);
    marina = await startMarina({ tmp, listen: `${marinaAddress}:0`, toolchain, env: nodeCacheEnv() });
  });

  after(async () => {
    stopping = true;
    await hypervisor?.catch(() => undefined);
    if (marina?.server.running() && clusterUid) await deleteCluster(marina.api, cluster, 300_000).catch(() => undefined);
    for (const vm of vms.values()) await powerOff(vm);
    if (relay) {
      for (const s of relay.sockets) s.destroy();
      await new Promise((r) => relay!.server.close(r));
    }
    await marina?.server.stop();
    if (await linkExists(dummy)) await run('ip', ['link', 'del', dummy]).catch(() => undefined);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    releaseVip?.();
  });

  /** Runs the server's user data in a namespace of its own holding its port address. */
  async function boot(server: any): Promise<void> {
    const n = vms.size;
    const vm: Vm = { name: server.name, netns: `mrnvm-${id}-${n}`, hostVeth: `mrnv${id}${n}`, dir: join(tmp, 'vms', server.name) };
    vms.set(server.id, vm);
    const j = await userDataJoin(admin, server);
    const link = await freeSubnet30();
    const ns = (args: string[]) => run('ip', ['-n', vm.netns, ...args]);
    await run('ip', ['netns', 'add', vm.netns]);
    await run('ip', ['link', 'add', vm.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', vm.netns]);
    await run('ip', ['addr', 'add', `${link.host}/30`, 'dev', vm.hostVeth]);
    await run('ip', ['link', 'set', vm.hostVeth, 'up']);
    await ns(['link', 'set', 'lo', 'up']);
    await ns(['addr', 'add', `${link.peer}/30`, 'dev', 'eth0']);
    await ns(['addr', 'add', `${j.nodeIp}/32`, 'dev', 'eth0']);
    await ns(['link', 'set', 'eth0', 'up']);
    await ns(['route', 'add', 'default', 'via', link.host, 'src', j.nodeIp]);
    await run('ip', ['route', 'add', `${j.nodeIp}/32`, 'dev', vm.hostVeth]);
    // cloud-init's write_files and the unit's ExecStart, with this VM's directories.
    mkdirSync(vm.dir, { recursive: true, mode: 0o700 });
    const tokenFile = join(vm.dir, 'join-token');
    writeFileSync(tokenFile, `${j.token}\n`, { mode: 0o600 });
    const args = j.exec.slice(3);
    args[args.indexOf('--token-file') + 1] = tokenFile;
    args[args.indexOf('--data-dir') + 1] = join(vm.dir, 'agent');
    const out = openSync(join(vm.dir, 'agent.log'), 'a');
    vm.agent = spawn('nsenter', [`--net=/run/netns/${vm.netns}`, process.execPath, BIN, 'agent', 'join', ...args], { stdio: ['ignore', out, out], detached: true });
    closeSync(out);
    notes.push(`booted ${server.name} at ${j.nodeIp} in ${vm.netns}`);
  }

  /** The server is gone from Nova: the "VM" stops (its agent and node), its namespace goes. */
  async function powerOff(vm: Vm): Promise<void> {
    if (vm.agent?.pid && vm.agent.exitCode === null) await stopProcessGroup(vm.agent.pid, { graceMs: 30_000 }).catch(() => undefined);
    const config = join(vm.dir, 'agent', 'agent.json');
    const node = existsSync(config) ? (JSON.parse(readFileSync(config, 'utf8')).node as { dir: string; cgroupRoot: string; runDir: string } | undefined) : undefined;
    if (node) await sweepLeftoverNodes([{ machine: vm.name, dir: node.dir, cgroupRoot: node.cgroupRoot, runDir: node.runDir }]);
    await run('ip', ['netns', 'del', vm.netns]).catch(() => undefined);
    if (await linkExists(vm.hostVeth)) await run('ip', ['link', 'del', vm.hostVeth]).catch(() => undefined);
  }

  /** The load balancer's VIP on the host, relaying to the members Octavia records (refreshed every round). */
  async function playLoadBalancer(): Promise<void> {
    const lbs = (await admin.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=marina-cluster-${clusterUid}`)).body.loadbalancers as any[];
    const lb = lbs.find((l) => l.provisioning_status !== 'DELETED');
    if (!lb) return;
    const pools = (await admin.request('load-balancer', 'GET', `/v2/lbaas/pools?loadbalancer_id=${lb.id}`)).body.pools as any[];
    const found: { address: string; port: number }[] = [];
    for (const p of pools) {
      for (const m of (await admin.request('load-balancer', 'GET', `/v2/lbaas/pools/${p.id}/members`)).body.members as any[]) found.push({ address: m.address, port: m.protocol_port });
    }
    members = found;
    if (relay) return;
    await run('ip', ['addr', 'replace', `${lb.vip_address}/32`, 'dev', dummy]);
    const sockets = new Set<Socket>();
    let next = 0;
    const server = createServer((client) => {
      const target = members[next++ % Math.max(members.length, 1)];
      if (!target) return void client.destroy();
      const upstream = createConnection({ host: target.address, port: target.port });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(6443, lb.vip_address, resolve));
    relay = { vip: lb.vip_address, server, sockets };
    notes.push(`load balancer ${lb.vip_address}:6443 relayed to its members`);
  }

  async function hypervisorLoop(): Promise<void> {
    for (let round = 0; !stopping; round++) {
      try {
        // The load balancer failing (its VIP taken, Octavia busy) must not keep the VMs from booting.
        if (round % 4 === 0) await playLoadBalancer().catch((err: Error) => void notes.push(`load balancer: ${err.message}`));
        const servers = await clusterServers(admin, clusterUid);
        for (const s of servers) if (s.status === 'ACTIVE' && !vms.has(s.id)) await boot(s);
        for (const [serverId, vm] of vms) {
          // A hypervisor destroys the VM while Nova's delete task runs, before Nova drops the
          // server: Marina deletes the Node once the server is gone, and a kubelet still running
          // then would register it again. So the "VM" stops as soon as the delete task shows.
          const s = servers.find((x) => x.id === serverId);
          if ((!s || s['OS-EXT-STS:task_state'] === 'deleting' || s.status === 'DELETED') && vm.agent) {
            await powerOff(vm);
            delete vm.agent;
            notes.push(`powered off ${vm.name}`);
          }
        }
      } catch (err) {
        notes.push(`hypervisor: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  it('creates the cluster through the API; with its servers run by the test it becomes Ready', async () => {
    const machine = { image: env.image.name, flavor: 'm1.small' };
    clusterUid = await createCluster(marina!.api, env, cluster, [
      { name: 'etcd', roles: ['etcd'], replicas: 3, machine },
      { name: 'cp', roles: ['controlplane'], replicas: 2, machine },
      { name: 'workers', roles: ['worker'], replicas: WORKERS, machine, runtime: { type: 'containerd' } },
    ]);
    hypervisor = hypervisorLoop();
    try {
      await waitUntil('the cluster Ready', 1_200_000, async () => {
        const c = (await marina!.api('GET', `/projects/${PROJECT}/clusters/${cluster}`)).json;
        return c?.status?.phase === 'Ready' ? c : undefined;
      }, 3000);
    } catch (err) {
      const c = (await marina!.api('GET', `/projects/${PROJECT}/clusters/${cluster}`)).json;
      const ms = (await marina!.api('GET', `/projects/${PROJECT}/machines`)).json.items.map((m: any) => ({ name: m.metadata.name, phase: m.status?.phase, conditions: m.status?.conditions?.filter((x: any) => x.status !== 'True') }));
      const logs = [...vms.values()].map((vm) => `--- ${vm.name}\n${existsSync(join(vm.dir, 'agent.log')) ? readFileSync(join(vm.dir, 'agent.log'), 'utf8').slice(-3000) : ''}`);
      throw new Error(`${(err as Error).message}\n${notes.join('\n')}\ncluster: ${JSON.stringify(c?.status?.conditions)}\nmachines: ${JSON.stringify(ms)}\n${logs.join('\n')}`);
    }
    assert.equal(vms.size, 3 + 2 + WORKERS, 'every server booted');
    // kubectl through the relayed VIP: the workers' real kubelets registered Ready Nodes.
    const kc = join(tmp, 'kubeconfig');
    writeFileSync(kc, (await marina!.api('GET', `/projects/${PROJECT}/clusters/${cluster}/kubeconfig`)).text, { mode: 0o600 });
    const nodes = JSON.parse(await kubectl(toolchain, kc, ['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> }; status: { conditions: { type: string; status: string }[] } }[] };
    const ready = (prefix: string) => nodes.items.filter((n) => n.metadata.name.startsWith(`${cluster}-${prefix}-`) && n.status.conditions.find((c) => c.type === 'Ready')?.status === 'True');
    assert.equal(ready('workers').length, WORKERS, `Ready worker Nodes among ${nodes.items.map((n) => n.metadata.name)}`);
    // The anti-affinity groups put each etcd member and each control plane on its own host.
    const hosts = (pool: string) => new Set(serversNow.filter((x) => x.metadata['marina:pool'] === pool).map((x) => x['OS-EXT-SRV-ATTR:host']));
    const serversNow = await clusterServers(admin, clusterUid);
    assert.equal(hosts('etcd').size, 3, 'three etcd servers on three hosts');
    assert.equal(hosts('cp').size, 2, 'two control-plane servers on two hosts');
  });

  /** The cluster's worker Nodes as kubectl shows them through the relayed VIP: name → Ready. */
  async function workerNodes(): Promise<Map<string, boolean>> {
    const kc = join(tmp, 'kubeconfig');
    const nodes = JSON.parse(await kubectl(toolchain, kc, ['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[] };
    return new Map(
      nodes.items.filter((n) => n.metadata.name.startsWith(`${cluster}-workers-`)).map((n) => [n.metadata.name, n.status.conditions.find((c) => c.type === 'Ready')?.status === 'True']),
    );
  }

  const workerServers = async () => (await clusterServers(admin, clusterUid)).filter((s) => s.metadata['marina:pool'] === 'workers');

  /** The worker pool has `n` ready machines and exactly `n` worker Nodes, all Ready. */
  async function workersReady(n: number, what: string): Promise<Map<string, boolean>> {
    try {
      return await waitUntil(what, 900_000, async () => {
        const pool = (await poolsOf(marina!.api, cluster)).find((p) => p.metadata.name.endsWith('workers'));
        if (pool?.status?.readyReplicas !== n || pool.status.replicas !== n) return undefined;
        const nodes = await workerNodes().catch(() => undefined);
        return nodes && nodes.size === n && [...nodes.values()].every(Boolean) ? nodes : undefined;
      }, 3000);
    } catch (err) {
      const ms = (await marina!.api('GET', `/projects/${PROJECT}/machines`)).json.items.map((m: any) => ({ name: m.metadata.name, phase: m.status?.phase, conditions: m.status?.conditions?.filter((x: any) => x.status !== 'True') }));
      throw new Error(`${(err as Error).message}\n${notes.join('\n')}\nmachines: ${JSON.stringify(ms)}`);
    }
  }

  it(`scales the worker pool ${WORKERS} → ${WORKERS + 1} through the API: the new server boots and its Node goes Ready`, async () => {
    const before = new Set((await workerServers()).map((s) => s.id));
    assert.equal(before.size, WORKERS);
    await scalePool(marina!.api, cluster, 'workers', WORKERS + 1);
    const nodes = await workersReady(WORKERS + 1, `${WORKERS + 1} Ready worker Nodes`);
    const servers = await workerServers();
    assert.equal(servers.length, WORKERS + 1, 'one more worker server');
    const added = servers.find((s) => !before.has(s.id))!;
    assert.ok(nodes.has(added.name), `the new server's Node ${added.name} among ${[...nodes.keys()]}`);
    assert.ok(vms.has(added.id), 'the test booted it');
  });

  it('replaces a worker whose server Nova puts into ERROR: a new server, the ERROR one deleted, every worker Node Ready again', async () => {
    const n = WORKERS + 1;
    const [victim, other] = await workerServers();
    assert.ok(victim && other);
    const reset = await admin.request('compute', 'POST', `/servers/${victim.id}/action`, { 'os-resetState': { state: 'error' } }, NOVA);
    assert.equal(reset.status, 202, JSON.stringify(reset.body));
    // The ERROR server goes (Marina deleted it) and a new one takes its place.
    await waitUntil('the ERROR server deleted and a new worker server', 600_000, async () => {
      const ids = (await workerServers()).map((s) => s.id);
      return !ids.includes(victim.id) && ids.length === n && ids.includes(other.id) ? true : undefined;
    }, 2000);
    const nodes = await workersReady(n, `${n} Ready worker Nodes after the replacement`);
    assert.equal(nodes.has(victim.name), false, "the ERROR server's Node is gone");
    assert.ok(nodes.has(other.name));
    const pool = (await poolsOf(marina!.api, cluster)).find((p) => p.metadata.name.endsWith('workers'));
    const remediation = (pool.status.remediations as any[]).find((r) => r.machine === victim.name);
    assert.ok(remediation, `a remediation for ${victim.name} in ${JSON.stringify(pool.status.remediations)}`);
    assert.equal(remediation.reason, 'MachineFailed');
    assert.match(remediation.message, /ServerError: server .* is in ERROR/);
  });

  it('deletes the cluster: the servers go (the test powers them off) and nothing tagged is left', async () => {
    await deleteCluster(marina!.api, cluster, 600_000);
    await assertNothingTagged(admin, clusterUid);
    await waitUntil('every VM powered off', 60_000, async () => ([...vms.values()].every((vm) => !vm.agent) ? true : undefined), 1000);
  });
});
