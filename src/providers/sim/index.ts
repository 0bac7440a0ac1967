// The `sim` provider: machines that exist only in a simulated world (src/sim), for scale tests and
// benchmarks: thousands of clusters on one host, with start-up times like the local provider's
// and faults on demand. Never the default: a server runs it only when asked (`marina server
// --sim`). It reads a machine's bootstrap data the way a real machine would (which etcd cluster to
// join, which etcd servers kube-apiserver is told about, which Node to register) and hands that
// to the world; Marina reaches the resulting clusters through src/clusteraccess/sim.ts.
import type {
  BootstrapService,
  ClusterRef,
  EndpointDescription,
  InfrastructureProvider,
  MachineBootstrap,
  MachineDescription,
  MachineRef,
  PreparedMachine,
  ProviderMachine,
} from '../contract.js';
import { ProviderError } from '../contract.js';
import type { SimMachineSpec } from '../../sim/model.js';
import { SIM_AGENT_PORT, type SimWorld } from '../../sim/world.js';

/** The binaries a simulated machine knows how to "run". */
const KNOWN_BINARIES = new Set(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);

const providerId = (m: MachineRef): string => `sim:///${m.project}/${m.cluster}/${m.name}`;
const agentUrl = (address: string): string => `http://${address}:${SIM_AGENT_PORT}`;

function flag(svc: BootstrapService, name: string): string | undefined {
  const prefix = `--${name}=`;
  return svc.args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

function required(svc: BootstrapService, name: string): string {
  const v = flag(svc, name);
  if (v === undefined || v === '') throw new ProviderError('InvalidBootstrap', `service ${svc.name} has no --${name}`, true);
  return v;
}

/** What a machine runs, read from its bootstrap data as its processes would read their flags. */
export function simSpecOf(bootstrap: MachineBootstrap): SimMachineSpec {
  const spec: SimMachineSpec = { roles: [...bootstrap.roles] };
  for (const file of bootstrap.files) {
    if (file.path.startsWith('/') || file.path.split('/').includes('..')) {
      throw new ProviderError('InvalidBootstrap', `file path ${file.path} leaves the machine directory`, true);
    }
  }
  for (const svc of bootstrap.services) {
    if (!KNOWN_BINARIES.has(svc.binary)) throw new ProviderError('UnknownBinary', `service ${svc.name} needs binary ${svc.binary}, which a simulated machine does not run`, true);
    if (svc.binary === 'etcd') {
      const state = required(svc, 'initial-cluster-state');
      if (state !== 'new' && state !== 'existing') throw new ProviderError('InvalidBootstrap', `etcd --initial-cluster-state=${state}`, true);
      spec.etcd = {
        name: required(svc, 'name'),
        peerURL: required(svc, 'initial-advertise-peer-urls').split(',')[0]!,
        clientURL: required(svc, 'advertise-client-urls').split(',')[0]!,
        state,
        initialCluster: required(svc, 'initial-cluster')
          .split(',')
          .map((entry) => {
            const eq = entry.indexOf('=');
            return { name: entry.slice(0, eq), peerURL: entry.slice(eq + 1) };
          }),
        maxLearners: Number(flag(svc, 'max-learners') ?? 1),
      };
    }
    if (svc.binary === 'kube-apiserver') spec.apiserver = { etcdServers: required(svc, 'etcd-servers').split(',') };
  }
  if (bootstrap.kubelet) {
    const k = bootstrap.kubelet;
    spec.kubelet = { nodeName: k.nodeName, labels: { ...k.labels }, taints: k.taints.map((t) => ({ ...t })), capacity: { ...k.capacity }, kubeletVersion: k.kubeletVersion };
  }
  return spec;
}

export class SimProvider implements InfrastructureProvider {
  readonly name = 'sim';
  /** Simulated machines are Marina's own: one no Machine accounts for is swept like a local one. */
  readonly sweepOrphans = true;

  constructor(readonly world: SimWorld) {}

  async prepareMachine(m: MachineRef): Promise<PreparedMachine> {
    return { address: this.world.prepare(m).address, providerID: providerId(m) };
  }

  async startMachine(m: MachineRef, bootstrap: MachineBootstrap): Promise<MachineDescription> {
    const state = this.world.machine(m);
    if (!state || state.uid !== m.uid) throw new ProviderError('NotPrepared', `machine ${m.name} was not prepared`);
    if (state.startedAt === undefined) this.world.start(state, simSpecOf(bootstrap));
    return this.describeMachine(m);
  }

  async describeMachine(m: MachineRef): Promise<MachineDescription> {
    const d = this.world.describe(m);
    if (d.state === 'Missing') return { state: 'Missing' };
    return {
      state: d.state,
      address: d.address!,
      providerID: providerId(m),
      agentUrl: agentUrl(d.address!),
      providerStatus: d.startedAt !== undefined ? { startedAt: new Date(d.startedAt).toISOString() } : {},
      ...(d.failureReason ? { failureReason: d.failureReason, failureMessage: d.failureMessage ?? '' } : {}),
    };
  }

  async deleteMachine(m: MachineRef): Promise<void> {
    this.world.remove(m);
  }

  async ensureEndpoint(c: ClusterRef, backends: string[]): Promise<EndpointDescription> {
    const e = this.world.ensureEndpoint(c, backends);
    return { url: `https://${e.address}:${e.port}`, host: e.address, port: e.port };
  }

  async deleteEndpoint(c: ClusterRef): Promise<void> {
    this.world.deleteEndpoint(c);
  }

  /** Every machine of the world, prepared or started, with the uid of the Machine it was made for. */
  async listMachines(): Promise<ProviderMachine[]> {
    return this.world.allMachines().map((m) => {
      const ref = { project: m.project, cluster: m.cluster, name: m.name, uid: m.uid };
      return { ref, providerID: providerId(ref), state: this.world.describe(ref).state };
    });
  }

  /** The world outlives the provider (a server closes it after its controllers stopped). */
  async close(): Promise<void> {}
}
