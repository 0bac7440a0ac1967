// The OpenStack infrastructure provider: a machine is a Neutron port (prepareMachine: its address
// exists before certificates name it) and a Nova server booted on that port from the pool's image
// and flavor, with cloud-init user data that runs the agent join (a single-use token); etcd and
// control-plane pools get an anti-affinity server group; a cluster has one security group and an
// Octavia load balancer as its API endpoint.
//
// The provider keeps no state of its own: everything is found again by tags (./identity.ts), so a
// restarted Marina re-adopts what runs and the orphan sweep sees what no Machine accounts for.
// What a machine should be and which cloud it runs in come from the CloudDirectory; the join
// tokens and the agents' reports from MachineJoins (./config.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ProviderError,
  type ClusterRef,
  type EndpointDescription,
  type InfrastructureProvider,
  type MachineBootstrap,
  type MachineDescription,
  type MachineRef,
  type PreparedMachine,
  type ProviderCallOptions,
  type ProviderClusterResource,
  type ProviderMachine,
} from '../contract.js';
import { OpenStackApi } from './api.js';
import { ensureServerGroup, isGoing, machineServers, resolveFlavor, resolveImage, serverState, wantsAntiAffinity } from './compute.js';
import type { CloudConfig, CloudDirectory, MachineFacts, MachineJoins } from './config.js';
import { deleteLoadBalancers, ensureLoadBalancer, type Settle } from './endpoint.js';
import { doing } from './errors.js';
import {
  cloudTag,
  clusterDescription,
  clusterOfDescription,
  clusterResourceName,
  clusterTag,
  clusterUidOfServerGroup,
  clusterUidOfTags,
  isServerGroupOf,
  machineOfPort,
  machineOfServer,
  machineTag,
  META,
  providerIdOf,
} from './identity.js';
import {
  APISERVER_PORT,
  clusterSecurityGroups,
  createMachinePort,
  ensureSecurityGroup,
  machinePorts,
  portAddress,
  resolveNetwork,
  resolveSubnet,
  tagMachinePort,
  VM_AGENT_PORT,
} from './network.js';
import { OpenStackSession } from './session.js';
import { renderUserData } from './userdata.js';

export interface OpenStackProviderOptions {
  directory: CloudDirectory;
  joins: MachineJoins;
  /** Waits on OpenStack (a server leaving BUILD or going away, a load balancer becoming ACTIVE). */
  waitTimeoutMs?: number;
  pollMs?: number;
  /** Per request (default 30 s). */
  requestTimeoutMs?: number;
}

const DEFAULT_MANAGEMENT_CIDR = '0.0.0.0/0';

export class OpenStackProvider implements InfrastructureProvider {
  readonly name = 'openstack';
  /** A server put into ERROR (or stopped) tells Marina nothing by itself: each running machine is described every minute. */
  readonly capabilities = { describeEveryMs: 60_000 };
  /** Leaked servers cost money: the sweep deletes orphans after its grace period. */
  readonly sweepOrphans = true;

