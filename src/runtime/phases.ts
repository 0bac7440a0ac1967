// A reconcile in the Cluster API shape: the reconciler builds a scope (the object, what it depends
// on, a status draft with a condition setter, the context) and runs named phases over it, in order.
// Each phase moves one part of the object towards its spec and records what it saw in the draft.
// A phase may end the reconcile early with an outcome (a gate that stays closed, a machine the
// provider lost), or ask to be looked at again after a while; the earliest such request wins.
import type { Logger } from 'pino';
import type { ConditionInput } from '../api/conditions.js';
import { setCondition } from '../api/conditions.js';
import type { Condition, Resource } from '../api/meta.js';
import type { ReconcileContext } from './controller.js';
import type { Outcome } from './reconcile.js';

export type StatusOf<T extends Resource> = NonNullable<T['status']> & { conditions?: Condition[] };

/** What every phase gets: the object, the status being drafted, and the reconcile's context. */
export interface Scope<T extends Resource> {
  readonly obj: T;
  /** The new status: phases write to it; the reconcile stores it once at the end. */
  readonly status: StatusOf<T>;
  /** Aborted when Marina stops and this reconcile outlived the grace period: pass it to every remote call. */
  readonly signal: AbortSignal;
  /** Bound to the controller and the object's key. */
  readonly log: Logger;
  /** Sets a condition on the draft, stamped with the object's generation. */
  set(condition: ConditionInput): void;
}

/** A scope over a private copy of `obj`'s status. */
export function scopeFor<T extends Resource>(obj: T, ctx: ReconcileContext): Scope<T> {
  const status = { ...(obj.status ?? {}) } as StatusOf<T>;
  return {
    obj,
    status,
    signal: ctx.signal,
    log: ctx.log,
    set(condition) {
      status.conditions = setCondition(status.conditions, condition, obj.metadata.generation);
    },
  };
}

/** Carry on (optionally: look again within `requeueAfterMs`), or end the reconcile with an outcome. */
export type PhaseResult<S> = void | { requeueAfterMs: number } | { end: Outcome<S> };

export interface Phase<Sc, S> {
  readonly name: string;
  run(scope: Sc): Promise<PhaseResult<S>>;
}

export interface PhasesRun<S> {
  /** Set when a phase ended the reconcile. */
  ended?: Outcome<S>;
  /** The earliest requeue a phase asked for. */
  requeueAfterMs?: number;
}

/**
 * Runs `phases` in order until one ends the reconcile. Stops with the signal's reason as soon as
 * the reconcile is aborted: nothing after an abort is worth recording.
 */
export async function runPhases<Sc extends Scope<Resource>, S>(scope: Sc, phases: readonly Phase<Sc, S>[]): Promise<PhasesRun<S>> {
  const run: PhasesRun<S> = {};
  for (const phase of phases) {
    const r = await phase.run(scope);
    scope.signal.throwIfAborted();
    if (!r) continue;
    if ('end' in r) {
      scope.log.debug({ phase: phase.name }, 'reconcile ends at this phase');
      return { ...run, ended: r.end };
    }
    run.requeueAfterMs = Math.min(run.requeueAfterMs ?? Infinity, r.requeueAfterMs);
  }
  return run;
}
