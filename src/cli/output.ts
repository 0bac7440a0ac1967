// Output formats (table, json, yaml, name) and the table columns of every kind.
import { stringify as toYaml } from 'yaml';
import type { Resource } from '../api/meta.js';
import type { WatchEvent } from '../client/index.js';
import { CliError, EXIT } from './errors.js';
import { objectRef } from './kinds.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function parseOutputFormat(v: string | undefined, allowed: readonly string[] = OUTPUT_FORMATS): OutputFormat {
  const f = (v ?? 'table').toLowerCase();
  const normalized = f === 'wide' ? 'table' : f === 'yml' ? 'yaml' : f;
  if (!allowed.includes(normalized)) throw new CliError(`unknown output format ${JSON.stringify(v)}; use one of ${allowed.join(', ')}`, EXIT.usage);
  return normalized as OutputFormat;
}

// ---------- plain tables ----------

/** Left-aligned columns separated by three spaces, like kubectl; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/**
 * A table printed one row at a time (watch): column widths only grow, starting from the header
 * and a minimum, so rows line up as long as values stay short.
 */
export class StreamingTable {
  private widths: number[];
  constructor(private readonly header: string[], minWidth = 8) {
    this.widths = header.map((h) => Math.max(h.length, minWidth));
  }
  headerLine(): string {
    return this.format(this.header);
  }
  row(cells: string[]): string {
    cells.forEach((c, i) => {
      this.widths[i] = Math.max(this.widths[i] ?? 0, c.length);
    });
    return this.format(cells);
  }
  private format(cells: string[]): string {
    return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(this.widths[i]!))).join('   ').trimEnd() + '\n';
  }
}

// ---------- time ----------

/** kubectl's HumanDuration: 45s, 3m20s, 45m, 3h20m, 2d5h, 45d, 2y120d. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  const d = Math.floor(h / 24);
  if (d < 365 * 2) return `${d}d`;
  if (d < 365 * 8) return d % 365 === 0 ? `${Math.floor(d / 365)}y` : `${Math.floor(d / 365)}y${d % 365}d`;
  return `${Math.floor(d / 365)}y`;
}

export function age(timestamp: string | undefined, now: number = Date.now()): string {
  if (!timestamp) return '<unknown>';
  const t = Date.parse(timestamp);
  if (Number.isNaN(t)) return '<unknown>';
  return humanDuration(now - t);
}

// ---------- per-kind columns ----------

type Obj = Resource<Record<string, unknown>, Record<string, unknown>>;

export interface Column {
  header: string;
  value: (o: Obj, now: number) => string;
}

const NONE = '<none>';
const str = (v: unknown): string => (v === undefined || v === null || v === '' ? NONE : String(v));
const list = (v: unknown): string => (Array.isArray(v) && v.length > 0 ? v.join(',') : NONE);
const spec = (o: Obj) => (o.spec ?? {}) as Record<string, unknown>;
const status = (o: Obj) => (o.status ?? {}) as Record<string, unknown>;

const NAME: Column = { header: 'NAME', value: (o) => o.metadata.name };
const AGE: Column = { header: 'AGE', value: (o, now) => age(o.metadata.creationTimestamp, now) };

/** Phase from status, shown as Deleting once a deletion is pending. */
function phase(o: Obj): string {
  const p = status(o).phase;
  if (o.metadata.deletionTimestamp && p !== 'Deleting') return p ? `${String(p)} (Deleting)` : 'Deleting';
  return str(p);
}

/** `ready/total` summed over pools: status pools when reported, else the spec's replica counts. */
export function clusterPools(r: Resource): string {
  const o = r as Obj;
  const pools = (spec(o).nodePools ?? []) as { name: string; replicas: number }[];
  const reported = (status(o).pools ?? []) as { name: string; replicas: number; readyReplicas: number }[];
  const total = pools.reduce((n, p) => n + (p.replicas ?? 0), 0);
  const ready = reported.reduce((n, p) => n + (p.readyReplicas ?? 0), 0);
  return `${ready}/${total}`;
}

