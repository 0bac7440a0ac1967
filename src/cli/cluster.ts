// Building Cluster objects from flags, scaling pools, and following a cluster until it is Ready
// (or gone), printing one line per observed change.
import type { Condition, Resource } from '../api/meta.js';
import type { Cluster, ClusterSpec, NodePoolTemplate } from '../api/kinds.js';
import { API_VERSION, isConflict, type MarinaClient, type WatchEvent } from '../client/index.js';
import { CliError, EXIT } from './errors.js';
import { humanDuration } from './output.js';

export interface ClusterFlags {
  name: string;
  project: string;
  version?: string;
  provider?: string;
  etcd: number;
  controlplanes: number;
  workers: number;
  podCIDR?: string;
  serviceCIDR?: string;
  labels?: Record<string, string>;
}

/** `1.36.3` → `v1.36.3`. */
export function normalizeK8sVersion(v: string): string {
  const t = v.trim();
  return t.startsWith('v') ? t : `v${t}`;
}

/** A Cluster with the three standard pools `etcd`, `controlplane` and `workers`. */
export function buildCluster(f: ClusterFlags): Cluster {
  const nodePools: NodePoolTemplate[] = [
    { name: 'etcd', roles: ['etcd'], replicas: f.etcd },
    { name: 'controlplane', roles: ['controlplane'], replicas: f.controlplanes },
    { name: 'workers', roles: ['worker'], replicas: f.workers },
  ];
  const spec: ClusterSpec = { nodePools };
  if (f.provider) spec.provider = f.provider as ClusterSpec['provider'];
  if (f.version) spec.kubernetesVersion = normalizeK8sVersion(f.version);
  if (f.podCIDR || f.serviceCIDR) {
    spec.network = {};
    if (f.podCIDR) spec.network.podCIDR = f.podCIDR;
    if (f.serviceCIDR) spec.network.serviceCIDR = f.serviceCIDR;
  }
  const metadata: Cluster['metadata'] = { name: f.name, project: f.project };
  if (f.labels && Object.keys(f.labels).length > 0) metadata.labels = f.labels;
  return { apiVersion: API_VERSION as Cluster['apiVersion'], kind: 'Cluster', metadata, spec };
}