  private readonly sessions = new Map<string, OpenStackApi>();
  /** machine uid → the cloud listMachines found it in: an orphan's cluster (and so its cloud name) may be gone. */
  private readonly seenIn = new Map<string, CloudConfig>();
  /** resource id → the cloud listClusterResources found it in (its cluster, and so its cloud, is gone). */
  private readonly resourcesIn = new Map<string, CloudConfig>();
  /** Work that must not run twice at once (making a cluster's groups, booting into one group), by key. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly o: OpenStackProviderOptions) {}

  async prepareMachine(m: MachineRef, opts: ProviderCallOptions = {}): Promise<PreparedMachine> {
    const { cloud, api } = await this.cloudOf(m);
    const facts = await this.facts(m);
    return doing(`preparing the port of machine ${m.name}`, async () => {
      const signal = opts.signal;
      let port = (await machinePorts(api, m, signal))[0];
      if (!port) {
        const network = await resolveNetwork(api, facts.network ?? cloud.network, signal);
        const subnet = await resolveSubnet(api, network, facts.network ? undefined : cloud.subnet, signal);
        const cluster: ClusterRef = { project: m.project, name: m.cluster, uid: facts.clusterUid };
        const securityGroup = await this.serialized(`security group ${cloud.uid} ${cluster.uid}`, () =>
          ensureSecurityGroup(api, cloud.uid, cluster, facts.podCIDR, cloud.managementCIDR ?? DEFAULT_MANAGEMENT_CIDR, signal),
        );
        port = await createMachinePort(api, m, { network, subnet, securityGroup, podCIDR: facts.podCIDR }, signal);
      }
      await tagMachinePort(api, port, m, cloud.uid, facts.clusterUid, signal);
      return { address: portAddress(port), providerID: providerIdOf(port.id, undefined) };
    });
  }

  async startMachine(m: MachineRef, bootstrap: MachineBootstrap, opts: ProviderCallOptions = {}): Promise<MachineDescription> {
    const { cloud, api } = await this.cloudOf(m);
    const facts = await this.facts(m);
    const signal = opts.signal;
    const existing = await doing(`looking up the server of machine ${m.name}`, () => machineServers(api, machineTag(m.uid), m.uid, signal));
    if (existing.some((s) => !isGoing(s))) return this.describeMachine(m, opts);
    const port = (await doing(`looking up the port of machine ${m.name}`, () => machinePorts(api, m, signal)))[0];
    if (!port) throw new ProviderError('NotPrepared', `machine ${m.name} has no port yet (prepareMachine first)`);

    // Checked before a token is issued: a wrong image or flavor is the pool's spec, not a boot failure.
    const imageRef = await doing(`finding image ${JSON.stringify(facts.image)} for machine ${m.name}`, () => resolveImage(api, facts.image, signal));
    const flavor = await doing(`finding flavor ${JSON.stringify(facts.flavor)} for machine ${m.name}`, () => resolveFlavor(api, facts.flavor, signal));
    const address = portAddress(port);
    const join = await this.o.joins.issue(m, bootstrap, cloud.marinaURL);
    const server = {
      name: m.name,
      flavorRef: flavor.id,
      imageRef,
      networks: [{ port: port.id }],
      user_data: Buffer.from(renderUserData(join, { address, hostname: m.name })).toString('base64'),
      metadata: { [META.project]: m.project, [META.cluster]: m.cluster, [META.machine]: m.name, [META.machineUid]: m.uid, [META.pool]: facts.pool },
      tags: [cloudTag(cloud.uid), clusterTag(facts.clusterUid), machineTag(m.uid)],
    };
    const boot = (hints?: { group: string }) => doing(`booting the server of machine ${m.name}`, () => api.createServer(server, hints, signal));
    if (!wantsAntiAffinity(facts.roles)) {
      await boot();
    } else {
      // One at a time per group: the group is made once (concurrent first boots would each make
      // one of the same name), and members booted at the same moment can be placed on one host and
      // then fail the compute host's late check (ERROR after three reschedules), so each boot waits
      // until the group's previous one left BUILD.
      await this.serialized(`group ${cloud.uid} ${facts.clusterUid} ${facts.pool}`, async () => {
        const group = await doing(`ensuring the anti-affinity group of pool ${facts.pool}`, () => ensureServerGroup(api, facts.clusterUid, facts.pool, signal));
        const id = await boot({ group: group.id });
        // A server still building after the wait does not fail this start (it booted): the next member goes.
        await this.until(`server of machine ${m.name} to leave BUILD`, async () => (await api.server(id, signal))?.status !== 'BUILD', signal).catch(() => undefined);
      });
    }
    return this.describeMachine(m, opts);
  }

  async describeMachine(m: MachineRef, opts: ProviderCallOptions = {}): Promise<MachineDescription> {
    const { api } = await this.cloudOf(m);
    const signal = opts.signal;
    return doing(`describing machine ${m.name}`, async () => {
      const [servers, ports] = await Promise.all([machineServers(api, machineTag(m.uid), m.uid, signal), machinePorts(api, m, signal)]);
      const port = ports[0];
      let server = servers.find((s) => !isGoing(s)) ?? servers[0];
      // Nova's list leaves out a fault it records at the same moment; the server itself shows it.
      if (server?.status === 'ERROR' && !server.fault) server = (await api.server(server.id, signal)) ?? server;
      if (!port && !server) return { state: 'Missing' };
      const address = port ? portAddress(port) : undefined;
      const base = {
        // The agent serves /healthz, /facts and /metrics there, as on an imported server.
        ...(address ? { address, agentUrl: `http://${address}:${VM_AGENT_PORT}` } : {}),
        providerID: providerIdOf(port?.id, server?.id),
        providerStatus: { ...(server ? { serverId: server.id } : {}), ...(port ? { portId: port.id } : {}) },
      };
      if (!server) return { ...base, state: 'Provisioning' };
      const report = server.status === 'ACTIVE' ? await this.o.joins.report(m) : undefined;
      const st = serverState(server, report?.healthy === true);
      return { ...base, state: st.state, ...(st.reason ? { failureReason: st.reason } : {}), ...(st.message ? { failureMessage: st.message } : {}) };
    });
  }

  async deleteMachine(m: MachineRef, opts: ProviderCallOptions = {}): Promise<void> {
    const { api } = await this.cloudOf(m);
    const signal = opts.signal;
    await doing(`deleting machine ${m.name}`, async () => {
      const servers = await machineServers(api, machineTag(m.uid), m.uid, signal);
      await Promise.all(servers.map((s) => api.deleteServer(s.id, signal)));
      // Nova only unbinds a port it was given: the port goes once the server is gone.
      await this.until(`server of machine ${m.name} deleted`, async () => (await machineServers(api, machineTag(m.uid), m.uid, signal)).length === 0, signal);
      // Server groups and the security group are the cluster's: deleteEndpoint removes them.
      for (const port of await machinePorts(api, m, signal)) await api.deletePort(port.id, signal);
    });
    await this.o.joins.forget(m);
    this.seenIn.delete(m.uid);
  }

  async listMachines(): Promise<ProviderMachine[]> {
    const found = new Map<string, ProviderMachine>();
    for (const cloud of await this.o.directory.clouds()) {
      const api = this.api(cloud);
      const tag = cloudTag(cloud.uid);
      const [servers, ports] = await doing(`listing the machines of cloud ${cloud.project}/${cloud.name}`, () =>
        Promise.all([api.servers([tag]), api.ports({ tags: tag })]),
      );
      const portOf = new Map(ports.map((p) => [p.device_id, p]));
      for (const s of servers) {
        const ref = machineOfServer(s.metadata);
        if (!ref || isGoing(s)) continue;
        const report = s.status === 'ACTIVE' ? await this.o.joins.report(ref) : undefined;
        found.set(ref.uid, { ref, providerID: providerIdOf(portOf.get(s.id)?.id, s.id), state: serverState(s, report?.healthy === true).state });
        this.seenIn.set(ref.uid, cloud);
      }
      for (const p of ports) {
        const ref = machineOfPort(p.description);
        if (!ref || found.has(ref.uid)) continue;
        found.set(ref.uid, { ref, providerID: providerIdOf(p.id, undefined), state: 'Provisioning' });
        this.seenIn.set(ref.uid, cloud);
      }
    }
    return [...found.values()];
  }

  /**
   * The load balancers and security groups tagged with a cloud's uid, and the server groups named
   * after a cluster uid (Nova's groups take no tags), each with the cluster it was made for.
   */
  async listClusterResources(): Promise<ProviderClusterResource[]> {
    const found: ProviderClusterResource[] = [];
    // Rebuilt by each listing (the sweep deletes only what its latest listing found).
    this.resourcesIn.clear();
    for (const cloud of await this.o.directory.clouds()) {
      const api = this.api(cloud);
      const tag = cloudTag(cloud.uid);
      const [lbs, groups, serverGroups] = await doing(`listing the cluster resources of cloud ${cloud.project}/${cloud.name}`, () =>
        Promise.all([api.loadBalancers([tag]), api.securityGroups({ tags: tag }), api.serverGroups()]),
      );
      const clusterOf = (tags: string[], description: string | undefined): ClusterRef | undefined => {
        const uid = clusterUidOfTags(tags);
        if (!uid) return undefined;
        const described = clusterOfDescription(description ?? '');
        return described?.uid === uid ? described : { project: cloud.project, name: '', uid };
      };
      const add = (kind: string, r: { id: string; name: string }, cluster: ClusterRef | undefined) => {
        if (!cluster) return;
        found.push({ kind, id: r.id, name: r.name, cluster });
        this.resourcesIn.set(r.id, cloud);
      };
      for (const lb of lbs) if (lb.provisioning_status !== 'DELETED' && lb.provisioning_status !== 'PENDING_DELETE') add('load balancer', lb, clusterOf(lb.tags, lb.description));
      for (const g of groups) add('security group', g, clusterOf(g.tags, g.description));
      for (const g of serverGroups) {
        const uid = clusterUidOfServerGroup(g.name);
        add('server group', g, uid ? { project: cloud.project, name: '', uid } : undefined);
      }
    }
    return found;
  }

