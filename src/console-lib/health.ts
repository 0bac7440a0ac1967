// The cluster health endpoint as the console uses it: fetching (404 = no health data yet),
// appending newer samples, and turning samples into plot series.
import { MarinaApiError, type MarinaClient } from '../client/index.js';
import type { ClusterHealth, HealthSample } from '../health/types.js';

export type { ClusterHealth, HealthSample };

export interface Point {
  /** ms since the epoch */
  t: number;
  v: number;
}

export interface Series {
  name: string;
  points: Point[];
}

/** What health fetches need of the client. */
export type HealthApi = Pick<MarinaClient, 'request' | 'path'>;

/**
 * GET .../clusters/{name}/health[?since=]. Undefined when there is no health data: the endpoint
 * answers 404 (no check yet, or a server without the health checker).
 */
export async function fetchHealth(api: HealthApi, project: string, cluster: string, since?: string, signal?: AbortSignal): Promise<ClusterHealth | undefined> {
  try {
    return await api.request<ClusterHealth>('GET', api.path('Cluster', { project, name: cluster, subresource: 'health' }), { query: { since }, signal });
  } catch (err) {
    if (err instanceof MarinaApiError && err.code === 404) return undefined;
    throw err;
  }
}

/**
 * Combines what the console has with a newer answer fetched `?since=` the newest sample: samples
 * appended (no duplicates), older than `windowMs` before the newest dropped, `latest` replaced.
 */
export function mergeHealth(prev: ClusterHealth | undefined, next: ClusterHealth, windowMs = 24 * 3600_000): ClusterHealth {
  if (!prev) return next;
  const last = prev.samples.at(-1)?.t;
  const lastMs = last ? Date.parse(last) : -Infinity;
  const added = next.samples.filter((s) => Date.parse(s.t) > lastMs);
  let samples = [...prev.samples, ...added];
  const newest = Date.parse(samples.at(-1)?.t ?? '');
  if (Number.isFinite(newest)) samples = samples.filter((s) => Date.parse(s.t) >= newest - windowMs);
  return { ...next, latest: next.latest ?? prev.latest, samples };
}

function series(samples: readonly HealthSample[], name: string, pick: (s: HealthSample) => number | undefined): Series {
  const points: Point[] = [];
  for (const s of samples) {
    const v = pick(s);
    const t = Date.parse(s.t);
    if (v !== undefined && Number.isFinite(v) && Number.isFinite(t)) points.push({ t, v });
  }
  return { name, points };
}

function perMachine(samples: readonly HealthSample[], pick: (m: { cpuCores?: number; rssBytes: number }) => number | undefined): Series[] {
  const names = new Set<string>();
  for (const s of samples) for (const m of Object.keys(s.machines ?? {})) names.add(m);
  return [...names].sort().map((m) => series(samples, m, (s) => {
    const u = s.machines?.[m];
    return u ? pick(u) : undefined;
  }));
}

export interface HealthPlots {
  apiLatency: Series[];
  etcdDb: Series[];
  etcdFsync: Series[];
  cpu: Series[];
  memory: Series[];
}

const nonEmpty = (list: Series[]) => list.filter((s) => s.points.length > 0);

export function healthPlots(samples: readonly HealthSample[]): HealthPlots {
  return {
    apiLatency: nonEmpty([series(samples, 'apiserver p99', (s) => s.apiserverP99Ms), series(samples, 'endpoint /readyz', (s) => s.endpointLatencyMs)]),
    etcdDb: nonEmpty([series(samples, 'largest etcd db', (s) => s.etcdDbBytes)]),
    etcdFsync: nonEmpty([series(samples, 'worst WAL fsync p99', (s) => s.etcdFsyncP99Ms)]),
    cpu: nonEmpty(perMachine(samples, (m) => m.cpuCores)),
    memory: nonEmpty(perMachine(samples, (m) => m.rssBytes)),
  };
}

/**
 * At most `max` points, keeping each bucket's minimum and maximum (so spikes survive) in time
 * order. Plots of a day of 10-second samples stay light.
 */
export function downsample(points: readonly Point[], max: number): Point[] {
  if (points.length <= max || max < 4) return [...points];
  const buckets = Math.floor(max / 2);
  const size = points.length / buckets;
  const out: Point[] = [];
  for (let b = 0; b < buckets; b++) {
    const slice = points.slice(Math.floor(b * size), Math.floor((b + 1) * size));
    if (slice.length === 0) continue;
    let lo = slice[0]!;
    let hi = slice[0]!;
    for (const p of slice) {
      if (p.v < lo.v) lo = p;
      if (p.v > hi.v) hi = p;
    }
    if (lo === hi) out.push(lo);
    else out.push(...(lo.t <= hi.t ? [lo, hi] : [hi, lo]));
  }
  return out;
}

/** Rounded-up axis maximum: 1, 2, 5 × 10^n. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * exp) return m * exp;
  return 10 * exp;
}
