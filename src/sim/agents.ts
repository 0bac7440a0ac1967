// A simulated machine's agent as Marina reaches it (the AgentApi of src/clusteraccess/agents.ts):
// /healthz lists the machine's processes and is 200 when all are ready and the kubelet's
// heartbeats get through; /metrics reports usage. A killed machine refuses the connection; a
// partitioned cluster or an unreachable agent does not answer at all.
import { noAnswer, refused, roundTrip } from './errors.js';
import { alive } from './model.js';
import type { SimCluster, SimWorld } from './world.js';

interface AgentCall {
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Resident memory a simulated machine reports, per process (the local provider's measured figures, MiB). */
const RSS_MIB: Record<string, number> = { agent: 56, etcd: 51, 'kube-apiserver': 287, 'kube-controller-manager': 108, 'kube-scheduler': 64 };

export function simAgent(world: SimWorld, c: SimCluster, agentURL: string) {
  async function reach(o: AgentCall) {
    const m = world.machineOfURL(c, agentURL) ?? world.machineAt(agentURL);
    const ours = m && m.project === c.state.project && m.cluster === c.state.name ? m : undefined;
    if (ours && alive(ours) && !world.agentAnswers(c, ours)) return noAnswer(o.timeoutMs, o.signal);
    if (c.state.partitionedAt !== undefined) return noAnswer(o.timeoutMs, o.signal);
    await roundTrip(world.timing.callLatencyMs);
    o.signal?.throwIfAborted();
    if (!ours || !alive(ours)) throw new TypeError('fetch failed', { cause: refused(agentURL).cause });
    world.settle(c);
    return ours;
  }
  return {
    async health(o: AgentCall) {
      const m = await reach(o);
      const processes = world.processes(c, m);
      return { status: world.agentHealthy(c, m) ? 200 : 503, processes };
    },
    async metrics(o: AgentCall): Promise<string | undefined> {
      const m = await reach(o);
      const uptime = Math.max(0, (world.now() - (m.startedAt ?? world.now())) / 1000);
      const names = ['agent', ...world.processes(c, m).map((p) => p.name)];
      const lines = ['# TYPE marina_agent_process_cpu_seconds_total counter'];
      for (const p of names) lines.push(`marina_agent_process_cpu_seconds_total{process="${p}"} ${(uptime * 0.002).toFixed(3)}`);
      lines.push('# TYPE marina_agent_process_rss_bytes gauge');
      for (const p of names) lines.push(`marina_agent_process_rss_bytes{process="${p}"} ${(RSS_MIB[p] ?? 50) * 2 ** 20}`);
      lines.push('# TYPE marina_agent_disk_used_bytes gauge', `marina_agent_disk_used_bytes ${m.spec?.etcd ? 40 * 2 ** 20 : 2 ** 20}`, '');
      return lines.join('\n');
    },
  };
}
