// Marina's OpenStack provider (src/providers/openstack) against the real control plane: the shared
// provider conformance suite, a cluster's servers, ports, groups, tags, user data and load
// balancer exactly as expected, errors a user can act on with OpenStack's own message, and a
// delete that leaves nothing tagged.
//
// What stands in for the rest of Marina: the directory (which cloud, what each machine should be)
// is a map here, and the joins are recorded here. Nova's fake driver runs no VM, so "the agent
// joined" is read from what a VM would receive: the server's user data as Nova holds it (an
// admin-only attribute) must carry the single-use token issued for exactly that machine; only then
// does the machine's report say healthy and the provider call it Running.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { parse } from 'yaml';
import { describeProviderConformance } from '../../src/providers/conformance.js';
import { ProviderError, type ClusterRef, type MachineBootstrap, type MachineRef } from '../../src/providers/contract.js';
import { OpenStackProvider } from '../../src/providers/openstack/index.js';
import type { AgentReport, CloudConfig, CloudDirectory, JoinInstructions, MachineFacts, MachineJoins } from '../../src/providers/openstack/config.js';
import { cloudTag, clusterTag, machineTag, serverGroupName } from '../../src/providers/openstack/identity.js';
import { OpenStackSession } from '../../src/providers/openstack/session.js';
import { TOKEN_FILE } from '../../src/providers/openstack/userdata.js';
import { authenticate, http, type Session, waitFor } from './client.js';
import { type OpenStackEnv, sharedOpenStack } from './controlplane.js';

const NOVA = { 'OpenStack-API-Version': 'compute 2.88' };
const MARINA_URL = 'https://marina.example.test:8443';
const POD_CIDR = '10.244.0.0/16';
const MANAGEMENT_CIDR = '198.18.0.0/15';

/** The test's stand-in for Marina's store: one cloud (a fresh uid per run) and each machine's facts. */
class Directory implements CloudDirectory {
  readonly cloud: Promise<CloudConfig>;
  readonly facts = new Map<string, MachineFacts>();
  private readonly clusterUids = new Map<string, string>();
  /** Facts of machines the test did not describe (the conformance suite's). */
  fallback: Omit<MachineFacts, 'clusterUid'> | undefined;

  constructor(env: Promise<OpenStackEnv>, uid = randomUUID()) {
    this.cloud = env.then((e) => ({
      uid,
      project: 'p',
      name: 'cloud',
      authURL: e.endpoints.keystone,
      region: e.region,
      applicationCredential: { id: e.applicationCredential.id, secret: e.applicationCredential.secret },
      network: e.network.name,
      managementCIDR: MANAGEMENT_CIDR,
      marinaURL: MARINA_URL,
    }));
  }

  async cloudOf(): Promise<CloudConfig> {
    return this.cloud;
  }

  async clouds(): Promise<CloudConfig[]> {
    return [await this.cloud];
  }

  clusterUid(project: string, cluster: string): string {
    const key = `${project}/${cluster}`;
    if (!this.clusterUids.has(key)) this.clusterUids.set(key, randomUUID());
    return this.clusterUids.get(key)!;
  }

  async machine(ref: MachineRef): Promise<MachineFacts | undefined> {
    const f = this.facts.get(ref.uid);
    if (f) return f;
    return this.fallback && { ...this.fallback, clusterUid: this.clusterUid(ref.project, ref.cluster) };
  }
}

/** Records the single-use tokens; a machine is healthy once its server's user data carries its token. */
class RecordedJoins implements MachineJoins {
  readonly issued = new Map<string, { join: JoinInstructions; bootstrap: MachineBootstrap; count: number }>();
  admin: Session | undefined;

  async issue(m: MachineRef, bootstrap: MachineBootstrap, marinaURL?: string): Promise<JoinInstructions> {
    const join = { url: marinaURL ?? MARINA_URL, token: `${randomBytes(3).toString('hex')}.${randomBytes(8).toString('hex')}`, caPin: `sha256:${randomBytes(32).toString('hex')}` };
    this.issued.set(m.uid, { join, bootstrap, count: (this.issued.get(m.uid)?.count ?? 0) + 1 });
    return join;
  }

