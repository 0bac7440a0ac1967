// One health check pass over one cluster: every probe runs in parallel with its own timeout, and
// every failure becomes a ComponentCheck with a message, never an exception. The advanced part
// (Prometheus metrics of etcd, apiservers and agents) runs only when asked to, since scraping an
// apiserver's /metrics (megabytes of text) costs far more than the simple probes.
import type { Cluster, Machine } from '../api/kinds.js';
import { etcdClientURL, etcdPeerURL } from '../bootstrap/machine.js';
import type { ApiServerProbe, ClusterConnections, KubeApi } from '../clusteraccess/access.js';
import { etcdEndpoints, etcdMembership } from '../clusteraccess/etcd.js';
import { findMember } from '../etcd/membership.js';
import type { Node as KubeNode } from '../kube/objects.js';
import { hasComeUp, hasRole, isStarted } from '../api/machines.js';
import { isDeleting } from '../api/meta.js';
import { LABEL_MACHINE } from '../api/wellknown.js';
import { extractAgent, extractApiServer, extractEtcd } from './prom.js';
import type { ClusterMetrics, ComponentCheck, HealthReport, NodeHealth } from './types.js';

/** Scrape state carried from one advanced pass to the next (histogram and CPU deltas). */
export interface ScrapeState {
  etcd: Map<string, ReturnType<typeof extractEtcd>['state']>;
  apiservers: Map<string, ReturnType<typeof extractApiServer>['state']>;
  agents: Map<string, ReturnType<typeof extractAgent>['state']>;
}

export function emptyScrapeState(): ScrapeState {
  return { etcd: new Map(), apiservers: new Map(), agents: new Map() };
}

export interface CheckInput {
  cluster: Cluster;
  machines: Machine[];
  connections: ClusterConnections;
  /** Per-probe timeout. */
  timeoutMs: number;
  /** Run the advanced (metrics) checks in this pass. */
  scrape: boolean;
  state: ScrapeState;
  now?: () => number;
  /** Aborts every probe (Marina is stopping). */
  signal?: AbortSignal;
}

/** Pressure conditions that are a problem when True (Ready is a problem when not True). */
const PRESSURE = new Set(['MemoryPressure', 'DiskPressure', 'PIDPressure', 'NetworkUnavailable']);

/**
 * The machines a check looks at: up once (a booting machine is the provisioning watchdog's and
 * the startup timeout's business, not an incident), with an address, not being removed.
 */
export function checkedMachines(machines: Machine[]): Machine[] {
  return machines.filter((m) => isStarted(m) && hasComeUp(m) && m.status?.address && !isDeleting(m));
}

export async function checkCluster(input: CheckInput): Promise<HealthReport> {
  const now = input.now ?? Date.now;
  const started = now();
  const { cluster, connections } = input;
  const opts = { signal: input.signal };
  const machines = checkedMachines(input.machines);
  const cps = machines.filter((m) => hasRole(m, 'controlplane'));
  const etcds = machines.filter((m) => hasRole(m, 'etcd'));

  let kube: KubeApi | undefined;
  try {
    kube = await connections.kube(cluster);
  } catch {
    kube = undefined;
  }

  const [endpoint, apiservers, etcdChecks, agents, nodes] = await Promise.all([
    timed('endpoint', undefined, async () => {
      if (!kube) return { ok: false, message: 'the cluster has no admin kubeconfig yet' };
      return kube.readyz(opts);
    }),
    Promise.all(
      cps.map(async (m) => {
        const probe = await connections.apiserverAt(cluster, m.status!.address!).catch(() => undefined);
        return { machine: m, probe, check: await timed('apiserver', m.metadata.name, async () => (probe ? probe.readyz(opts) : { ok: false, message: 'no admin kubeconfig yet' })) };
      }),
    ),
    checkEtcd(input, etcds),
    Promise.all(machines.map((m) => checkAgent(input, m))),
    (async (): Promise<KubeNode[] | undefined> => {
      if (!kube) return undefined;
      try {
        return await kube.listNodes(opts);
      } catch {
        return undefined;
      }
    })(),
  ]);

  const checks: ComponentCheck[] = [endpoint, ...apiservers.map((a) => a.check), ...etcdChecks];
  for (const a of agents) checks.push(a.check, ...a.processChecks);
  // Leader election leases: a fresh lease means some controller-manager / scheduler is working.
  // Without a reachable API there is nothing to ask (the endpoint check already fails).
  if (kube && endpoint.ok && cps.length > 0) {
    checks.push(...(await Promise.all(['kube-controller-manager', 'kube-scheduler'].map((n) => checkLease(kube!, n as LeaseComponent, now(), input.signal)))));
  }

  const nodeHealth = nodes ? nodes.map(nodeHealthOf) : [];
  let metrics: ClusterMetrics | undefined;
  if (input.scrape) metrics = await scrape(input, etcds, apiservers, agents, now);

  const failing = checks.filter((c) => !c.ok).length;
  const nodeProblems = nodeHealth.filter((n) => n.problems.length > 0).length;
  return {
    project: cluster.metadata.project ?? '',
    cluster: cluster.metadata.name,
    at: new Date(started).toISOString(),
    durationMs: now() - started,
    healthy: failing === 0 && nodeProblems === 0 && nodes !== undefined,
    checks,
    nodes: nodeHealth,
    ...(metrics ? { metrics } : {}),
  };
}

