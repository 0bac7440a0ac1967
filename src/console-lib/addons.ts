// The add-ons of one cluster as rows for the console's cluster page: state in one word with a
// tone, the objects that are not healthy, drift corrections.
import { condition, type Tone } from './summary.js';
import type { Condition, Resource } from './types.js';

export type AddonView = Resource<
  { cluster: string; addon: string; version: string; values?: Record<string, unknown> },
  {
    appliedVersion?: string;
    driftCorrections?: number;
    lastDriftCorrection?: { at: string; objects: string[] };
    unhealthy?: string[];
    inventory?: unknown[];
    conditions?: Condition[];
  }
>;

export interface AddonRow {
  name: string;
  addon: string;
  /** `3.2.4`, or `3.1.9 → 3.2.4` while an upgrade is not applied yet. */
  version: string;
  state: 'Healthy' | 'Rolling out' | 'Unhealthy' | 'Waiting' | 'Removing' | 'Pending';
  tone: Tone;
  /** Why it is not healthy: the unhealthy objects or the waiting reason. */
  detail?: string;
  objects: number;
  drift: number;
  lastDrift?: string;
}

export function addonRows(items: readonly AddonView[], cluster: string): AddonRow[] {
  return items
    .filter((a) => a.spec?.cluster === cluster)
    .map((a): AddonRow => {
      const s = a.status ?? {};
      const applied = condition(a, 'Applied');
      const healthy = condition(a, 'Healthy');
      const version = s.appliedVersion && s.appliedVersion !== a.spec?.version ? `${s.appliedVersion} → ${a.spec?.version}` : a.spec?.version ?? '';
      const row: AddonRow = { name: a.metadata.name, addon: a.spec?.addon ?? '', version, state: 'Pending', tone: 'neutral', objects: s.inventory?.length ?? 0, drift: s.driftCorrections ?? 0 };
      if (s.lastDriftCorrection) row.lastDrift = s.lastDriftCorrection.at;
      if (a.metadata.deletionTimestamp) return { ...row, state: 'Removing', tone: 'warn', ...(applied?.message ? { detail: applied.message } : {}) };
      if (applied && applied.status !== 'True') return { ...row, state: 'Waiting', tone: applied.reason === 'ApplyFailed' || applied.reason === 'RenderFailed' ? 'bad' : 'warn', detail: `${applied.reason ?? ''}: ${applied.message ?? ''}` };
      if (healthy?.status === 'True') return { ...row, state: 'Healthy', tone: 'ok' };
      if (healthy?.status === 'False') {
        const rolling = healthy.reason === 'RollingOut';
        return { ...row, state: rolling ? 'Rolling out' : 'Unhealthy', tone: rolling ? 'warn' : 'bad', detail: (s.unhealthy ?? []).join('; ') || healthy.message || '' };
      }
      return row;
    })
    .sort((x, y) => x.addon.localeCompare(y.addon));
}
