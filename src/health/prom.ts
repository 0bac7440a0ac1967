// Parser for the Prometheus text exposition format 0.0.4 and extractors that turn scraped etcd,
// kube-apiserver and Marina agent /metrics into the figures of ./types.ts.
//
// Written by hand rather than with regular expressions because kube-apiserver serves 1–3 MB per
// scrape and the health checker scrapes every control-plane machine: the scanner walks the text by
// index, so lines of families the caller does not want cost a name slice and one map lookup.

import type { ApiServerMetrics, EtcdMemberMetrics, MachineUsage } from './types.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name, suffix included (`x_bucket`, `x_sum`, `x_count`). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

export interface ParseOptions {
  /** Families to keep; the others are skipped before their labels and values are parsed. */
  only?: (familyName: string) => boolean;
}

const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const HASH = 0x23;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const COMMA = 0x2c;
const EQUALS = 0x3d;

function isNameStart(c: number, colon: boolean): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (colon && c === 0x3a);
}

function isNameChar(c: number, colon: boolean): boolean {
  return isNameStart(c, colon) || (c >= 0x30 && c <= 0x39);
}

/** Index just past a metric name (colons allowed) or label name starting at i; i when none. */
function scanName(text: string, i: number, end: number, colon: boolean): number {
  if (i >= end || !isNameStart(text.charCodeAt(i), colon)) return i;
  i++;
  while (i < end && isNameChar(text.charCodeAt(i), colon)) i++;
  return i;
}

function skipBlanks(text: string, i: number, end: number): number {
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c !== SPACE && c !== TAB) break;
    i++;
  }
  return i;
}

function scanToken(text: string, i: number, end: number): number {
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === SPACE || c === TAB) break;
    i++;
  }
  return i;
}

/**
 * A sample value as Go's strconv.ParseFloat reads it (the format's definition), or undefined.
 * Number() alone would take '' as 0 and '0x1f' as 31 and does not know 'Inf'.
 */
export function parseValue(token: string): number | undefined {
  if (token.length === 0) return undefined;
  const v = Number(token);
  if (Number.isNaN(v)) {
    switch (token.toLowerCase()) {
      case 'nan':
        return NaN;
      case 'inf':
      case '+inf':
      case 'infinity':
      case '+infinity':
        return Infinity;
      case '-inf':
      case '-infinity':
        return -Infinity;
      default:
        return undefined;
    }
  }
  const c0 = token.charCodeAt(0);
  const c1 = token.charCodeAt(1) | 0x20; // lower-cased
  if (c0 === 0x30 && (c1 === 0x78 || c1 === 0x62 || c1 === 0x6f)) return undefined; // 0x, 0b, 0o
  return v;
}

/**
 * Undoes `\\` and `\n` (HELP) or `\\`, `\"` and `\n` (label values). Other escapes are kept as
 * written, as the Prometheus server does, so a sloppy exporter loses nothing.
 */
function unescape(s: string, quote: boolean): string {
  if (s.indexOf('\\') < 0) return s;
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length - 1; i++) {
    if (s.charCodeAt(i) !== BACKSLASH) continue;
    const n = s[i + 1];
    const r = n === '\\' ? '\\' : n === 'n' ? '\n' : quote && n === '"' ? '"' : undefined;
    if (r === undefined) continue;
    out += s.slice(from, i) + r;
    i++;
    from = i + 1;
  }
  return out + s.slice(from);
}

function setLabel(labels: Record<string, string>, name: string, value: string): boolean {
  if (Object.hasOwn(labels, name)) return false;
  // A plain assignment to __proto__ would change the prototype and drop the label.
  if (name === '__proto__') Object.defineProperty(labels, name, { value, enumerable: true, writable: true, configurable: true });
  else labels[name] = value;
  return true;
}

/**
 * Parses `text` into families keyed by family name. Samples named `<h>_bucket`, `<h>_sum` and
 * `<h>_count` join family `<h>` when a TYPE line declared it histogram (summary: `_sum`, `_count`);
 * samples without a TYPE line form untyped families of their own name. Malformed lines are skipped.
 */