  async report(m: MachineRef): Promise<AgentReport | undefined> {
    const issued = this.issued.get(m.uid);
    if (!issued || !this.admin) return undefined;
    const server = (await userDataOf(this.admin, m.uid))[0];
    const healthy = server?.config !== undefined && tokenIn(server.config) === issued.join.token;
    return { healthy, lastSeenAt: new Date().toISOString() };
  }

  async forget(m: MachineRef): Promise<void> {
    this.issued.delete(m.uid);
  }
}

/** The cloud-config of a machine's servers, as Nova hands it to the VM. */
async function userDataOf(admin: Session, machineUid: string): Promise<{ server: any; config: any }[]> {
  const r = await admin.request('compute', 'GET', `/servers/detail?all_tenants=1&tags=${machineTag(machineUid)}`, undefined, NOVA);
  assert.equal(r.status, 200);
  return r.body.servers.map((server: any) => {
    const raw = server['OS-EXT-SRV-ATTR:user_data'];
    return { server, config: raw ? parseCloudConfig(Buffer.from(raw, 'base64').toString()) : undefined };
  });
}

function parseCloudConfig(text: string): any {
  assert.ok(text.startsWith('#cloud-config\n'), 'user data is cloud-config');
  return parse(text);
}

function tokenIn(config: any): string | undefined {
  return (config.write_files as { path: string; content: string }[]).find((f) => f.path === TOKEN_FILE)?.content.trim();
}

