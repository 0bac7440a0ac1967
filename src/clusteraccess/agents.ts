// A machine agent's HTTP endpoints (plain HTTP on the machine's agent URL): /healthz, which says
// whether the agent's processes run and are ready, and /metrics (Prometheus text). `AgentApi` is
// what the health checker asks of an agent; `httpAgent` is the real one.
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

export interface AgentApi {
  /**
   * GET /healthz. Throws when the agent does not answer: a TimeoutError after `timeoutMs`, or an
   * error whose `cause.code` says why (ECONNREFUSED).
   */
  health(opts: AgentCallOptions): Promise<AgentHealth>;
  /** GET /metrics: the Prometheus text, or undefined when the agent answers with an error. */
  metrics(opts: AgentCallOptions): Promise<string | undefined>;
}

function deadline(opts: AgentCallOptions): AbortSignal {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  return opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
}

/** The agent at `agentURL`, over HTTP. */
export function httpAgent(agentURL: string): AgentApi {
  return {
    async health(opts) {
      const res = await fetch(`${agentURL}/healthz`, { signal: deadline(opts) });
      const body = (await res.json().catch(() => ({}))) as { processes?: AgentProcess[] };
      return { status: res.status, processes: body.processes ?? [] };
    },
    async metrics(opts) {
      const res = await fetch(`${agentURL}/metrics`, { signal: deadline(opts) });
      if (res.status !== 200) {
        await res.body?.cancel();
        return undefined;
      }
      return res.text();
    },
  };
}
