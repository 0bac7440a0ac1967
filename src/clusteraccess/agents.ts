// A machine agent's HTTP endpoints (plain HTTP on the machine's agent URL): /healthz, which says
// whether the agent's processes run and are ready, and /metrics (Prometheus text).
export interface AgentProcess {
  name: string;
  state: string;
  ready: boolean;
  restarts: number;
  lastError?: string;
}

export interface AgentHealth {
  /** HTTP status: 200 when every process runs and is ready, 503 otherwise. */
  status: number;
  processes: AgentProcess[];
}

export interface AgentCallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

function deadline(opts: AgentCallOptions): AbortSignal {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  return opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
}

/** GET /healthz. Throws when the agent does not answer (a TimeoutError after `timeoutMs`). */
export async function agentHealth(agentURL: string, opts: AgentCallOptions): Promise<AgentHealth> {
  const res = await fetch(`${agentURL}/healthz`, { signal: deadline(opts) });
  const body = (await res.json().catch(() => ({}))) as { processes?: AgentProcess[] };
  return { status: res.status, processes: body.processes ?? [] };
}

/** GET /metrics: the Prometheus text, or undefined when the agent answers with an error. */
export async function agentMetrics(agentURL: string, opts: AgentCallOptions): Promise<string | undefined> {
  const res = await fetch(`${agentURL}/metrics`, { signal: deadline(opts) });
  if (res.status !== 200) {
    await res.body?.cancel();
    return undefined;
  }
  return res.text();
}
