// A cluster's timeline: condition transitions of the cluster, its pools and machines (each object
// keeps only the last transition per condition, so the console also remembers every transition
// it saw while open), the audit log's operations on the cluster, and its alerts firing and
// resolving. Newest first.
import type { AuditEntry } from '../client/index.js';
import { conditionGood } from './summary.js';
import type { AlertView, Condition, Resource } from './types.js';

export type TimelineSource = 'condition' | 'operation' | 'alert' | 'object';

export interface TimelineEntry {
  /** Unique and stable (React key, deduplication). */
  id: string;
  time: string;
  source: TimelineSource;
  /** e.g. `Machine demo-workers-x1 Ready=True`, `admin update Cluster demo`, `alert ComponentUnhealthy firing`. */
  title: string;
  detail?: string;
  tone: 'ok' | 'warn' | 'bad' | 'neutral';
}

/**
 * Remembers transitions: call with the current objects whenever they change; entries already
 * seen are kept, so a condition that flipped twice while the page was open shows both flips.
 */
export class TransitionLog {
  private readonly entries = new Map<string, TimelineEntry>();

  constructor(private readonly max = 500) {}

  observe(objects: readonly Resource[]): void {
    for (const obj of objects) {
      const conds = (obj.status as { conditions?: Condition[] } | undefined)?.conditions ?? [];
      for (const c of conds) {
        if (!c.lastTransitionTime) continue;
        const id = `c/${obj.kind}/${obj.metadata.name}/${c.type}/${c.status}/${c.lastTransitionTime}`;
        if (this.entries.has(id)) continue;
        this.entries.set(id, {
          id,
          time: c.lastTransitionTime,
          source: 'condition',
          title: `${obj.kind} ${obj.metadata.name} ${c.type}=${c.status}`,
          ...(c.reason || c.message ? { detail: [c.reason, c.message].filter(Boolean).join(': ') } : {}),
          tone: conditionGood(c) ? 'ok' : c.status === 'Unknown' ? 'warn' : 'bad',
        });
      }
      const created = obj.metadata.creationTimestamp;
      if (created) {
        const id = `o/${obj.kind}/${obj.metadata.name}/${obj.metadata.uid ?? ''}/created`;
        if (!this.entries.has(id)) this.entries.set(id, { id, time: created, source: 'object', title: `${obj.kind} ${obj.metadata.name} created`, tone: 'neutral' });
      }
      const deleting = obj.metadata.deletionTimestamp;
      if (deleting) {
        const id = `o/${obj.kind}/${obj.metadata.name}/${obj.metadata.uid ?? ''}/deleting`;
        if (!this.entries.has(id)) this.entries.set(id, { id, time: deleting, source: 'object', title: `${obj.kind} ${obj.metadata.name} deletion started`, tone: 'warn' });
      }
    }
    if (this.entries.size > this.max) {
      const keep = [...this.entries.values()].sort(newestFirst).slice(0, this.max);
      this.entries.clear();
      for (const e of keep) this.entries.set(e.id, e);
    }
  }

  list(): TimelineEntry[] {
    return [...this.entries.values()];
  }
}

export function auditEntries(audit: readonly AuditEntry[], cluster: string): TimelineEntry[] {
  return audit
    .filter((a) => a.name === cluster && (a.kind === 'Cluster' || a.kind === 'Kubeconfig'))
    .map((a) => ({
      id: `a/${a.id}`,
      time: a.time,
      source: 'operation' as const,
      title: a.kind === 'Kubeconfig' ? `${a.user} downloaded the kubeconfig` : `${a.user} ${a.verb} ${a.kind} ${a.name}`,
      ...(a.generation !== undefined || a.code !== undefined
        ? { detail: [a.generation !== undefined ? `generation ${a.generation}` : '', a.code !== undefined ? `HTTP ${a.code}` : ''].filter(Boolean).join(', ') }
        : {}),
      tone: a.code !== undefined && a.code >= 400 ? ('bad' as const) : ('neutral' as const),
    }));
}

export function alertEntries(alerts: readonly AlertView[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  for (const a of alerts) {
    const st = a.status ?? {};
    const labels = Object.entries(a.spec?.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');
    const detail = `${a.spec?.annotations.summary ?? ''}${labels ? ` (${labels})` : ''}`;
    if (st.startsAt) out.push({ id: `al/${a.metadata.name}/${st.startsAt}/firing`, time: st.startsAt, source: 'alert', title: `alert ${a.spec?.rule} firing`, detail, tone: 'bad' });
    if (st.state === 'resolved' && st.endsAt) out.push({ id: `al/${a.metadata.name}/${st.startsAt}/resolved`, time: st.endsAt, source: 'alert', title: `alert ${a.spec?.rule} resolved`, detail, tone: 'ok' });
  }
  return out;
}

function newestFirst(a: TimelineEntry, b: TimelineEntry): number {
  return (Date.parse(b.time) || 0) - (Date.parse(a.time) || 0) || a.id.localeCompare(b.id);
}

/** Merges the sources, newest first, at most `limit` entries. */
export function mergeTimeline(parts: readonly (readonly TimelineEntry[])[], limit = 200): TimelineEntry[] {
  const seen = new Map<string, TimelineEntry>();
  for (const part of parts) for (const e of part) if (!seen.has(e.id)) seen.set(e.id, e);
  return [...seen.values()].sort(newestFirst).slice(0, limit);
}