  /** A load balancer with its listener, pool and members; a group once no port or server uses it. */
  async deleteClusterResource(r: ProviderClusterResource): Promise<void> {
    const cloud = this.resourcesIn.get(r.id);
    if (!cloud) throw new ProviderError('ResourceUnknown', `${r.kind} ${r.id} was not listed by this provider`);
    const api = this.api(cloud);
    await doing(`deleting the ${r.kind} ${r.name} (${r.id}) of cluster uid ${r.cluster.uid}`, async () => {
      switch (r.kind) {
        case 'load balancer':
          await deleteLoadBalancers(api, [cloudTag(cloud.uid), clusterTag(r.cluster.uid)], this.settle());
          break;
        case 'security group':
          if (!(await api.deleteSecurityGroup(r.id))) throw new ProviderError('SecurityGroupInUse', `security group ${r.name} (${r.id}) is still used by a port`);
          break;
        case 'server group': {
          const members = (await api.serverGroups()).find((g) => g.id === r.id)?.members ?? [];
          // Its servers are machines: the machine sweep removes them first.
          if (members.length > 0) throw new ProviderError('ServerGroupInUse', `server group ${r.name} (${r.id}) still has servers ${members.join(', ')}`);
          await api.deleteServerGroup(r.id);
          break;
        }
        default:
          throw new ProviderError('ResourceUnknown', `the OpenStack provider makes no ${r.kind}`, true);
      }
    });
    this.resourcesIn.delete(r.id);
  }