export function parsePrometheusText(text: string, options: ParseOptions = {}): Map<string, MetricFamily> {
  const only = options.only;
  const families = new Map<string, MetricFamily>();
  // Sample name → its family, or null when `only` rejected it; resolved once per name.
  const route = new Map<string, MetricFamily | null>();

  const family = (name: string): MetricFamily | null => {
    let f = families.get(name);
    if (f) return f;
    if (route.get(name) === null) return null;
    if (only && !only(name)) {
      route.set(name, null);
      return null;
    }
    f = { name, type: 'untyped', help: '', samples: [] };
    families.set(name, f);
    return f;
  };

  const resolve = (sampleName: string): MetricFamily | null => {
    const own = families.get(sampleName);
    if (own) return own;
    const base = histogramBase(sampleName);
    if (base !== undefined) {
      const f = families.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && !sampleName.endsWith('_bucket')))) return f;
      // A rejected histogram has no family to find, only the null route its TYPE line left.
      if (route.get(base) === null) return null;
    }
    return family(sampleName);
  };

  const parseComment = (i: number, end: number): void => {
    i = skipBlanks(text, i, end);
    const kwEnd = scanToken(text, i, end);
    const kw = text.slice(i, kwEnd);
    if (kw !== 'HELP' && kw !== 'TYPE') return; // an ordinary comment
    const nStart = skipBlanks(text, kwEnd, end);
    const nEnd = scanName(text, nStart, end, true);
    if (nEnd === nStart) return;
    if (nEnd < end && text.charCodeAt(nEnd) !== SPACE && text.charCodeAt(nEnd) !== TAB) return;
    const name = text.slice(nStart, nEnd);
    const rest = skipBlanks(text, nEnd, end);
    if (kw === 'HELP') {
      const f = family(name);
      if (f) f.help = unescape(text.slice(rest, end), false);
      return;
    }
    const tEnd = scanToken(text, rest, end);
    const type = text.slice(rest, tEnd);
    if (!TYPES.has(type) || skipBlanks(text, tEnd, end) !== end) return;
    const f = family(name);
    if (!f) return;
    // The format allows one TYPE per family, before its samples; a late or repeated one would
    // re-home samples already routed, so only the first one counts.
    if (f.type === 'untyped' && f.samples.length === 0) f.type = type as MetricType;
  };

  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = len;
    const next = end + 1;
    if (end > pos && text.charCodeAt(end - 1) === CR) end--;
    const i = skipBlanks(text, pos, end);
    pos = next;
    if (i >= end) continue;

    if (text.charCodeAt(i) === HASH) {
      parseComment(i + 1, end);
      continue;
    }

    const nameEnd = scanName(text, i, end, true);
    if (nameEnd === i) continue;
    const name = text.slice(i, nameEnd);
    let f = route.get(name);
    if (f === undefined) {
      f = resolve(name);
      route.set(name, f);
    }
    if (f === null) continue;
    const sample = parseSample(text, name, nameEnd, end);
    if (sample) f.samples.push(sample);
  }
  return families;
}

/** `x` for `x_bucket`, `x_sum`, `x_count`; else undefined. */
function histogramBase(name: string): string | undefined {
  for (const suffix of ['_bucket', '_count', '_sum']) {
    if (name.length > suffix.length && name.endsWith(suffix)) return name.slice(0, -suffix.length);
  }
  return undefined;
}

/** Parses the rest of a sample line after its name; undefined when malformed. */
function parseSample(text: string, name: string, i: number, end: number): Sample | undefined {
  const labels: Record<string, string> = {};
  if (i < end && text.charCodeAt(i) === LBRACE) {
    i++;
    for (;;) {
      i = skipBlanks(text, i, end);
      if (i >= end) return undefined;
      if (text.charCodeAt(i) === RBRACE) {
        i++;
        break;
      }
      const lEnd = scanName(text, i, end, false);
      if (lEnd === i) return undefined;
      const label = text.slice(i, lEnd);
      i = skipBlanks(text, lEnd, end);
      if (text.charCodeAt(i) !== EQUALS) return undefined;
      i = skipBlanks(text, i + 1, end);
      if (text.charCodeAt(i) !== QUOTE) return undefined;
      const vStart = i + 1;
      let escaped = false;
      let j = vStart;
      for (; j < end; j++) {
        const c = text.charCodeAt(j);
        if (c === QUOTE) break;
        if (c === BACKSLASH) {
          escaped = true;
          j++;
        }
      }
      if (j >= end) return undefined; // unterminated
      const raw = text.slice(vStart, j);
      if (!setLabel(labels, label, escaped ? unescape(raw, true) : raw)) return undefined;
      i = skipBlanks(text, j + 1, end);
      const c = text.charCodeAt(i);
      if (c === COMMA) i++;
      else if (c !== RBRACE) return undefined;
    }
  } else {
    // The value must be set apart from the name (`foo1` would otherwise be the name).
    const c = text.charCodeAt(i);
    if (c !== SPACE && c !== TAB) return undefined;
  }
  const vStart = skipBlanks(text, i, end);
  const vEnd = scanToken(text, vStart, end);
  const value = parseValue(text.slice(vStart, vEnd));
  if (value === undefined) return undefined;
  const tStart = skipBlanks(text, vEnd, end);
  if (tStart < end) {
    const tEnd = scanToken(text, tStart, end);
    if (!/^[+-]?\d+$/.test(text.slice(tStart, tEnd))) return undefined;
    if (skipBlanks(text, tEnd, end) !== end) return undefined;
  }
  return { name, labels, value };
}