/** A port nothing listens on (fetch refuses well-known ones such as 1 outright: "bad port"). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const bootstrapOf = (m: MachineRef, roles: string[]): MachineBootstrap => ({ kubernetesVersion: 'v1.36.3', roles, files: [], services: [] });

export function describeProviderTests(skipReason: string | undefined): void {
  describe('OpenStack provider against the real control plane', { skip: skipReason ?? false, timeout: 900_000 }, () => {
    // Resolved in `before` (the conformance suite builds its provider while tests are collected).
    let resolveEnv!: (e: OpenStackEnv) => void;
    const envReady = new Promise<OpenStackEnv>((r) => (resolveEnv = r));
    const directory = new Directory(envReady);
    const joins = new RecordedJoins();
    const newProvider = () => new OpenStackProvider({ directory, joins, pollMs: 500, waitTimeoutMs: 180_000 });
    let env: OpenStackEnv;
    let marina: Session;
    let admin: Session;

    before(async () => {
      env = (await sharedOpenStack((line) => console.log(line))).env;
      marina = await authenticate(env.endpoints.keystone, { applicationCredential: env.applicationCredential });
      admin = await authenticate(env.endpoints.keystone, {
        password: { username: env.admin.username, password: env.admin.password, projectName: env.admin.projectName },
      });
      joins.admin = admin;
      directory.fallback = { pool: 'conformance', roles: ['worker'], image: env.image.name, flavor: 'm1.small', podCIDR: POD_CIDR };
      resolveEnv(env);
    });

    after(async () => {
      // Whatever a failed test left in this run's cloud (tags carry the cloud object's uid).
      if (!marina) return;
      const tag = cloudTag((await directory.cloud).uid);
      const provider = newProvider();
      for (const m of await provider.listMachines()) await provider.deleteMachine(m.ref).catch(() => undefined);
      const lbs = (await marina.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=${tag}`)).body.loadbalancers ?? [];
      for (const lb of lbs) await marina.request('load-balancer', 'DELETE', `/v2/lbaas/loadbalancers/${lb.id}?cascade=true`);
      for (const g of (await marina.request('network', 'GET', `/v2.0/security-groups?tags=${tag}`)).body.security_groups ?? []) {
        await marina.request('network', 'DELETE', `/v2.0/security-groups/${g.id}`);
      }
    });

    it('Keystone: the token is cached, renewed before it expires and after a 401', async () => {
      let offset = 0;
      const session = new OpenStackSession({ authURL: env.endpoints.keystone, applicationCredential: env.applicationCredential, now: () => Date.now() + offset });
      await session.request('compute', 'GET', '/flavors');
      await session.request('network', 'GET', '/v2.0/networks');
      assert.equal(session.authentications, 1, 'one token for both requests');
      offset = 56 * 60_000; // Keystone's tokens last an hour; renewal is 5 min before
      await session.request('compute', 'GET', '/flavors');
      assert.equal(session.authentications, 2, 'renewed near expiry');

      // A token Keystone revoked: the service answers 401, the session authenticates again once.
      // Neutron is asked first after the revocation (Nova's middleware caches the validation).
      const revoked = new OpenStackSession({ authURL: env.endpoints.keystone, applicationCredential: env.applicationCredential });
      const seen: string[] = [];
      const realFetch = globalThis.fetch;
      globalThis.fetch = (async (url: string | URL | Request, init?: RequestInit) => {
        const token = (init?.headers as Record<string, string> | undefined)?.['X-Auth-Token'];
        if (token && !String(url).startsWith(env.endpoints.keystone)) seen.push(token); // the services' requests only
        return realFetch(url, init);
      }) as typeof fetch;
      try {
        await revoked.request('compute', 'GET', '/flavors');
        const first = seen[0]!;
        const r = await http('DELETE', `${env.endpoints.keystone}/auth/tokens`, { token: admin.token, headers: { 'X-Subject-Token': first } });
        assert.equal(r.status, 204, 'Keystone revoked the token');
        const networks = await revoked.request<{ networks: unknown[] }>('network', 'GET', '/v2.0/networks');
        assert.equal(networks.status, 200);
        assert.equal(revoked.authentications, 2, 'authenticated again after the 401');
        assert.deepEqual(seen.slice(1).map((t) => t === first), [true, false], 'the revoked token once, then a new one');
      } finally {
        globalThis.fetch = realFetch;
      }

      const wrong = new OpenStackSession({ authURL: env.endpoints.keystone, applicationCredential: { id: env.applicationCredential.id, secret: 'wrong' } });
      await assert.rejects(wrong.request('compute', 'GET', '/flavors'), /identity answered 401/);
    });

    // Side by side (they share nothing but the cloud): the conformance suite's machines are workers
    // without a server group, the cluster's etcd group needs the three hosts to itself only. The
    // tests inside each suite run in order (concurrency 1).
    describe('the conformance suite and a cluster, side by side', { concurrency: true }, () => {
      describe('conformance', { concurrency: 1 }, () => {
        describeProviderConformance('openstack', {
          newProvider,
          minimalBootstrap: (m) => bootstrapOf(m, ['worker']),
          runningTimeoutMs: 180_000,
          async assertMachineGone(m, last) {
            const serverId = (last.providerStatus as { serverId?: string }).serverId;
            assert.ok(serverId, 'the machine had a server');
            assert.equal((await marina.request('compute', 'GET', `/servers/${serverId}`, undefined, NOVA)).status, 404, 'its server is gone');
            const portId = (last.providerStatus as { portId?: string }).portId;
            assert.equal((await marina.request('network', 'GET', `/v2.0/ports/${portId}`)).status, 404, 'its port is gone');
            assert.deepEqual((await marina.request('network', 'GET', `/v2.0/ports?tags=${machineTag(m.uid)}`)).body.ports, []);
            assert.equal(joins.issued.has(m.uid), false, 'its join is forgotten');
          },
          async assertEndpointGone(cluster) {
            const lbs = (await marina.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=${clusterTag(cluster.uid)}`)).body.loadbalancers;
            assert.deepEqual(lbs, [], 'no load balancer of the cluster left');
          },
        });
      });

      describe('a cluster of 3 etcd, 2 control-plane and 3 worker machines', { concurrency: 1 }, () => {
        const provider = newProvider();
        const cluster: ClusterRef = { project: 'p', name: `c-${randomUUID().slice(0, 6)}`, uid: randomUUID() };
        const pools = [
          { pool: 'etcd', roles: ['etcd'], count: 3, flavor: 'm1.small' },
          { pool: 'cp', roles: ['controlplane'], count: 2, flavor: 'm1.small' },
          { pool: 'workers', roles: ['worker'], count: 3, flavor: 'm1.medium' },
        ];
        const machines: { ref: MachineRef; facts: MachineFacts; address?: string }[] = [];
        const add = (pool: (typeof pools)[number], i: number, image?: string) => {
          const ref: MachineRef = { project: cluster.project, cluster: cluster.name, name: `${pool.pool}-${i}`, uid: randomUUID() };
          const facts: MachineFacts = { clusterUid: cluster.uid, pool: pool.pool, roles: pool.roles, image: image ?? env.image.name, flavor: pool.flavor, podCIDR: POD_CIDR };
          directory.facts.set(ref.uid, facts);
          return { ref, facts };
        };
        let vip: string;

        it('creates exactly the servers, ports, groups, tags, user data and load balancer it should', async () => {
          vip = (await provider.ensureEndpoint(cluster, [])).host;
          for (const p of pools) for (let i = 0; i < p.count; i++) machines.push(add(p, i));
          await Promise.all(machines.map(async (m) => (m.address = (await provider.prepareMachine(m.ref)).address)));
          await Promise.all(machines.map((m) => provider.startMachine(m.ref, bootstrapOf(m.ref, m.facts.roles))));
          await Promise.all(
            machines.map((m) =>
              waitFor(`${m.ref.name} Running`, 180_000, async () => {
                const d = await provider.describeMachine(m.ref);
                assert.notEqual(d.state, 'Failed', `${m.ref.name}: ${d.failureReason}: ${d.failureMessage}`);
                return d.state === 'Running' ? d : undefined;
              }),
            ),
          );
          for (const m of machines.slice(0, 2)) {
            const again = await provider.prepareMachine(m.ref);
            assert.equal(again.address, m.address, 'prepare answers the same once the server runs');
            assert.equal(again.providerID, (await provider.describeMachine(m.ref)).providerID);
          }
          const cps = machines.filter((m) => m.facts.pool === 'cp');
          const endpoint = await provider.ensureEndpoint(cluster, cps.map((m) => `${m.address}:6443`));
          assert.equal(endpoint.host, vip, 'the endpoint address is fixed at first call');
          assert.equal(endpoint.url, `https://${vip}:6443`);

          const cloud = await directory.cloud;
          // Servers: one per machine, tagged, with its flavor, image, port and metadata.
          const servers = (await marina.request('compute', 'GET', `/servers/detail?tags=${clusterTag(cluster.uid)}`, undefined, NOVA)).body.servers as any[];
          assert.deepEqual(servers.map((s) => s.name).sort(), machines.map((m) => m.ref.name).sort());
          const groups = (await marina.request('compute', 'GET', '/os-server-groups', undefined, NOVA)).body.server_groups as any[];
          for (const m of machines) {
            const s = servers.find((x) => x.name === m.ref.name);
            assert.equal(s.status, 'ACTIVE');
            assert.deepEqual([...s.tags].sort(), [cloudTag(cloud.uid), clusterTag(cluster.uid), machineTag(m.ref.uid)].sort());
            assert.equal(s.flavor.original_name, m.facts.flavor);
            assert.equal(s.image.id, env.image.id);
            assert.deepEqual(s.metadata, { 'marina:project': 'p', 'marina:cluster': cluster.name, 'marina:machine': m.ref.name, 'marina:machine-uid': m.ref.uid, 'marina:pool': m.facts.pool });
            const addrs = Object.values(s.addresses as Record<string, { addr: string }[]>).flat().map((a) => a.addr);
            assert.deepEqual(addrs, [m.address], 'booted on the prepared port');
            // server_groups is in a single server's view only (2.71+), not in the list.
            const shown = (await marina.request('compute', 'GET', `/servers/${s.id}`, undefined, NOVA)).body.server;
            const group = groups.find((g) => g.name === serverGroupName(cluster.uid, m.facts.pool));
            if (m.facts.pool === 'workers') assert.deepEqual(shown.server_groups, [], 'workers are in no group');
            else assert.deepEqual(shown.server_groups, [group.id], `${m.ref.name} is in its pool's group`);
          }
          // Anti-affinity: etcd and control-plane members on distinct hosts.
          for (const pool of ['etcd', 'cp']) {
            const group = groups.find((g) => g.name === serverGroupName(cluster.uid, pool));
            assert.equal(group.policy, 'anti-affinity');
            const members = servers.filter((s) => s.metadata['marina:pool'] === pool);
            assert.deepEqual([...group.members].sort(), members.map((s) => s.id).sort());
            assert.equal(new Set(members.map((s) => s.hostId)).size, members.length, `${pool} members on distinct hosts`);
          }

          // User data: cloud-config that runs the agent join with the machine's own single-use token.
          for (const m of machines) {
            const { config } = (await userDataOf(admin, m.ref.uid))[0]!;
            const issued = joins.issued.get(m.ref.uid)!;
            assert.equal(issued.count, 1, 'one token per machine');
            assert.equal(tokenIn(config), issued.join.token);
            assert.equal(config.hostname, m.ref.name);
            const token = config.write_files.find((f: any) => f.path === TOKEN_FILE);
            assert.equal(token.permissions, '0600');
            const unit = config.write_files.find((f: any) => f.path.endsWith('marina-agent.service')).content as string;
            const exec = unit.split('\n').find((l) => l.startsWith('ExecStart='))!;
            assert.equal(
              exec,
              `ExecStart=marina agent join --url ${MARINA_URL} --token-file ${TOKEN_FILE} --ca-pin ${issued.join.caPin} --data-dir /var/lib/marina-agent --node-ip ${m.address} --hostname ${m.ref.name}`,
            );
            assert.ok(!unit.includes(issued.join.token), 'the token is not on the command line');
          }

          // Ports: one per machine in the cluster's security group, tagged; pods' CIDR allowed.
          const ports = (await marina.request('network', 'GET', `/v2.0/ports?tags=${clusterTag(cluster.uid)}`)).body.ports as any[];
          assert.equal(ports.length, machines.length);
          const sgs = (await marina.request('network', 'GET', `/v2.0/security-groups?tags=${clusterTag(cluster.uid)}`)).body.security_groups as any[];
          assert.equal(sgs.length, 1, 'one security group per cluster');
          const sg = sgs[0];
          assert.deepEqual([...sg.tags].sort(), [cloudTag(cloud.uid), clusterTag(cluster.uid)].sort());
          for (const m of machines) {
            const p = ports.find((x) => x.fixed_ips[0].ip_address === m.address);
            assert.ok(p, `port of ${m.ref.name}`);
            assert.equal(p.network_id, env.network.id);
            assert.deepEqual(p.security_groups, [sg.id]);
            assert.deepEqual([...p.tags].sort(), [cloudTag(cloud.uid), clusterTag(cluster.uid), machineTag(m.ref.uid)].sort());
            assert.deepEqual(p.allowed_address_pairs.map((a: any) => a.ip_address), [POD_CIDR]);
            assert.equal(p.device_owner, 'compute:nova');
          }
          const ingress = (sg.security_group_rules as any[])
            .filter((r) => r.direction === 'ingress')
            .map((r) => `${r.protocol ?? 'any'}:${r.port_range_min ?? ''}-${r.port_range_max ?? ''}:${r.remote_group_id === sg.id ? 'group' : r.remote_ip_prefix}`)
            .sort();
          assert.deepEqual(ingress, [
            `any:-:${POD_CIDR}`,
            'tcp:10250-10250:group',
            `tcp:10270-10270:${MANAGEMENT_CIDR}`,
            'tcp:2379-2379:' + MANAGEMENT_CIDR,
            'tcp:2379-2380:group',
            'tcp:6443-6443:0.0.0.0/0',
          ]);

          // Load balancer: listener 6443, pool, HTTPS health monitor on /readyz, the control planes as members.
          const lbs = (await marina.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=${clusterTag(cluster.uid)}`)).body.loadbalancers as any[];
          assert.equal(lbs.length, 1);
          const status = (await marina.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers/${lbs[0].id}/status`)).body.statuses.loadbalancer;
          assert.equal(status.provisioning_status, 'ACTIVE');
          const listener = status.listeners[0];
          const lbPool = listener.pools[0];
          assert.equal(lbPool.health_monitor.type, 'HTTPS');
          const hm = (await marina.request('load-balancer', 'GET', `/v2/lbaas/healthmonitors/${lbPool.health_monitor.id}`)).body.healthmonitor;
          assert.equal(hm.url_path, '/readyz');
          assert.deepEqual(lbPool.members.map((x: any) => `${x.address}:${x.protocol_port}`).sort(), cps.map((m) => `${m.address}:6443`).sort());
          assert.equal((await marina.request('load-balancer', 'GET', `/v2/lbaas/listeners/${listener.id}`)).body.listener.protocol_port, 6443);

          // The inventory names every machine by the uid it was made for.
          const listed = (await provider.listMachines()).filter((x) => x.ref.cluster === cluster.name);
          assert.deepEqual(listed.map((x) => x.ref.uid).sort(), machines.map((m) => m.ref.uid).sort());
          assert.ok(listed.every((x) => x.state === 'Running'));
        });

        it('a fourth etcd server has no host left: Failed with NoValidHost and Nova\'s message', async () => {
          const extra = add(pools[0]!, 3);
          machines.push(extra);
          await provider.prepareMachine(extra.ref);
          await provider.startMachine(extra.ref, bootstrapOf(extra.ref, ['etcd']));
          const d = await waitFor('the fourth etcd server to fail', 180_000, async () => {
            const x = await provider.describeMachine(extra.ref);
            return x.state === 'Failed' ? x : undefined;
          });
          assert.equal(d.failureReason, 'NoValidHost');
          assert.match(d.failureMessage!, /No valid host was found|Exceeded maximum number of retries/);
        });

        it('a server put into ERROR through the API is reported Failed (healing replaces it)', async () => {
          const victim = machines.find((m) => m.ref.name === 'workers-0')!;
          const serverId = ((await provider.describeMachine(victim.ref)).providerStatus as { serverId: string }).serverId;
          const r = await admin.request('compute', 'POST', `/servers/${serverId}/action`, { 'os-resetState': { state: 'error' } }, NOVA);
          assert.equal(r.status, 202);
          const d = await provider.describeMachine(victim.ref);
          assert.equal(d.state, 'Failed');
          assert.equal(d.failureReason, 'ServerError');
          assert.match(d.failureMessage!, new RegExp(`server ${serverId} is in ERROR`));
        });

        it('delete leaves nothing tagged with the cluster', async () => {
          // What the orphan sweep would compare with the Cluster objects: the cluster's shared resources, by its uid.
          const shared = (await provider.listClusterResources()).filter((r) => r.cluster.uid === cluster.uid);
          const kinds = (kind: string) => shared.filter((r) => r.kind === kind);
          assert.deepEqual(kinds('load balancer').map((r) => r.cluster), [cluster]);
          assert.deepEqual(kinds('security group').map((r) => r.cluster), [cluster]);
          assert.deepEqual(kinds('server group').map((r) => r.name).sort(), [serverGroupName(cluster.uid, 'cp'), serverGroupName(cluster.uid, 'etcd')]);
          await Promise.all(machines.map((m) => provider.deleteMachine(m.ref)));
          await provider.deleteEndpoint(cluster);
          const tag = clusterTag(cluster.uid);
          assert.deepEqual((await marina.request('compute', 'GET', `/servers/detail?tags=${tag}`, undefined, NOVA)).body.servers, []);
          assert.deepEqual((await marina.request('network', 'GET', `/v2.0/ports?tags=${tag}`)).body.ports, []);
          assert.deepEqual((await marina.request('network', 'GET', `/v2.0/security-groups?tags=${tag}`)).body.security_groups, []);
          assert.deepEqual((await marina.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=${tag}`)).body.loadbalancers, []);
          const groups = (await marina.request('compute', 'GET', '/os-server-groups', undefined, NOVA)).body.server_groups as any[];
          assert.deepEqual(groups.filter((g) => g.name.includes(cluster.uid)), []);
          assert.deepEqual((await provider.listMachines()).filter((x) => x.ref.cluster === cluster.name), []);
          assert.deepEqual((await provider.listClusterResources()).filter((r) => r.cluster.uid === cluster.uid), []);
        });
      });
    });

    describe('errors a user can act on, with OpenStack\'s message', () => {
      const provider = newProvider();
      const made: MachineRef[] = [];
      const machine = (over: Partial<MachineFacts>): MachineRef => {
        const ref: MachineRef = { project: 'p', cluster: 'errors', name: `m-${made.length}`, uid: randomUUID() };
        directory.facts.set(ref.uid, { clusterUid: directory.clusterUid('p', 'errors'), pool: 'workers', roles: ['worker'], image: env.image.name, flavor: 'm1.small', podCIDR: POD_CIDR, ...over });
        made.push(ref);
        return ref;
      };
      after(async () => {
        for (const m of made) await provider.deleteMachine(m).catch(() => undefined);
      });

      const rejectsWith = async (p: Promise<unknown>, reason: string, message: RegExp, terminal: boolean) => {
        const err = await p.then(
          () => assert.fail(`expected ${reason}`),
          (e: unknown) => e,
        );
        assert.ok(err instanceof ProviderError, `a ProviderError, got ${String(err)}`);
        assert.equal(err.reason, reason, err.message);
        assert.match(err.message, message);
        assert.equal(err.terminal, terminal);
      };

      it('a missing image: ImageNotFound with Nova\'s "Can not find requested image"', async () => {
        const m = machine({ image: randomUUID() });
        await provider.prepareMachine(m);
        await rejectsWith(provider.startMachine(m, bootstrapOf(m, ['worker'])), 'ImageNotFound', /compute \(Nova\) answered 400: Can not find requested image/, true);
        const named = machine({ image: 'no-such-image' });
        await provider.prepareMachine(named);
        await rejectsWith(provider.startMachine(named, bootstrapOf(named, ['worker'])), 'ImageNotFound', /image "no-such-image" not found in Glance/, true);
      });

      it('a missing flavor: FlavorNotFound naming the flavors there are', async () => {
        const m = machine({ flavor: 'm9.huge' });
        await provider.prepareMachine(m);
        await rejectsWith(provider.startMachine(m, bootstrapOf(m, ['worker'])), 'FlavorNotFound', /flavor "m9.huge" not found; flavors: m1.large, m1.medium, m1.small/, true);
      });

      it('quota exceeded: QuotaExceeded with Nova\'s message, retried once there is room', async () => {
        const quotaPath = `/os-quota-sets/${env.project.id}`;
        const used = (await marina.request('compute', 'GET', '/limits', undefined, NOVA)).body.limits.absolute.totalInstancesUsed as number;
        const set = await admin.request('compute', 'PUT', quotaPath, { quota_set: { instances: used } }, NOVA);
        assert.equal(set.status, 200);
        try {
          const m = machine({});
          await provider.prepareMachine(m);
          await rejectsWith(provider.startMachine(m, bootstrapOf(m, ['worker'])), 'QuotaExceeded', /answered 403: Quota exceeded for instances: Requested 1, but already used \d+ of \d+ instances/, false);
        } finally {
          await admin.request('compute', 'PUT', quotaPath, { quota_set: { instances: env.quotas.compute.instances } }, NOVA);
        }
      });

      it('the API unreachable: OpenStackUnreachable naming the address', async () => {
        const port = await freePort();
        const cloud = { ...(await directory.cloud), authURL: `http://127.0.0.1:${port}/v3` };
        const unreachable = new OpenStackProvider({ directory: { cloudOf: async () => cloud, clouds: async () => [cloud], machine: (r) => directory.machine(r) }, joins });
        await rejectsWith(unreachable.describeMachine({ project: 'p', cluster: 'x', name: 'y', uid: randomUUID() }), 'OpenStackUnreachable', new RegExp(`cannot reach OpenStack identity at http://127.0.0.1:${port}: ECONNREFUSED`), false);
      });
    });
  });
}
