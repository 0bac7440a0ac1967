// The function service's calls beside the CRUD of Function, Pipeline and EventSource (which the
// generic client methods do): invoking, activation records, dead letters, pipeline runs.
//
//   const fns = new FunctionsApi(client);
//   const { activation, result } = await fns.invoke('demo', 'hello', { name: 'you' });
import type { Activation, Delivery, PipelineRun } from '../api/functions.js';
import type { MarinaClient } from './client.js';
import { API_PATH } from './resources.js';

export type { Activation, Delivery, PipelineRun };

/** A synchronous invocation: the activation record (whatever its outcome) and the full result. */
export interface Invocation {
  kind: 'Invocation';
  activation: Activation;
  result: unknown;
}

/** A pipeline run with the activation of every step attempt, oldest first. */
export type PipelineRunTrace = PipelineRun & { activations: Activation[] };

export interface FunctionInstance {
  id: string;
  revision: number;
  state: 'starting' | 'ready' | 'draining';
  inFlight: number;
  idleSeconds: number;
}

export interface InvokeOptions {
  /** Queue the call instead of waiting (answers the Delivery). */
  async?: boolean;
  /** Asynchronous calls with the same key are one delivery (kept 24 h). */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

const enc = encodeURIComponent;

export class FunctionsApi {
  constructor(private readonly client: MarinaClient) {}

  private base(project: string): string {
    return `${API_PATH}/projects/${enc(project)}`;
  }

  /** Calls a function and waits for it; `event` undefined sends no body (the handler gets null). */
  invoke(project: string, name: string, event?: unknown, opts: InvokeOptions & { async?: false } = {}): Promise<Invocation> {
    return this.client.request('POST', `${this.base(project)}/functions/${enc(name)}/invoke`, this.invokeRequest(event, opts));
  }

  /** Queues a call of a function. */
  invokeAsync(project: string, name: string, event?: unknown, opts: Omit<InvokeOptions, 'async'> = {}): Promise<Delivery> {
    return this.client.request('POST', `${this.base(project)}/functions/${enc(name)}/invoke`, this.invokeRequest(event, { ...opts, async: true }));
  }

  /** The function's sandbox instances in the Marina process that answers (none: scaled to zero). */
  async instances(project: string, name: string, signal?: AbortSignal): Promise<FunctionInstance[]> {
    const res = await this.client.request<{ items: FunctionInstance[] }>('GET', `${this.base(project)}/functions/${enc(name)}/instances`, { signal });
    return res.items;
  }

  /** Newest first, without their logs. */
  async activations(project: string, name: string, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<Activation[]> {
    const res = await this.client.request<{ items: Activation[] }>('GET', `${this.base(project)}/functions/${enc(name)}/activations`, { query: { limit: opts.limit }, signal: opts.signal });
    return res.items;
  }

  /** One activation with its logs. */
  activation(project: string, id: string, signal?: AbortSignal): Promise<Activation> {
    return this.client.request('GET', `${this.base(project)}/activations/${enc(id)}`, { signal });
  }

  async deadLetters(project: string, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<Delivery[]> {
    const res = await this.client.request<{ items: Delivery[] }>('GET', `${this.base(project)}/deadletters`, { query: { limit: opts.limit }, signal: opts.signal });
    return res.items;
  }

  replay(project: string, id: string): Promise<Delivery> {
    return this.client.request('POST', `${this.base(project)}/deadletters/${enc(id)}/replay`);
  }

  /** Starts a run; the run's id appears in `delivery.pipelineRun` once it started (see `runOf`). */
  runPipeline(project: string, name: string, event?: unknown, opts: Omit<InvokeOptions, 'async'> = {}): Promise<Delivery> {
    return this.client.request('POST', `${this.base(project)}/pipelines/${enc(name)}/invoke`, this.invokeRequest(event, opts));
  }

  /** Newest first. */
  async runs(project: string, pipeline: string, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<PipelineRun[]> {
    const res = await this.client.request<{ items: PipelineRun[] }>('GET', `${this.base(project)}/pipelines/${enc(pipeline)}/runs`, { query: { limit: opts.limit }, signal: opts.signal });
    return res.items;
  }

  run(project: string, pipeline: string, id: string, signal?: AbortSignal): Promise<PipelineRunTrace> {
    return this.client.request('GET', `${this.base(project)}/pipelines/${enc(pipeline)}/runs/${enc(id)}`, { signal });
  }

  /** The run a pipeline delivery started, once it started (undefined before). */
  async runOf(project: string, pipeline: string, deliveryId: string, signal?: AbortSignal): Promise<PipelineRun | undefined> {
    return (await this.runs(project, pipeline, { limit: 20, signal })).find((r) => r.deliveryId === deliveryId);
  }

  private invokeRequest(event: unknown, opts: InvokeOptions) {
    return {
      query: { async: opts.async ? true : undefined },
      ...(event === undefined ? {} : { body: JSON.stringify(event) }),
      ...(opts.idempotencyKey ? { headers: { 'idempotency-key': opts.idempotencyKey } } : {}),
      signal: opts.signal,
    };
  }
}