const COLUMNS: Record<string, Column[]> = {
  Cluster: [
    NAME,
    { header: 'VERSION', value: (o) => str(status(o).kubernetesVersion ?? spec(o).kubernetesVersion) },
    { header: 'PHASE', value: phase },
    { header: 'ENDPOINT', value: (o) => str(status(o).endpoint) },
    { header: 'POOLS', value: clusterPools },
    AGE,
  ],
  NodePool: [
    NAME,
    { header: 'CLUSTER', value: (o) => str(spec(o).cluster) },
    { header: 'ROLES', value: (o) => list(spec(o).roles) },
    { header: 'READY', value: (o) => `${Number(status(o).readyReplicas ?? 0)}/${Number(spec(o).replicas ?? 0)}` },
    AGE,
  ],
  Machine: [
    NAME,
    { header: 'CLUSTER', value: (o) => str(spec(o).cluster) },
    { header: 'POOL', value: (o) => str(spec(o).pool) },
    { header: 'ROLES', value: (o) => list(spec(o).roles) },
    { header: 'PHASE', value: phase },
    { header: 'ADDRESS', value: (o) => str(status(o).address) },
    { header: 'NODE', value: (o) => machineNode(o) },
    AGE,
  ],
  Project: [
    NAME,
    { header: 'MEMBERS', value: (o) => String(((spec(o).members ?? []) as unknown[]).length) },
    AGE,
  ],
  User: [
    NAME,
    { header: 'PLATFORM-ADMIN', value: (o) => (spec(o).platformAdmin === true ? 'true' : 'false') },
    { header: 'DISPLAY-NAME', value: (o) => str(spec(o).displayName) },
    AGE,
  ],
  Secret: [
    NAME,
    { header: 'TYPE', value: (o) => str(spec(o).type) },
    { header: 'DATA', value: (o) => String(Object.keys((spec(o).data ?? {}) as object).length) },
    AGE,
  ],
  Alert: [
    NAME,
    { header: 'CLUSTER', value: (o) => str(spec(o).cluster) },
    { header: 'RULE', value: (o) => str(spec(o).rule) },
    { header: 'SEVERITY', value: (o) => str(spec(o).severity) },
    { header: 'STATE', value: (o) => str(status(o).state) },
    { header: 'STARTED', value: (o, now) => ago(status(o).startsAt, now) },
    { header: 'ENDED', value: (o, now) => (status(o).state === 'resolved' ? ago(status(o).endsAt, now) : '-') },
    { header: 'SUMMARY', value: (o) => oneLine((spec(o).annotations as { summary?: string } | undefined)?.summary) },
  ],
  NotificationChannel: [
    NAME,
    { header: 'TYPE', value: (o) => str(spec(o).type) },
    { header: 'ENDPOINT', value: (o) => channelEndpoint(spec(o).url) },
    { header: 'RULES', value: (o) => (Array.isArray(spec(o).rules) ? list(spec(o).rules) : '<all>') },
    { header: 'MIN-SEVERITY', value: (o) => str(spec(o).minSeverity ?? 'info') },
    { header: 'RESOLVED', value: (o) => (spec(o).sendResolved === false ? 'no' : 'yes') },
    { header: 'DELIVERED', value: (o) => String(Number(status(o).delivered ?? 0)) },
    { header: 'FAILED', value: (o) => String(Number(status(o).failedAttempts ?? 0)) },
    AGE,
  ],
  Operation: [
    NAME,
    { header: 'CLUSTER', value: (o) => str(spec(o).cluster) },
    { header: 'TYPE', value: (o) => str(spec(o).type) },
    { header: 'PHASE', value: phase },
    { header: 'PROGRESS', value: (o) => `${Number(status(o).progress ?? 0)}%` },
    { header: 'REQUESTED-BY', value: (o) => str(status(o).requestedBy) },
    { header: 'MESSAGE', value: (o) => oneLine(status(o).message, 60) },
    AGE,
  ],
  Snapshot: [
    NAME,
    { header: 'CLUSTER', value: (o) => str(spec(o).cluster) },
    { header: 'PHASE', value: phase },
    { header: 'SIZE', value: (o) => (typeof status(o).size === 'number' ? `${Math.round((status(o).size as number) / 1024)}Ki` : NONE) },
    { header: 'REVISION', value: (o) => str(status(o).etcdRevision) },
    { header: 'VERSION', value: (o) => str(status(o).kubernetesVersion) },
    { header: 'TARGET', value: (o) => str(spec(o).target ?? 'local') },
    AGE,
  ],
  BackupTarget: [
    NAME,
    { header: 'TYPE', value: (o) => str(spec(o).type) },
    { header: 'WHERE', value: (o) => { const s3 = spec(o).s3 as { endpoint?: string; bucket?: string; prefix?: string } | undefined; return s3 ? `${channelEndpoint(s3.endpoint)}/${s3.bucket}/${s3.prefix ?? ''}` : 'data directory'; } },
    AGE,
  ],
  OpenStackCloud: [
    NAME,
    { header: 'AUTH-URL', value: (o) => str(spec(o).authURL) },
    { header: 'REGION', value: (o) => str(spec(o).region) },
    { header: 'NETWORK', value: (o) => str(spec(o).network) },
    { header: 'CREDENTIALS', value: (o) => str(spec(o).credentialsSecret) },
    AGE,
  ],
};

