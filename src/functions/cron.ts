// Cron triggers. The next run time of every trigger is kept in the database (fn_cron), not in a
// timer: a tick compares it with the clock, queues what is due as deliveries and advances it in
// one transaction, guarded by the expected old value, so two Marina processes never queue a run
// twice and a run due while Marina was down is found at the next start (missed-run policy).
import { Cron } from 'croner';
import { RETRY_DEFAULTS, type CloudEvent, type CronTrigger } from '../api/functions.js';
import type { EnqueueRequest, FunctionStore, TargetKind } from '../store/functions-sqlite.js';
import type { Catalog } from './catalog.js';
import { PROJECT_ATTRIBUTE } from '../events/bus.js';

/** RunAll queues at most this many missed runs of one trigger. */
const MAX_MISSED = 100;
const DEFAULT_STARTING_DEADLINE_S = 60;

export function cronOf(schedule: string, timeZone: string | undefined): Cron {
  const fields = schedule.trim().split(/\s+/).length;
  return new Cron(schedule, { paused: true, timezone: timeZone ?? 'UTC', mode: fields === 6 ? '6-part' : '5-part' });
}

/** Scheduled times in (from, to], at most `max`. */
export function runsBetween(cron: Cron, from: number, to: number, max = 10_000): number[] {
  const out: number[] = [];
  let t = new Date(from);
  while (out.length < max) {
    const next = cron.nextRun(t);
    if (!next || next.getTime() > to) break;
    out.push(next.getTime());
    t = next;
  }
  return out;
}

export function triggerKey(project: string, kind: TargetKind, name: string, trigger: string): string {
  return `${project}/${kind}/${name}/${trigger}`;
}

export interface CronSchedulerOptions {
  store: FunctionStore;
  catalog: Catalog;
  /** Called after deliveries were queued (wakes the dispatcher). */
  onQueued: () => void;
  now?: () => number;
  onSkip?: (key: string, scheduled: number, why: string) => void;
}

export class CronScheduler {
  constructor(private readonly o: CronSchedulerOptions) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  tick(): void {
    const live = new Set<string>();
    let queued = false;
    const targets: { kind: TargetKind; project: string; name: string; cron: CronTrigger[] }[] = [
      ...this.o.catalog.functions().map((f) => ({ kind: 'Function' as const, project: f.metadata.project!, name: f.metadata.name, cron: f.spec?.triggers?.cron ?? [] })),
      ...this.o.catalog.pipelines().map((p) => ({ kind: 'Pipeline' as const, project: p.metadata.project!, name: p.metadata.name, cron: p.spec?.triggers?.cron ?? [] })),
    ];
    for (const t of targets) {
      for (const trig of t.cron) {
        const key = triggerKey(t.project, t.kind, t.name, trig.name);
        live.add(key);
        if (this.tickTrigger(t, trig, key)) queued = true;
      }
    }
    for (const key of this.o.store.cronKeys()) if (!live.has(key)) this.o.store.cronDelete(key);
    if (queued) this.o.onQueued();
  }

  private tickTrigger(t: { kind: TargetKind; project: string; name: string }, trig: CronTrigger, key: string): boolean {
    const { store } = this.o;
    const now = this.now();
    const scheduleId = `${trig.schedule}|${trig.timeZone ?? 'UTC'}`;
    let cron: Cron;
    try {
      cron = cronOf(trig.schedule, trig.timeZone);
    } catch {
      return false; // refused at the API edge; an object stored before the rule existed is skipped
    }
    const state = store.cronState(key);
    if (!state || state.schedule !== scheduleId) {
      // A new or changed schedule starts from now: nothing before its creation is "missed".
      store.cronInit(key, scheduleId, cron.nextRun(new Date(now))?.getTime() ?? Number.MAX_SAFE_INTEGER);
      return false;
    }
    if (state.nextRun > now) return false;
    const due = [state.nextRun, ...runsBetween(cron, state.nextRun, now)];
    const deadlineMs = (trig.startingDeadlineSeconds ?? DEFAULT_STARTING_DEADLINE_S) * 1000;
    const onTime = due.filter((s) => now - s <= deadlineMs);
    const missed = due.filter((s) => now - s > deadlineMs);
    const policy = trig.missedRunPolicy ?? 'RunOnce';
    const fromMissed = policy === 'Skip' ? [] : policy === 'RunOnce' ? missed.slice(-1) : missed.slice(-MAX_MISSED);
    for (const s of missed) if (!fromMissed.includes(s)) this.o.onSkip?.(key, s, `missed while Marina was not running (missedRunPolicy ${policy})`);
    const toRun = [...fromMissed, ...onTime];
    const next = cron.nextRun(new Date(now))?.getTime() ?? Number.MAX_SAFE_INTEGER;
    let queued = false;
    store.cronAdvance(key, state.nextRun, next, () => {
      for (const scheduled of toRun) if (this.queueRun(t, trig, key, scheduled)) queued = true;
    });
    return queued;
  }

  private queueRun(t: { kind: TargetKind; project: string; name: string }, trig: CronTrigger, key: string, scheduled: number): boolean {
    const { store } = this.o;
    const policy = trig.concurrencyPolicy ?? 'Allow';
    if (policy !== 'Allow' && store.activeForTrigger(key).length > 0) {
      if (policy === 'Forbid') {
        this.o.onSkip?.(key, scheduled, 'the previous run is still queued or running (concurrencyPolicy Forbid)');
        return false;
      }
      store.cancelTrigger(key);
    }
    const time = new Date(scheduled).toISOString();
    const event: CloudEvent = {
      specversion: '1.0',
      id: `${key}@${time}`,
      source: `/marina/projects/${t.project}/${t.kind === 'Function' ? 'functions' : 'pipelines'}/${t.name}/cron/${trig.name}`,
      type: 'dev.marina.cron.tick',
      time,
      datacontenttype: 'application/json',
      data: trig.data ?? null,
      [PROJECT_ATTRIBUTE]: t.project,
    };
    const req: EnqueueRequest = {
      project: t.project,
      target: { kind: t.kind, name: t.name },
      trigger: { type: 'cron', name: trig.name },
      triggerKey: key,
      idempotencyKey: `cron:${trig.name}:${time}`,
      event,
      retry: { ...RETRY_DEFAULTS, ...trig.retry },
    };
    return store.enqueue(req).created;
  }
}
