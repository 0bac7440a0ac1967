// The Functions and Pipelines of every project, kept current from the store's watch, and what an
// instance of a Function revision needs (compiled module, environment with the referenced Secret
// values, limits). The cache is derived from the store only, so every Marina process sees the same.
import { ApiError } from '../api/errors.js';
import { compileFunctionSource } from '../api/function-source.js';
import { FUNCTION_DEFAULTS, type FunctionSpec, type PipelineSpec } from '../api/functions.js';
import type { Resource } from '../api/meta.js';
import type { Store, Watch, WatchEvent } from '../store/types.js';
import type { RevisionSpec } from './pool.js';

export type FunctionObject = Resource<FunctionSpec>;
export type PipelineObject = Resource<PipelineSpec>;

const KINDS = ['Function', 'Pipeline'] as const;
const keyOf = (project: string, name: string) => `${project}/${name}`;

export class Catalog {
  private readonly objects = { Function: new Map<string, FunctionObject>(), Pipeline: new Map<string, PipelineObject>() };
  private readonly watches: Watch[] = [];
  private readonly listeners: ((ev: WatchEvent) => void)[] = [];
  private readonly revisions = new Map<string, RevisionSpec>();

  private constructor(private readonly store: Store) {}

  static async start(store: Store): Promise<Catalog> {
    const c = new Catalog(store);
    for (const kind of KINDS) {
      const list = await store.list(kind);
      for (const o of list.items) c.objects[kind].set(keyOf(o.metadata.project!, o.metadata.name), o as never);
      c.watches.push(
        store.watch({ kind, resourceVersion: list.resourceVersion }, (ev) => {
          const key = keyOf(ev.object.metadata.project!, ev.object.metadata.name);
          if (ev.type === 'DELETED') c.objects[kind].delete(key);
          else c.objects[kind].set(key, ev.object as never);
          for (const l of c.listeners) l(ev);
        }),
      );
    }
    return c;
  }

  onChange(listener: (ev: WatchEvent) => void): void {
    this.listeners.push(listener);
  }

  fn(project: string, name: string): FunctionObject | undefined {
    return this.objects.Function.get(keyOf(project, name));
  }

  pipeline(project: string, name: string): PipelineObject | undefined {
    return this.objects.Pipeline.get(keyOf(project, name));
  }

  functions(): FunctionObject[] {
    return [...this.objects.Function.values()];
  }

  pipelines(): PipelineObject[] {
    return [...this.objects.Pipeline.values()];
  }

  /** The revision new invocations of `fn` run (its generation), compiled. Throws a 422 ApiError if it does not compile. */
  revision(fn: FunctionObject): RevisionSpec {
    const project = fn.metadata.project!;
    const revision = fn.metadata.generation ?? 1;
    const key = `${fn.metadata.uid}@${revision}`;
    const hit = this.revisions.get(key);
    if (hit) return hit;
    const spec = fn.spec!;
    const compiled = compileFunctionSource(spec.source);
    if (!compiled.ok) throw ApiError.invalid(compiled.causes);
    const l = { ...FUNCTION_DEFAULTS, ...spec.limits };
    const concurrency = l.concurrency;
    const rs: RevisionSpec = {
      project,
      name: fn.metadata.name,
      revision,
      code: compiled.code,
      env: () => this.environment(project, spec),
      profile: { memoryMiB: l.memoryMiB, network: spec.network === true },
      concurrency,
      targetInFlight: spec.limits?.targetInFlight ?? Math.max(1, Math.ceil(concurrency * 0.7)),
      minInstances: l.minInstances,
      maxInstances: l.maxInstances,
      idleMs: l.idleSeconds * 1000,
    };
    // Only the newest revisions are looked up again; keep the map from growing with every update.
    if (this.revisions.size > 1000) this.revisions.clear();
    this.revisions.set(key, rs);
    return rs;
  }

  /** env plus the referenced Secret values, read when an instance loads (a rotated Secret reaches new instances). */
  private async environment(project: string, spec: FunctionSpec): Promise<Record<string, string>> {
    const env: Record<string, string> = { ...spec.env };
    for (const ref of spec.secretEnv ?? []) {
      const secret = await this.store.get({ kind: 'Secret', project, name: ref.secret });
      const value = (secret?.spec as { data?: Record<string, string> } | undefined)?.data?.[ref.key];
      if (value === undefined) throw new Error(`secretEnv ${ref.name}: Secret ${ref.secret} has no key ${JSON.stringify(ref.key)}`);
      env[ref.name] = value;
    }
    return env;
  }

  stop(): void {
    for (const w of this.watches) w.stop();
    this.watches.length = 0;
  }
}

export function timeoutMs(fn: FunctionObject): number {
  return (fn.spec?.limits?.timeoutSeconds ?? FUNCTION_DEFAULTS.timeoutSeconds) * 1000;
}
