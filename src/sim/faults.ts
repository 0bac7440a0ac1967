// Faults for simulated clusters, injected by tests, benchmarks and platform admins (POST
// /api/v1alpha1/sim/faults): each breaks one thing the way it breaks in a real cluster, and Marina
// finds out only through the same probes it uses on real clusters.
//   KillMachine       the machine's process group is gone: its agent refuses connections, the
//                     provider reports it Failed, its etcd member is down, its Node goes Unknown
//                     after the node-monitor grace period. Not clearable: a machine killed is gone.
//   NodeNotReady      its kubelet reports Ready=False (the machine and agent run on)
//   AgentUnreachable  Marina gets no answer from its agent (the machine runs on, its Node stays Ready)
//   PartitionCluster  nothing of the cluster answers Marina (API, etcd, agents); inside, it works on
//   EtcdMemberDown    the machine's etcd process stops; the agent reports it in /healthz
// Each but KillMachine is undone with `clear: true` (an etcd member comes back after its start time).
import type { MachineState } from './model.js';
import type { SimWorld } from './world.js';

export const SIM_FAULT_TYPES = ['KillMachine', 'NodeNotReady', 'AgentUnreachable', 'PartitionCluster', 'EtcdMemberDown'] as const;
export type SimFaultType = (typeof SIM_FAULT_TYPES)[number];

export interface SimFault {
  type: SimFaultType;
  project: string;
  cluster: string;
  /** The Machine (by name); every type but PartitionCluster needs one. */
  machine?: string;
  /** Undo the fault instead. */
  clear?: boolean;
}

export interface AppliedFault extends SimFault {
  /** When it took effect (RFC 3339). */
  at: string;
}

/** A fault that cannot be applied; `field` names what is wrong (for a 422). */
export class SimFaultError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'SimFaultError';
  }
}

type MachineFault = 'nodeNotReadyAt' | 'agentUnreachableAt' | 'etcdDownAt';
const MACHINE_FIELD: Partial<Record<SimFaultType, MachineFault>> = {
  NodeNotReady: 'nodeNotReadyAt',
  AgentUnreachable: 'agentUnreachableAt',
  EtcdMemberDown: 'etcdDownAt',
};

/**
 * Checks every fault first and applies them all together (or none, throwing SimFaultError with
 * the index of the first bad one in `field`), so a batch fails "at once".
 */
export function applyFaults(world: SimWorld, faults: readonly SimFault[]): AppliedFault[] {
  const targets = faults.map((f, i) => target(world, f, `faults[${i}]`));
  const now = world.now();
  const at = new Date(now).toISOString();
  return faults.map((f, i) => {
    const c = world.cluster(f.project, f.cluster);
    const m = targets[i];
    if (f.type === 'PartitionCluster') {
      if (f.clear) delete c.state.partitionedAt;
      else c.state.partitionedAt ??= now;
      world.saveCluster(c);
    } else if (f.type === 'KillMachine') {
      m!.killedAt ??= now;
      world.saveMachine(m!);
      // Its Node turns Unknown once the grace period passed: tell the Node's watchers then.
      const node = m!.spec?.kubelet?.nodeName;
      if (node) world.later(world.timing.nodeMonitorGraceMs + 1, () => world.nodeChanged(c, node));
    } else {
      const field = MACHINE_FIELD[f.type]!;
      if (f.clear) {
        if (m![field] !== undefined && field === 'etcdDownAt') m!.etcdRestartedAt = now + world.timing.etcdMs;
        delete m![field];
      } else {
        m![field] ??= now;
      }
      world.saveMachine(m!);
      const node = m!.spec?.kubelet?.nodeName;
      if (field === 'nodeNotReadyAt' && node) {
        const n = c.nodes.get(node);
        if (n) {
          n.resourceVersion = c.state.nextRv++;
          world.saveNode(c, n);
          world.saveCluster(c);
        }
        world.nodeChanged(c, node);
      }
      if (field === 'etcdDownAt' && f.clear) world.later(world.timing.etcdMs + 1, () => world.settle(c));
    }
    world.settle(c);
    return { ...f, at };
  });
}

function target(world: SimWorld, f: SimFault, path: string): MachineState | undefined {
  if (!world.findCluster(f.project, f.cluster)) throw new SimFaultError(`${path}.cluster`, `no simulated cluster ${f.project}/${f.cluster}`);
  if (f.type === 'PartitionCluster') return undefined;
  if (!f.machine) throw new SimFaultError(`${path}.machine`, `${f.type} needs a machine`);
  const m = world.machine({ project: f.project, cluster: f.cluster, name: f.machine });
  if (!m || m.startedAt === undefined) throw new SimFaultError(`${path}.machine`, `no started simulated machine ${f.machine} in cluster ${f.project}/${f.cluster}`);
  if (f.type === 'KillMachine' && f.clear) throw new SimFaultError(`${path}.clear`, 'a killed machine is gone; it cannot be brought back');
  if (f.type === 'EtcdMemberDown' && !m.spec?.etcd) throw new SimFaultError(`${path}.machine`, `machine ${f.machine} runs no etcd member`);
  if ((f.type === 'NodeNotReady') && !m.spec?.kubelet) throw new SimFaultError(`${path}.machine`, `machine ${f.machine} has no Node`);
  return m;
}

/** The faults in effect now, for GET /api/v1alpha1/sim/faults. */
export function activeFaults(world: SimWorld): AppliedFault[] {
  const out: AppliedFault[] = [];
  const iso = (t: number) => new Date(t).toISOString();
  for (const c of world.allClusters()) {
    const { project, name: cluster } = c.state;
    if (c.state.partitionedAt !== undefined) out.push({ type: 'PartitionCluster', project, cluster, at: iso(c.state.partitionedAt) });
    for (const m of c.machines.values()) {
      const base = { project, cluster, machine: m.name };
      if (m.killedAt !== undefined) out.push({ type: 'KillMachine', ...base, at: iso(m.killedAt) });
      if (m.nodeNotReadyAt !== undefined) out.push({ type: 'NodeNotReady', ...base, at: iso(m.nodeNotReadyAt) });
      if (m.agentUnreachableAt !== undefined) out.push({ type: 'AgentUnreachable', ...base, at: iso(m.agentUnreachableAt) });
      if (m.etcdDownAt !== undefined) out.push({ type: 'EtcdMemberDown', ...base, at: iso(m.etcdDownAt) });
    }
  }
  return out;
}
