// The messages between Marina and the runner inside a sandbox, one JSON object per line over an
// anonymous pipe pair (fd 3 of the sandboxed process); nothing in the sandbox listens on a socket.

/** What a handler's context carries besides the logger. */
export interface InvocationContext {
  invocationId: string;
  /** Stable across retries of one delivery: the handler's key for deduplicating side effects. */
  idempotencyKey: string;
  /** ms since epoch: the instance is killed at this time. */
  deadline: number;
  attempt: number;
  function: string;
  project: string;
  revision: number;
  trigger: { type: string; name?: string };
}

export type HostMessage =
  | { t: 'load'; code: string; env: Record<string, string> }
  | { t: 'invoke'; id: string; event: unknown; ctx: InvocationContext };

export type RunnerMessage =
  | { t: 'ready' }
  | { t: 'loaded' }
  | { t: 'loadError'; error: string }
  | { t: 'log'; id?: string; level: string; line: string }
  | { t: 'result'; id: string; ok: true; value: unknown; cpuMs: number }
  | { t: 'result'; id: string; ok: false; error: string; cpuMs: number };