/** Where a channel posts, without the path and credentials (Slack URLs carry a secret). */
export function channelEndpoint(url: unknown): string {
  if (typeof url !== 'string') return NONE;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname && u.pathname !== '/' ? '/...' : ''}`;
  } catch {
    return '<invalid>';
  }
}

/** `12m ago`, or `-` without a time. */
function ago(t: unknown, now: number): string {
  return typeof t === 'string' && t ? `${age(t, now)} ago` : '-';
}

function oneLine(v: unknown, max = 80): string {
  const t = typeof v === 'string' ? v.replace(/\s+/g, ' ').trim() : '';
  if (!t) return NONE;
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

function machineNode(o: Obj): string {
  const s = status(o);
  if (!s.nodeName) return NONE;
  if (s.nodeReady === true) return `${String(s.nodeName)} (Ready)`;
  if (s.nodeReady === false) return `${String(s.nodeName)} (NotReady)`;
  return String(s.nodeName);
}

const PROJECT: Column = { header: 'PROJECT', value: (o) => str(o.metadata.project) };

export function columnsFor(kind: string, opts: { withProject?: boolean } = {}): Column[] {
  const cols = COLUMNS[kind] ?? [NAME, AGE];
  return opts.withProject ? [PROJECT, ...cols] : cols;
}

export function tableRow(cols: Column[], o: Resource, now: number = Date.now()): string[] {
  return cols.map((c) => c.value(o as Obj, now));
}

export function formatResourceTable(kind: string, items: Resource[], opts: { withProject?: boolean; now?: number } = {}): string {
  const cols = columnsFor(kind, opts);
  const now = opts.now ?? Date.now();
  return formatTable(
    cols.map((c) => c.header),
    items.map((o) => tableRow(cols, o, now)),
  );
}

// ---------- whole outputs ----------

/** json/yaml of one object or a `<Kind>List`; name: `kind/name` lines; table: columns. */
export function formatResources(
  format: OutputFormat,
  kind: string,
  items: Resource[],
  opts: { single?: boolean; withProject?: boolean; resourceVersion?: string; now?: number; listKind?: string } = {},
): string {
  switch (format) {
    case 'json':
    case 'yaml': {
      const doc = opts.single && items.length === 1 ? items[0] : { apiVersion: 'marina.dev/v1alpha1', kind: opts.listKind ?? `${kind}List`, metadata: { resourceVersion: opts.resourceVersion ?? '' }, items };
      return format === 'json' ? JSON.stringify(doc, null, 2) + '\n' : toYaml(doc);
    }
    case 'name':
      return items.map((o) => objectRef(o.kind || kind, o.metadata.name) + '\n').join('');
    case 'table':
      if (items.length === 0) return '';
      return formatResourceTable(kind, items, opts);
  }
}

/** One watch event in the chosen format: NDJSON, YAML documents, `kind/name` or a table row. */
export function formatWatchEvent(format: OutputFormat, ev: WatchEvent, table?: { table: StreamingTable; cols: Column[] }, now: number = Date.now()): string {
  switch (format) {
    case 'json':
      return JSON.stringify(ev) + '\n';
    case 'yaml':
      return '---\n' + toYaml(ev);
    case 'name':
      return `${ev.type} ${objectRef(ev.object.kind, ev.object.metadata.name)}\n`;
    case 'table':
      if (!table) throw new Error('table format needs a StreamingTable');
      return table.table.row([ev.type, ...tableRow(table.cols, ev.object, now)]);
  }
}