/** `a=b,c=d` or repeated `a=b` → a map; usage error on a malformed pair. */
export function parseKeyValues(values: string[], what = 'label'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values.flatMap((x) => x.split(','))) {
    if (v === '') continue;
    const eq = v.indexOf('=');
    if (eq <= 0) throw new CliError(`malformed ${what} ${JSON.stringify(v)}; expected key=value`, EXIT.usage);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** A copy of `cluster` with pool `pool` at `replicas`; not-found error naming the pools. */
export function withPoolReplicas(cluster: Cluster, pool: string, replicas: number): { cluster: Cluster; from: number } {
  const pools = cluster.spec.nodePools;
  const i = pools.findIndex((p) => p.name === pool);
  if (i < 0) {
    throw new CliError(`cluster "${cluster.metadata.name}" has no pool ${JSON.stringify(pool)}; pools: ${pools.map((p) => p.name).join(', ')}`, EXIT.notFound);
  }
  const next = structuredClone(cluster);
  const from = next.spec.nodePools[i]!.replicas;
  next.spec.nodePools[i]!.replicas = replicas;
  return { cluster: next, from };
}

/** GET, change the pool, PUT with the resourceVersion read; on 409 read again (a few times). */
export async function scalePool(client: MarinaClient, project: string, name: string, pool: string, replicas: number): Promise<{ cluster: Cluster; from: number }> {
  for (let attempt = 0; ; attempt++) {
    const current = await client.get<Cluster>('Cluster', name, project);
    const { cluster, from } = withPoolReplicas(current, pool, replicas);
    if (from === replicas) return { cluster: current, from };
    try {
      return { cluster: await client.replace<Cluster>(cluster), from };
    } catch (err) {
      if (isConflict(err) && attempt < 8) continue;
      throw err;
    }
  }
}

// ---------- progress ----------

type Rec = Record<string, unknown>;

interface ObjState {
  phase?: string;
  conditions: Map<string, string>;
  extra: Map<string, string>;
  deleting: boolean;
}

function conditionKey(c: Condition): string {
  return `${c.status}|${c.reason ?? ''}`;
}

function describeCondition(c: Condition): string {
  // One progress line per change: a message of several lines is joined.
  const tail = [c.reason, c.message?.replace(/\s*\n\s*/g, '; ')].filter(Boolean).join(': ');
  return `${c.type}=${c.status}${tail ? ` (${tail})` : ''}`;
}

/**
 * Turns a stream of Cluster and Machine events into human lines, reporting only what changed:
 * phases, conditions that flip, pool readiness, addresses, node readiness, deletion.
 */
export class ProgressPrinter {
  private readonly states = new Map<string, ObjState>();

  /** Lines for one Cluster or Machine event, each starting `cluster NAME` / `machine NAME`. */
  lines(ev: WatchEvent): string[] {
    const obj = ev.object;
    const label = obj.kind.toLowerCase();
    const id = `${label} ${obj.metadata.name}`;
    const key = `${obj.kind}/${obj.metadata.name}`;
    if (ev.type === 'DELETED') {
      this.states.delete(key);
      return [`${id} deleted`];
    }
    const status = (obj.status ?? {}) as Rec;
    const spec = (obj.spec ?? {}) as Rec;
    let st = this.states.get(key);
    const out: string[] = [];
    if (!st) {
      st = { conditions: new Map(), extra: new Map(), deleting: false };
      this.states.set(key, st);
      if (obj.kind === 'Machine') out.push(`${id} created (pool ${String(spec.pool ?? '?')}, roles ${((spec.roles as string[]) ?? []).join(',')})`);
    }
    if (obj.metadata.deletionTimestamp && !st.deleting) {
      st.deleting = true;
      const fin = obj.metadata.finalizers ?? [];
      out.push(`${id} deleting${fin.length > 0 ? ` (waiting for ${fin.join(', ')})` : ''}`);
    }
    const phase = status.phase as string | undefined;
    if (phase !== undefined && phase !== st.phase) {
      st.phase = phase;
      let line = `${id} ${phase}`;
      if (obj.kind === 'Machine' && status.address) line += ` (${String(status.address)})`;
      if (phase === 'Failed' && (status.failureReason || status.failureMessage)) {
        line += `: ${[status.failureReason, status.failureMessage].filter(Boolean).join(': ')}`;
      }
      out.push(line);
    }
    const extras: [string, string | undefined, (v: string) => string][] = [];
    if (obj.kind === 'Cluster') {
      extras.push(['endpoint', status.endpoint as string | undefined, (v) => `${id} endpoint ${v}`]);
      extras.push(['pools', poolsSummary(obj), (v) => `${id} pools ${v}`]);
    } else if (obj.kind === 'Machine') {
      extras.push(['address', status.address as string | undefined, (v) => `${id} address ${v}`]);
      const node = status.nodeName ? `${String(status.nodeName)} ${status.nodeReady === true ? 'Ready' : status.nodeReady === false ? 'NotReady' : 'registered'}` : undefined;
      extras.push(['node', node, (v) => `${id} node ${v}`]);
    }
    for (const [k, v, fmt] of extras) {
      if (v === undefined || st.extra.get(k) === v) continue;
      // The address is already part of the phase line when both arrive together.
      const announced = k === 'address' && out.some((l) => l.includes(`(${v})`));
      st.extra.set(k, v);
      if (!announced) out.push(fmt(v));
    }
    for (const c of (status.conditions ?? []) as Condition[]) {
      const k = conditionKey(c);
      if (st.conditions.get(c.type) === k) continue;
      st.conditions.set(c.type, k);
      out.push(`${id} ${describeCondition(c)}`);
    }
    return out;
  }
}

/** `etcd 1/3, controlplane 0/1, workers 0/2` from status.pools (spec replicas as the total). */
export function poolsSummary(obj: Resource): string | undefined {
  const spec = (obj.spec ?? {}) as { nodePools?: { name: string; replicas: number }[] };
  const reported = ((obj.status ?? {}) as { pools?: { name: string; readyReplicas?: number }[] }).pools;
  if (!reported || reported.length === 0) return undefined;
  return (spec.nodePools ?? []).map((p) => `${p.name} ${reported.find((r) => r.name === p.name)?.readyReplicas ?? 0}/${p.replicas}`).join(', ');
}

export type ClusterVerdict = { done: true; ok: true } | { done: true; ok: false; reason: string } | { done: false };

/**
 * Has the cluster reached the spec of generation `minGeneration`? Ready needs phase Ready, the
 * controller to have observed that generation (when it reports observedGeneration) and every
 * pool's ready count at its replica count (when it reports pools). Failed ends the wait with its reason.
 */
export function clusterVerdict(obj: Resource, minGeneration = 0): ClusterVerdict {
  const status = (obj.status ?? {}) as { phase?: string; observedGeneration?: number; conditions?: Condition[]; pools?: { name: string; replicas?: number; readyReplicas?: number }[] };
  const current = status.observedGeneration === undefined || status.observedGeneration >= minGeneration;
  if (!current) return { done: false };
  if (status.phase === 'Failed') {
    const bad = (status.conditions ?? []).find((c) => c.status === 'False' && (c.reason || c.message)) ?? (status.conditions ?? []).find((c) => c.type === 'Ready');
    const reason = bad ? [bad.type, bad.reason, bad.message].filter(Boolean).join(': ') : 'the cluster reports phase Failed';
    return { done: true, ok: false, reason };
  }
  if (status.phase !== 'Ready') return { done: false };
  const spec = (obj.spec ?? {}) as { nodePools?: { name: string; replicas: number }[] };
  if (status.pools && status.pools.length > 0) {
    for (const p of spec.nodePools ?? []) {
      const r = status.pools.find((x) => x.name === p.name);
      if (!r || (r.readyReplicas ?? 0) !== p.replicas) return { done: false };
    }
  }
  return { done: true, ok: true };
}

export interface FollowOptions {
  client: MarinaClient;
  project: string;
  name: string;
  until: 'ready' | 'deleted';
  /** The object as last written/read by the caller: its state is the starting point. */
  initial?: Resource;
  /** Watch from here (the revision of the caller's last write). */
  resourceVersion?: string;
  minGeneration?: number;
  timeoutMs: number;
  /** Time origin for the `[12.3s]` prefix. */
  start: number;
  print: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Watches the cluster and its machines and prints progress until the goal is reached.
 * Throws CliError: EXIT.timeout on timeout, EXIT.error when the cluster fails.
 */
export async function followCluster(o: FollowOptions): Promise<void> {
  const printer = new ProgressPrinter();
  const stamp = () => `[${((Date.now() - o.start) / 1000).toFixed(1)}s]`;
  const emit = (lines: string[]) => lines.forEach((l) => o.print(`${stamp()} ${l}`));
  const ctl = new AbortController();
  const stopOuter = () => ctl.abort();
  o.signal?.addEventListener('abort', stopOuter, { once: true });

  let last: Resource | undefined = o.initial;
  let settle!: (err?: Error) => void;
  const finished = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  const check = (obj: Resource | undefined, gone: boolean) => {
    if (o.until === 'deleted') {
      if (gone) settle();
      return;
    }
    if (gone) return settle(new CliError(`cluster "${o.name}" was deleted while waiting for it to become Ready`, EXIT.error));
    if (!obj) return;
    const v = clusterVerdict(obj, o.minGeneration ?? 0);
    if (v.done) settle(v.ok ? undefined : new CliError(`cluster "${o.name}" failed: ${v.reason}`, EXIT.error));
  };

  if (o.initial) {
    emit(printer.lines({ type: 'ADDED', object: o.initial }));
    check(o.initial, false);
  }

  const timer = setTimeout(() => {
    const phase = (last?.status as { phase?: string } | undefined)?.phase ?? 'unknown';
    const pools = last ? poolsSummary(last) : undefined;
    const goal = o.until === 'ready' ? 'become Ready' : 'be deleted';
    const tail = o.until === 'ready' ? `; it keeps going in the background — follow it with \`marina get cluster ${o.name} -p ${o.project} -w\`` : '';
    settle(new CliError(`timed out after ${humanDuration(o.timeoutMs)} waiting for cluster "${o.name}" to ${goal} (phase ${phase}${pools ? `, pools ${pools}` : ''})${tail}`, EXIT.timeout));
  }, o.timeoutMs);

  const follow = async (kind: 'Cluster' | 'Machine') => {
    for await (const ev of o.client.watchResumable(kind, {
      project: o.project,
      resourceVersion: o.resourceVersion,
      initial: true,
      signal: ctl.signal,
    })) {
      const obj = ev.object;
      if (kind === 'Cluster') {
        if (obj.metadata.name !== o.name) continue;
        last = ev.type === 'DELETED' ? last : obj;
        emit(printer.lines(ev));
        check(obj, ev.type === 'DELETED');
      } else {
        if ((obj.spec as { cluster?: string } | undefined)?.cluster !== o.name) continue;
        emit(printer.lines(ev));
      }
    }
  };
  // If the cluster is already gone before the watch starts (a fast delete), the watch from the
  // DELETE's revision still delivers the DELETED event, so no extra GET is needed.
  const watchers = Promise.all([follow('Cluster'), follow('Machine')]).then(
    () => settle(new CliError('interrupted', 130)),
    (err: unknown) => settle(err as Error),
  );
  try {
    await finished;
  } finally {
    clearTimeout(timer);
    ctl.abort();
    o.signal?.removeEventListener('abort', stopOuter);
    await watchers.catch(() => undefined);
  }
}
