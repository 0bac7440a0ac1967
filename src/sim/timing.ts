// How long simulated things take. The defaults are what machines of the local provider take on
// the 2-core development machine (docs/benchmarks.md, "Local clusters"): an etcd member serves
// ≈ 1 s after its machine starts, kube-apiserver answers /readyz ≈ 4.5 s after, a worker's agent
// and virtual kubelet are up ≈ 1 s after.

export interface SimTiming {
  /** Machine start → its etcd member serves. */
  etcdMs: number;
  /** Machine start → its kube-apiserver, controller-manager and scheduler are ready. */
  controlPlaneMs: number;
  /** Machine start → its agent and virtual kubelet are up (the Node registers once the API answers). */
  workerMs: number;
  /** A started learner is in sync with the leader (may be promoted) this long after it serves. */
  learnerSyncMs: number;
  /**
   * kube-controller-manager's node-monitor-grace-period: the Node of a machine that stopped
   * (its kubelet no longer posts status) turns Ready=Unknown this long after.
   */
  nodeMonitorGraceMs: number;
  /** A machine whose agent never turned healthy within this long of its start is Failed (as the local provider says). */
  startTimeoutMs: number;
  /** Round trip of every call that gets an answer (0: at once, on the next tick). */
  callLatencyMs: number;
  /**
   * etcd's HealthInterval: a member is added only if the leader has been connected to enough
   * voting members for this long that the quorum survives the newcomer (etcd: 5 s).
   */
  etcdHealthIntervalMs: number;
}

export const DEFAULT_SIM_TIMING: SimTiming = {
  etcdMs: 1000,
  controlPlaneMs: 4500,
  workerMs: 1000,
  learnerSyncMs: 200,
  nodeMonitorGraceMs: 40_000,
  startTimeoutMs: 120_000,
  callLatencyMs: 0,
  etcdHealthIntervalMs: 5000,
};

const NAMES: Record<string, keyof SimTiming> = {
  etcd: 'etcdMs',
  controlplane: 'controlPlaneMs',
  worker: 'workerMs',
  learnersync: 'learnerSyncMs',
  nodegrace: 'nodeMonitorGraceMs',
  starttimeout: 'startTimeoutMs',
  latency: 'callLatencyMs',
  etcdhealth: 'etcdHealthIntervalMs',
};

/**
 * Parses `etcd=1000,controlplane=4500,worker=1000` (milliseconds; also `learnersync`,
 * `nodegrace`, `starttimeout`, `latency`, `etcdhealth`) over the defaults. Throws naming what is wrong.
 */
export function parseSimTiming(text: string | undefined, base: SimTiming = DEFAULT_SIM_TIMING): SimTiming {
  const out = { ...base };
  for (const part of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+)=(\d{1,9})$/.exec(part.toLowerCase());
    const key = m ? NAMES[m[1]!] : undefined;
    if (!m || !key) throw new Error(`sim timing ${JSON.stringify(part)}: expected NAME=MILLISECONDS with NAME one of ${Object.keys(NAMES).join(', ')}`);
    out[key] = Number(m[2]);
  }
  return out;
}