  async ensureEndpoint(cluster: ClusterRef, backends: string[], opts: ProviderCallOptions = {}): Promise<EndpointDescription> {
    const cloud = await this.o.directory.cloudOf(cluster.project, cluster.name);
    const api = this.api(cloud);
    const vip = await doing(`ensuring the API load balancer of cluster ${cluster.name}`, async () => {
      const network = await resolveNetwork(api, cloud.loadBalancer?.network ?? cloud.network, opts.signal);
      const subnet = await resolveSubnet(api, network, cloud.loadBalancer?.subnet ?? (cloud.loadBalancer?.network ? undefined : cloud.subnet), opts.signal);
      const members = backends.map((b) => {
        const i = b.lastIndexOf(':');
        return { address: b.slice(0, i), port: Number(b.slice(i + 1)) };
      });
      return ensureLoadBalancer(
        api,
        { tags: [cloudTag(cloud.uid), clusterTag(cluster.uid)], name: clusterResourceName(cluster), description: clusterDescription(cluster), vipSubnetId: subnet.id },
        members,
        this.settle(opts.signal),
      );
    });
    return { url: `https://${vip}:${APISERVER_PORT}`, host: vip, port: APISERVER_PORT };
  }

  /** The load balancer, and what the cluster's machines shared: its security group and server groups. */
  async deleteEndpoint(cluster: ClusterRef, opts: ProviderCallOptions = {}): Promise<void> {
    const cloud = await this.o.directory.cloudOf(cluster.project, cluster.name);
    const api = this.api(cloud);
    const signal = opts.signal;
    await doing(`deleting the API load balancer of cluster ${cluster.name}`, () => deleteLoadBalancers(api, [cloudTag(cloud.uid), clusterTag(cluster.uid)], this.settle(signal)));
    await doing(`deleting the security and server groups of cluster ${cluster.name}`, async () => {
      for (const g of await clusterSecurityGroups(api, cloud.uid, cluster, signal)) {
        // Still used by a machine's port: it goes with the last machine's delete and the next deleteEndpoint.
        await api.deleteSecurityGroup(g.id, signal);
      }
      for (const g of (await api.serverGroups(signal)).filter((g) => isServerGroupOf(g.name, cluster.uid) && g.members.length === 0)) await api.deleteServerGroup(g.id, signal);
    });
  }