async function timed(
  component: ComponentCheck['component'],
  machine: string | undefined,
  probe: () => Promise<{ ok: boolean; message: string }>,
): Promise<ComponentCheck> {
  const t0 = Date.now();
  let r: { ok: boolean; message: string };
  try {
    r = await probe();
  } catch (err) {
    r = { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  return { component, ...(machine ? { machine } : {}), ok: r.ok, message: r.message.slice(0, 1024), latencyMs: Date.now() - t0 };
}

async function checkEtcd(input: CheckInput, etcds: Machine[]): Promise<ComponentCheck[]> {
  if (etcds.length === 0) return [];
  const t0 = Date.now();
  try {
    const membership = await etcdMembership(input.connections, input.cluster, etcds, { signal: input.signal });
    if (!membership) return etcds.map((m) => ({ component: 'etcd', machine: m.metadata.name, ok: false, message: 'the cluster has no PKI' }));
    const health = await membership.health();
    const latencyMs = Date.now() - t0;
    return etcds.map((m): ComponentCheck => {
      const member = findMember(health, etcdPeerURL(m.status!.address!));
      if (!member) return { component: 'etcd', machine: m.metadata.name, ok: false, message: 'not a member of the etcd cluster', latencyMs };
      return {
        component: 'etcd',
        machine: m.metadata.name,
        ok: member.healthy,
        message: member.healthy ? (member.isLearner ? 'healthy (learner)' : 'healthy') : (member.error ?? 'unhealthy'),
        latencyMs,
      };
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return etcds.map((m) => ({ component: 'etcd', machine: m.metadata.name, ok: false, message: message.slice(0, 1024), latencyMs: Date.now() - t0 }));
  }
}

/** Services whose process state (as the agent reports it) is checked per machine. */
const PROCESS_COMPONENTS = new Set(['kube-controller-manager', 'kube-scheduler']);

async function checkAgent(input: CheckInput, m: Machine): Promise<{ machine: Machine; check: ComponentCheck; processChecks: ComponentCheck[] }> {
  const { timeoutMs, signal } = input;
  const name = m.metadata.name;
  const url = m.status?.agentURL;
  const t0 = Date.now();
  if (!url) return { machine: m, check: { component: 'agent', machine: name, ok: false, message: 'the provider reports no agent URL' }, processChecks: [] };
  try {
    const res = await input.connections.agent(input.cluster, url).health({ timeoutMs, ...(signal ? { signal } : {}) });
    const latencyMs = Date.now() - t0;
    const processes = res.processes;
    const down = processes.filter((p) => p.state !== 'running' || !p.ready);
    const processChecks = processes
      .filter((p) => PROCESS_COMPONENTS.has(p.name))
      .map((p): ComponentCheck => ({
        component: p.name as ComponentCheck['component'],
        machine: name,
        ok: p.state === 'running',
        message: p.state === 'running' ? `running (${p.restarts} restarts)` : `${p.state}${p.lastError ? `: ${p.lastError}` : ''}`.slice(0, 1024),
      }));
    const ok = res.status === 200;
    const message = ok
      ? 'ok'
      : `HTTP ${res.status}${down.length ? `: ${down.map((p) => `${p.name} ${p.state}${p.ready ? '' : ' (not ready)'}`).join(', ')}` : ''}`;
    return { machine: m, check: { component: 'agent', machine: name, ok, message: message.slice(0, 1024), latencyMs, reachable: true }, processChecks };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const message = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    return {
      machine: m,
      check: { component: 'agent', machine: name, ok: false, message: `unreachable: ${message}`, latencyMs: Date.now() - t0, reachable: false },
      processChecks: [],
    };
  }
}

type LeaseComponent = 'kube-controller-manager' | 'kube-scheduler';

async function checkLease(kube: KubeApi, component: LeaseComponent, nowMs: number, signal: AbortSignal | undefined): Promise<ComponentCheck> {
  return timed(component, undefined, async () => {
    const lease = await kube.getLease('kube-system', component, { signal });
    if (!lease) return { ok: false, message: 'no leader: the kube-system lease does not exist' };
    const renewed = lease.renewTime ? Date.parse(lease.renewTime) : NaN;
    const duration = (lease.leaseDurationSeconds ?? 15) * 1000;
    // Twice the lease duration: a leader renews every ~2 s, so this only fires when none is left.
    if (!Number.isFinite(renewed) || nowMs - renewed > 2 * duration) {
      return { ok: false, message: `no active leader: lease held by ${lease.holderIdentity ?? 'nobody'}, last renewed ${lease.renewTime ?? 'never'}` };
    }
    return { ok: true, message: `leader ${lease.holderIdentity ?? 'unknown'}` };
  });
}

function nodeHealthOf(node: KubeNode): NodeHealth {
  const conditions = node.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  const problems = conditions
    .filter((c) => (c.type === 'Ready' ? c.status !== 'True' : PRESSURE.has(c.type) && c.status === 'True'))
    .map((c) => ({ type: c.type, status: c.status, ...(c.reason ? { reason: c.reason } : {}), ...(c.message ? { message: c.message.slice(0, 512) } : {}) }));
  if (!ready) problems.push({ type: 'Ready', status: 'Unknown', reason: 'NoReadyCondition', message: 'the kubelet has not reported yet' });
  const status = ready?.status === 'True' || ready?.status === 'False' ? ready.status : 'Unknown';
  return {
    name: node.metadata.name,
    machine: node.metadata.labels?.[LABEL_MACHINE] ?? node.metadata.name,
    ready: status,
    problems,
    ...(node.spec?.unschedulable ? { unschedulable: true } : {}),
  };
}

async function scrape(
  input: CheckInput,
  etcds: Machine[],
  apiservers: { machine: Machine; probe: ApiServerProbe | undefined }[],
  agents: { machine: Machine; check: ComponentCheck }[],
  now: () => number,
): Promise<ClusterMetrics> {
  const { state } = input;
  const at = new Date(now()).toISOString();
  const etcdApi = etcds.length > 0 ? await input.connections.etcd(input.cluster, etcdEndpoints(etcds)).catch(() => undefined) : undefined;
  const [etcd, apis, machines] = await Promise.all([
    Promise.all(
      etcds.map(async (m) => {
        if (!etcdApi) return undefined;
        try {
          const text = await etcdApi.metrics(etcdClientURL(m.status!.address!), { signal: input.signal });
          const r = extractEtcd(m.metadata.name, text, state.etcd.get(m.metadata.name));
          state.etcd.set(m.metadata.name, r.state);
          return r.metrics;
        } catch {
          return undefined;
        }
      }),
    ),
    Promise.all(
      apiservers.map(async ({ machine, probe }) => {
        if (!probe) return undefined;
        try {
          const r = extractApiServer(machine.metadata.name, await probe.metrics({ signal: input.signal }), state.apiservers.get(machine.metadata.name));
          state.apiservers.set(machine.metadata.name, r.state);
          return r.metrics;
        } catch {
          return undefined;
        }
      }),
    ),
    Promise.all(
      agents.map(async ({ machine, check }) => {
        const url = machine.status?.agentURL;
        if (!url || !check.ok) return undefined;
        try {
          const text = await input.connections.agent(input.cluster, url).metrics({ timeoutMs: input.timeoutMs, ...(input.signal ? { signal: input.signal } : {}) });
          if (text === undefined) return undefined;
          const r = extractAgent(machine.metadata.name, text, state.agents.get(machine.metadata.name), now());
          state.agents.set(machine.metadata.name, r.state);
          return r.metrics;
        } catch {
          return undefined;
        }
      }),
    ),
  ]);
  // Forget scrape state of machines that are gone, so a reused name starts fresh.
  const live = new Set(input.machines.map((m) => m.metadata.name));
  for (const map of [state.etcd, state.apiservers, state.agents] as Map<string, unknown>[]) for (const k of map.keys()) if (!live.has(k)) map.delete(k);
  return {
    at,
    etcd: etcd.filter((x) => x !== undefined),
    apiservers: apis.filter((x) => x !== undefined),
    machines: machines.filter((x) => x !== undefined),
  };
}