// ---- histograms ----------------------------------------------------------------------------------

export interface Bucket {
  /** Upper bound; Infinity for the `+Inf` bucket. */
  le: number;
  /** Cumulative count of observations ≤ le. */
  count: number;
}

/**
 * The family's cumulative buckets summed over every label set that `labelFilter` accepts (all when
 * absent), sorted by le. Summing cumulative counts per le is what `sum by (le)` does in PromQL,
 * which is valid because all series of a histogram share their bucket bounds.
 */
export function histogramBuckets(family: MetricFamily | undefined, labelFilter?: (labels: Record<string, string>) => boolean): Bucket[] {
  if (!family) return [];
  const bucketName = `${family.name}_bucket`;
  const byLe = new Map<number, number>();
  for (const s of family.samples) {
    if (s.name !== bucketName || Number.isNaN(s.value)) continue;
    const leText = s.labels.le;
    if (leText === undefined) continue;
    const le = parseValue(leText);
    if (le === undefined || Number.isNaN(le)) continue;
    if (labelFilter && !labelFilter(s.labels)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/**
 * Observations between two scrapes: cur − prev per le. When a count went down or the bounds differ,
 * the process restarted (or was upgraded) in between and its counters began again from zero, so
 * everything in `cur` happened since the restart: cur is returned as it is.
 */
export function bucketsDelta(prev: readonly Bucket[], cur: readonly Bucket[]): Bucket[] {
  if (prev.length === 0) return cur.map((b) => ({ ...b }));
  const before = new Map(prev.map((b) => [b.le, b.count]));
  if (before.size !== cur.length) return cur.map((b) => ({ ...b }));
  const out: Bucket[] = [];
  for (const b of cur) {
    const p = before.get(b.le);
    if (p === undefined || b.count < p) return cur.map((c) => ({ ...c }));
    out.push({ le: b.le, count: b.count - p });
  }
  return out;
}

/**
 * The q-quantile as PromQL's histogram_quantile estimates it: linear interpolation inside the
 * bucket the rank falls in, 0 as the lower bound of the first bucket (unless its upper bound is
 * ≤ 0), and the highest finite bound when the rank falls in the +Inf bucket. Undefined when
 * nothing was observed or the buckets cannot be read (fewer than two, or no +Inf bucket), where
 * PromQL would give NaN. `buckets` must be sorted by le, as histogramBuckets returns them.
 */
export function quantileFromBuckets(q: number, buckets: readonly Bucket[]): number | undefined {
  const n = buckets.length;
  if (n < 2 || buckets[n - 1]!.le !== Infinity || Number.isNaN(q)) return undefined;
  // Scrapes racing with observations can leave a bucket a little below the one before it;
  // PromQL evens that out the same way.
  const counts: number[] = [];
  let max = 0;
  for (const b of buckets) {
    max = Math.max(max, b.count);
    counts.push(max);
  }
  const total = counts[n - 1]!;
  if (!(total > 0)) return undefined;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const rank = q * total;
  let b = 0;
  while (b < n - 1 && counts[b]! < rank) b++;
  if (b === n - 1) return buckets[n - 2]!.le;
  const upper = buckets[b]!.le;
  if (b === 0 && upper <= 0) return upper;
  const lower = b === 0 ? 0 : buckets[b - 1]!.le;
  const below = b === 0 ? 0 : counts[b - 1]!;
  const inBucket = counts[b]! - below;
  // Only a rank of 0 can land in an empty bucket; its estimate is the bucket's lower bound.
  if (inBucket === 0) return lower;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}

// ---- extractors -----------------------------------------------------------------------------------

function sum(family: MetricFamily | undefined, filter?: (labels: Record<string, string>) => boolean): number | undefined {
  if (!family || family.samples.length === 0) return undefined;
  let total = 0;
  let seen = false;
  for (const s of family.samples) {
    if (s.name !== family.name || Number.isNaN(s.value)) continue;
    if (filter && !filter(s.labels)) continue;
    total += s.value;
    seen = true;
  }
  return seen ? total : undefined;
}

function onlyNames(names: readonly string[]): (name: string) => boolean {
  const set = new Set(names);
  return (name) => set.has(name);
}

export interface EtcdScrapeState {
  walFsyncBuckets: Bucket[];
}

const ETCD_FAMILIES = onlyNames([
  'etcd_server_has_leader',
  'etcd_server_is_leader',
  'etcd_server_leader_changes_seen_total',
  'etcd_mvcc_db_total_size_in_bytes',
  'etcd_debugging_mvcc_db_total_size_in_bytes',
  'etcd_disk_wal_fsync_duration_seconds',
]);

/** One etcd member's figures from its /metrics; the WAL fsync p99 covers the time since `prev`. */
export function extractEtcd(machine: string, text: string, prev?: EtcdScrapeState): { metrics: EtcdMemberMetrics; state: EtcdScrapeState } {
  const fams = parsePrometheusText(text, { only: ETCD_FAMILIES });
  const walFsyncBuckets = histogramBuckets(fams.get('etcd_disk_wal_fsync_duration_seconds'));
  const metrics: EtcdMemberMetrics = {
    machine,
    hasLeader: sum(fams.get('etcd_server_has_leader')) === 1,
    isLeader: sum(fams.get('etcd_server_is_leader')) === 1,
    leaderChangesTotal: sum(fams.get('etcd_server_leader_changes_seen_total')) ?? 0,
    // The debugging name is what etcd before 3.4 served; 3.5 dropped it.
    dbSizeBytes: sum(fams.get('etcd_mvcc_db_total_size_in_bytes')) ?? sum(fams.get('etcd_debugging_mvcc_db_total_size_in_bytes')) ?? 0,
  };
  if (prev) {
    const p99 = quantileFromBuckets(0.99, bucketsDelta(prev.walFsyncBuckets, walFsyncBuckets));
    if (p99 !== undefined) metrics.walFsyncP99Seconds = p99;
  }
  return { metrics, state: { walFsyncBuckets } };
}

export interface ApiServerScrapeState {
  requestBuckets: Bucket[];
}

const APISERVER_FAMILIES = onlyNames([
  'apiserver_request_duration_seconds',
  'apiserver_current_inflight_requests',
  'apiserver_flowcontrol_current_executing_requests',
]);

// Watches and exec/attach/port-forward last as long as the client wants; their durations say
// nothing about how fast the apiserver answers.
const LONG_RUNNING_VERBS: ReadonlySet<string> = new Set(['WATCH', 'CONNECT']);

/** One kube-apiserver's figures from its /metrics; the request p99 covers the time since `prev`. */
export function extractApiServer(machine: string, text: string, prev?: ApiServerScrapeState): { metrics: ApiServerMetrics; state: ApiServerScrapeState } {
  const fams = parsePrometheusText(text, { only: APISERVER_FAMILIES });
  const requestBuckets = histogramBuckets(fams.get('apiserver_request_duration_seconds'), (l) => !LONG_RUNNING_VERBS.has(l.verb ?? ''));
  const metrics: ApiServerMetrics = {
    machine,
    inflightRequests: sum(fams.get('apiserver_current_inflight_requests')) ?? sum(fams.get('apiserver_flowcontrol_current_executing_requests')) ?? 0,
  };
  if (prev) {
    const p99 = quantileFromBuckets(0.99, bucketsDelta(prev.requestBuckets, requestBuckets));
    if (p99 !== undefined) metrics.requestP99Seconds = p99;
  }
  return { metrics, state: { requestBuckets } };
}

export interface AgentScrapeState {
  atMs: number;
  /** Sum of marina_agent_process_cpu_seconds_total; undefined when the agent served none. */
  cpuSeconds?: number;
}

const AGENT_FAMILIES = onlyNames(['marina_agent_process_rss_bytes', 'marina_agent_process_cpu_seconds_total', 'marina_agent_disk_used_bytes']);

/**
 * A machine's usage from its Marina agent's /metrics (the agent and every process it runs),
 * `nowMs` being when the scrape was taken. CPU cores are averaged since `prev`.
 */
export function extractAgent(machine: string, text: string, prev: AgentScrapeState | undefined, nowMs: number): { metrics: MachineUsage; state: AgentScrapeState } {
  const fams = parsePrometheusText(text, { only: AGENT_FAMILIES });
  const cpuSeconds = sum(fams.get('marina_agent_process_cpu_seconds_total'));
  const metrics: MachineUsage = {
    machine,
    rssBytes: sum(fams.get('marina_agent_process_rss_bytes')) ?? 0,
    diskUsedBytes: sum(fams.get('marina_agent_disk_used_bytes')) ?? 0,
  };
  if (prev?.cpuSeconds !== undefined && cpuSeconds !== undefined) {
    const cpu = cpuSeconds - prev.cpuSeconds;
    const wall = (nowMs - prev.atMs) / 1000;
    // The agent reports each process's current incarnation only, so a restart lowers the sum;
    // that interval's usage is unknown rather than negative.
    if (cpu >= 0 && wall > 0) metrics.cpuCores = cpu / wall;
  }
  const state: AgentScrapeState = { atMs: nowMs };
  if (cpuSeconds !== undefined) state.cpuSeconds = cpuSeconds;
  return { metrics, state };
}