  async close(): Promise<void> {
    this.sessions.clear();
    this.seenIn.clear();
    this.resourcesIn.clear();
  }

  // ---------------------------------------------------------------- helpers

  private get waitMs(): number {
    return this.o.waitTimeoutMs ?? 120_000;
  }

  private get pollMs(): number {
    return this.o.pollMs ?? 1000;
  }

  private settle(signal?: AbortSignal): Settle {
    return { timeoutMs: this.waitMs, pollMs: this.pollMs, signal };
  }

  private api(cloud: CloudConfig): OpenStackApi {
    const key = `${cloud.uid}|${cloud.authURL}|${cloud.region ?? ''}|${cloud.interface ?? ''}|${cloud.applicationCredential.id}`;
    let api = this.sessions.get(key);
    if (!api) {
      api = new OpenStackApi(
        new OpenStackSession({
          authURL: cloud.authURL,
          applicationCredential: cloud.applicationCredential,
          ...(cloud.region ? { region: cloud.region } : {}),
          ...(cloud.interface ? { interface: cloud.interface } : {}),
          ...(this.o.requestTimeoutMs ? { timeoutMs: this.o.requestTimeoutMs } : {}),
        }),
      );
      this.sessions.set(key, api);
    }
    return api;
  }

  /** The machine's cloud; for an orphan whose cluster is gone, the cloud listMachines found it in. */
  private async cloudOf(m: MachineRef): Promise<{ cloud: CloudConfig; api: OpenStackApi }> {
    let cloud: CloudConfig;
    try {
      cloud = await this.o.directory.cloudOf(m.project, m.cluster);
    } catch (err) {
      const seen = this.seenIn.get(m.uid);
      if (!seen) throw err;
      cloud = seen;
    }
    return { cloud, api: this.api(cloud) };
  }

  private async facts(m: MachineRef): Promise<MachineFacts> {
    const facts = await this.o.directory.machine(m);
    if (!facts) throw new ProviderError('MachineGone', `machine ${m.project}/${m.cluster}/${m.name} (uid ${m.uid}) no longer exists`, true);
    return facts;
  }

  /** Runs `fn` after every earlier call with the same key finished (this process only: one Marina leader runs the controllers). */
  private async serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(key) ?? Promise.resolve()).catch(() => undefined).then(fn);
    this.queues.set(key, run);
    try {
      return await run;
    } finally {
      if (this.queues.get(key) === run) this.queues.delete(key);
    }
  }

  private async until(what: string, done: () => Promise<boolean>, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.waitMs;
    while (!(await done())) {
      if (Date.now() > deadline) throw new ProviderError('Waiting', `still waiting for the ${what} after ${Math.round(this.waitMs / 1000)} s`);
      await sleep(this.pollMs, undefined, signal ? { signal } : undefined);
    }
  }
}

export type { CloudConfig, CloudDirectory, MachineFacts, MachineJoins } from './config.js';
