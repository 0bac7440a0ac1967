// The notifier: a controller on Alert that delivers every state change of an alert (firing,
// resolved) to every matching NotificationChannel of its project, and keeps a delivery log in the
// alert's status.
//
// Level-based like every Marina controller: a reconcile computes, from the alert's current state
// and its delivery log, which (channel, state, episode) notifications are still owed, sends those
// that are due, and records the outcome. Nothing depends on which event woke it, so a restart
// resumes exactly where the log says.
//
// Delivery guarantee: at-least-once, recorded AFTER the send. The log is written with the alert's
// status (one write per reconcile). Only a crash between a receiver's 2xx and that write sends the
// notification again after a restart (receivers can deduplicate on groupKey + status +
// startsAt). An optimistic-concurrency conflict on that write (the AlertManager changed the alert
// meanwhile) does not re-send: the outcome of every send is kept in memory until the log shows it.
//
// Retries: a failed attempt (network error, timeout, HTTP 5xx, 408 or 429) is retried with
// exponential backoff (default 2 s × 4ⁿ, at most 5 attempts, capped at 5 min) by requeueing the
// alert; other 4xx answers and redirects fail at once. `status.notifications[]` shows attempts,
// the last error and HTTP code, and the next attempt time.
import { pino, type Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { isApiError } from '../api/errors.js';
import type { Alert, AlertState, AlertStatus, NotificationChannel, NotificationChannelStatus, NotificationRecord, Severity } from '../api/kinds.js';
import { keyString, type ObjectKey } from '../api/meta.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { reconcileObject } from '../runtime/reconcile.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { fingerprint, identityOf } from './fingerprint.js';
import { payloadFor } from './payload.js';

export interface NotifierOptions {
  store: Store;
  logger?: Logger;
  /** Marina's base URL for backlinks (generatorURL, externalURL); a function is read at send time. */
  externalURL?: string | (() => string | undefined);
  /** Attempts per notification before giving up (default 5). */
  maxAttempts?: number;
  /** Delay after the first failed attempt (default 2 s); multiplied by `backoffFactor` each time. */
  backoffBaseMs?: number;
  /** Default 4. */
  backoffFactor?: number;
  /** Default 5 min. */
  backoffMaxMs?: number;
  /** Per request (default 10 s). */
  timeoutMs?: number;
  /** Resolved alerts are deleted this long after they ended (default 7 days; 0 keeps them). */
  resolvedRetentionMs?: number;
  /** Records of earlier episodes kept in the delivery log (default 20). */
  historyLimit?: number;
  /** Replaceable for tests; default: the global fetch. */
  fetch?: typeof fetch;
  now?: () => Date;
  metrics?: Registry;
}

export const SEVERITY_RANK: Record<Severity, number> = { info: 1, warning: 2, critical: 3 };

/** Does `channel` want notifications about `alert` (rule filter, minimum severity)? */
export function channelMatches(channel: NotificationChannel, alert: Alert): boolean {
  const { rules, minSeverity } = channel.spec;
  if (rules && rules.length > 0 && !rules.includes(alert.spec.rule)) return false;
  if (minSeverity && SEVERITY_RANK[alert.spec.severity] < SEVERITY_RANK[minSeverity]) return false;
  return true;
}

/** Delay before attempt `failed + 1`, after `failed` failed attempts (failed ≥ 1). */
export function backoffDelay(failed: number, base: number, factor: number, max: number): number {
  return Math.min(max, base * factor ** Math.min(Math.max(0, failed - 1), 64));
}

interface SendResult {
  ok: boolean;
  retryable: boolean;
  code?: number;
  error?: string;
}

const MAX_REQUEUE_MS = 60 * 60_000;

export class AlertNotifier implements Reconciler {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly fetch: typeof fetch;
  private readonly now: () => Date;
  private readonly maxAttempts: number;
  private readonly base: number;
  private readonly factor: number;
  private readonly maxDelay: number;
  private readonly timeoutMs: number;
  private readonly retentionMs: number;
  private readonly historyLimit: number;
  private readonly externalURL: () => string | undefined;
  private readonly counter?: Counter<'type' | 'result'>;
  /** Outcomes of sends not yet seen in the stored log, per alert key (see the header). */
  private readonly unrecorded = new Map<string, Map<string, NotificationRecord>>();
  /** Channel status updates, chained per channel so they do not conflict with each other. */
  private readonly statsChains = new Map<string, Promise<void>>();
  /** Called when a reconcile finds the alert gone (index cleanup). */
  onGone?: (key: ObjectKey) => void;

  constructor(opts: NotifierOptions) {
    this.store = opts.store;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'alert-notifier' });
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.now = opts.now ?? (() => new Date());
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.base = opts.backoffBaseMs ?? 2_000;
    this.factor = opts.backoffFactor ?? 4;
    this.maxDelay = opts.backoffMaxMs ?? 5 * 60_000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retentionMs = opts.resolvedRetentionMs ?? 7 * 24 * 3_600_000;
    this.historyLimit = opts.historyLimit ?? 20;
    const ext = opts.externalURL;
    this.externalURL = typeof ext === 'function' ? ext : () => ext;
    if (opts.metrics) {
      const name = 'marina_alert_notifications_total';
      this.counter =
        (opts.metrics.getSingleMetric(name) as Counter<'type' | 'result'> | undefined) ??
        new Counter({
          name,
          help: 'Notification attempts per channel type and result (delivered, retry, failed)',
          labelNames: ['type', 'result'],
          registers: [opts.metrics],
        });
    }
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    let seen = false;
    const res = await reconcileObject<Alert>(
      this.store,
      key,
      {
        reconcile: async (alert) => {
          seen = true;
          return this.step(alert, ctx);
        },
      },
      ctx,
    );
    if (!seen) {
      this.unrecorded.delete(keyString(key));
      this.onGone?.(key);
    }
    return res;
  }

  /** One reconcile of one alert (a draft): deliver what is due, return the new status. */
  private async step(alert: Alert, ctx: ReconcileContext): Promise<{ status: AlertStatus; requeueAfterMs?: number }> {
    const project = alert.metadata.project ?? '';
    const akey = keyString({ kind: 'Alert', project, name: alert.metadata.name });
    const status: AlertStatus = alert.status ?? {};
    const now = this.now();
    const nowMs = now.getTime();
    if (!status.state || !status.startsAt) {
      // Created through the API (platform admins, e.g. to try a channel) without a status: it fires.
      status.state ??= 'firing';
      status.startsAt ??= alert.metadata.creationTimestamp ?? now.toISOString();
      status.lastEvaluatedAt ??= now.toISOString();
    }
    status.fingerprint ??= fingerprint(identityOf(alert));

    // What the alert is about is gone: a deleted project takes its alerts along; a deleted
    // cluster's alerts resolve.
    if (!(await this.store.get({ kind: 'Project', project: '', name: project }))) {
      await this.store.delete({ kind: 'Alert', project, name: alert.metadata.name }).catch(ignoreNotFound);
      return { status };
    }
    if (status.state === 'firing' && alert.spec.cluster && !(await this.store.get({ kind: 'Cluster', project, name: alert.spec.cluster }))) {
      status.state = 'resolved';
      status.endsAt = now.toISOString();
      status.lastEvaluatedAt = status.endsAt;
      ctx.log.info({ cluster: alert.spec.cluster }, 'cluster is gone; alert resolved');
    }

    // Garbage collection of long-resolved alerts.
    if (status.state === 'resolved' && this.retentionMs > 0 && status.endsAt && Date.parse(status.endsAt) + this.retentionMs <= nowMs) {
      await this.store.delete({ kind: 'Alert', project, name: alert.metadata.name }).catch(ignoreNotFound);
      return { status };
    }

    const records = mergeUnrecorded(status.notifications ?? [], this.unrecorded.get(akey));
    const state = status.state;
    const episode = status.startsAt;
    const find = (channel: string, s: AlertState) => records.find((r) => r.channel === channel && r.state === s && r.startsAt === episode);

    const channels = (await this.listChannels(project)).filter((c) => !c.metadata.deletionTimestamp && channelMatches(c, alert));
    let wakeAt: number | undefined;
    const due: { channel: NotificationChannel; prev?: NotificationRecord }[] = [];
    for (const channel of channels) {
      const name = channel.metadata.name;
      if (state === 'resolved') {
        if (channel.spec.sendResolved === false) continue;
        // A receiver that never heard of the firing alert gets no resolved notification either.
        if (find(name, 'firing')?.outcome !== 'delivered') continue;
      }
      const prev = find(name, state);
      if (prev && prev.outcome !== 'pending') continue;
      const next = prev?.nextAttemptAt ? Date.parse(prev.nextAttemptAt) : nowMs;
      if (next > nowMs) {
        wakeAt = Math.min(wakeAt ?? next, next);
        continue;
      }
      due.push({ channel, prev });
    }

    const view: Alert = { ...alert, status };
    const sent = await Promise.all(due.map(({ channel, prev }) => this.deliver(view, channel, state, episode, prev, akey, ctx)));
    for (const rec of sent) {
      const i = records.findIndex((r) => r.channel === rec.channel && r.state === rec.state && r.startsAt === rec.startsAt);
      if (i >= 0) records[i] = rec;
      else records.push(rec);
      if (rec.outcome === 'pending' && rec.nextAttemptAt) {
        const t = Date.parse(rec.nextAttemptAt);
        wakeAt = Math.min(wakeAt ?? t, t);
      }
    }
    status.notifications = this.trim(records, state, episode, now);

    let requeue = wakeAt !== undefined ? Math.max(1, wakeAt - nowMs) : undefined;
    if (state === 'resolved' && this.retentionMs > 0 && status.endsAt) {
      const gc = Math.max(1, Date.parse(status.endsAt) + this.retentionMs - nowMs);
      requeue = Math.min(requeue ?? gc, gc);
    }
    return { status, requeueAfterMs: requeue === undefined ? undefined : Math.min(requeue, MAX_REQUEUE_MS) };
  }

  /** One attempt to deliver `state` of `alert` to `channel`; never throws. */
  private async deliver(
    alert: Alert,
    channel: NotificationChannel,
    state: AlertState,
    episode: string,
    prev: NotificationRecord | undefined,
    akey: string,
    ctx: ReconcileContext,
  ): Promise<NotificationRecord> {
    const attempts = (prev?.attempts ?? 0) + 1;
    let result: SendResult;
    try {
      const body = payloadFor(channel.spec.type, alert, state, { receiver: channel.metadata.name, externalURL: this.externalURL() });
      result = await this.post(channel.spec.url, body, ctx.signal);
    } catch (err) {
      result = { ok: false, retryable: true, error: errorText(err) };
    }
    const at = this.now();
    const rec: NotificationRecord = { channel: channel.metadata.name, state, startsAt: episode, outcome: 'delivered', attempts, at: at.toISOString() };
    if (result.code !== undefined) rec.code = result.code;
    if (!result.ok) {
      rec.error = truncate(result.error ?? 'failed', 1024);
      if (result.retryable && attempts < this.maxAttempts) {
        rec.outcome = 'pending';
        rec.nextAttemptAt = new Date(at.getTime() + backoffDelay(attempts, this.base, this.factor, this.maxDelay)).toISOString();
      } else {
        rec.outcome = 'failed';
      }
    }
    // Remember the outcome before anything else can fail (see the header).
    let pending = this.unrecorded.get(akey);
    if (!pending) this.unrecorded.set(akey, (pending = new Map()));
    pending.set(recordKey(rec), rec);

    const fields = { channel: channel.metadata.name, type: channel.spec.type, state, attempts, code: result.code };
    if (rec.outcome === 'delivered') ctx.log.info(fields, 'notification delivered');
    else if (rec.outcome === 'pending') ctx.log.warn({ ...fields, error: rec.error, nextAttemptAt: rec.nextAttemptAt }, 'notification failed; will retry');
    else ctx.log.error({ ...fields, error: rec.error }, 'notification failed; giving up');
    this.counter?.inc({ type: channel.spec.type, result: rec.outcome === 'delivered' ? 'delivered' : rec.outcome === 'pending' ? 'retry' : 'failed' });
    await this.bumpStats(channel, rec);
    return rec;
  }

  /** POSTs JSON; credentials in the URL become a Basic Authorization header. */
  private async post(url: string, body: unknown, signal: AbortSignal): Promise<SendResult> {
    const u = new URL(url);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'marina-alerts/0.1' };
    if (u.username || u.password) {
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
      u.username = '';
      u.password = '';
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    try {
      res = await this.fetch(u, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.any([signal, timeout]),
      });
    } catch (err) {
      if (timeout.aborted) return { ok: false, retryable: true, error: `no answer within ${this.timeoutMs} ms` };
      return { ok: false, retryable: true, error: errorText(err) };
    }
    const text = await readSome(res, 512).catch(() => '');
    if (res.status >= 200 && res.status < 300) return { ok: true, retryable: false, code: res.status };
    const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    const why = res.status >= 300 && res.status < 400 ? ' (redirects are not followed; configure the final URL)' : '';
    return { ok: false, retryable, code: res.status, error: `HTTP ${res.status}${why}${text ? `: ${oneLine(text)}` : ''}` };
  }

  /**
   * Keeps the current episode's records (marking pending ones of the other state as failed: they
   * were superseded) and the newest `historyLimit` older ones.
   */
  private trim(records: NotificationRecord[], state: AlertState, episode: string, now: Date): NotificationRecord[] {
    const current: NotificationRecord[] = [];
    const older: NotificationRecord[] = [];
    for (const r of records) {
      let rec = r;
      if (rec.outcome === 'pending' && (rec.startsAt !== episode || rec.state !== state)) {
        rec = { ...rec, outcome: 'failed', at: now.toISOString(), error: truncate(`superseded: the alert is ${state}${rec.startsAt !== episode ? ' in a later episode' : ''}; ${rec.error ?? ''}`, 1024) };
        delete rec.nextAttemptAt;
      }
      (rec.startsAt === episode ? current : older).push(rec);
    }
    older.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
    const keep = [...older.slice(0, this.historyLimit), ...current];
    keep.sort((a, b) => Date.parse(a.at) - Date.parse(b.at) || a.channel.localeCompare(b.channel));
    return keep.slice(-200);
  }

  private listChannels(project: string): Promise<NotificationChannel[]> {
    return typed(this.store, 'NotificationChannel').list({ project });
  }

  /** Delivery statistics on the channel's status; best effort, serialized per channel. */
  private bumpStats(channel: NotificationChannel, rec: NotificationRecord): Promise<void> {
    const key = { kind: 'NotificationChannel', project: channel.metadata.project ?? '', name: channel.metadata.name };
    const k = keyString(key);
    const run = async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const cur = await typed(this.store, 'NotificationChannel').get(key.project, key.name);
        if (!cur) return;
        const st: NotificationChannelStatus = { ...cur.status };
        if (rec.outcome === 'delivered') {
          st.delivered = (st.delivered ?? 0) + 1;
          st.lastDeliveredAt = rec.at;
        } else {
          st.failedAttempts = (st.failedAttempts ?? 0) + 1;
          st.lastFailedAt = rec.at;
          st.lastError = rec.error;
        }
        try {
          await typed(this.store, 'NotificationChannel').updateStatus({ ...cur, status: st });
          return;
        } catch (err) {
          if (isApiError(err) && err.code === 409) continue;
          if (isApiError(err) && err.code === 404) return;
          throw err;
        }
      }
    };
    const next = (this.statsChains.get(k) ?? Promise.resolve())
      .then(run)
      .catch((err: unknown) => this.log.warn({ err, channel: k }, 'updating channel statistics failed'));
    this.statsChains.set(k, next);
    void next.then(() => {
      if (this.statsChains.get(k) === next) this.statsChains.delete(k);
    });
    return next;
  }
}

function recordKey(r: Pick<NotificationRecord, 'channel' | 'state' | 'startsAt'>): string {
  return `${r.channel}\u0000${r.state}\u0000${r.startsAt}`;
}

/**
 * The stored log plus send outcomes it does not show yet (a status write lost to a conflict).
 * Cached entries the log already shows are dropped from the cache.
 */
function mergeUnrecorded(stored: NotificationRecord[], cache: Map<string, NotificationRecord> | undefined): NotificationRecord[] {
  const records = stored.map((r) => ({ ...r }));
  if (!cache) return records;
  for (const [k, cached] of cache) {
    const i = records.findIndex((r) => recordKey(r) === k);
    if (i < 0) records.push(cached);
    else if (records[i]!.attempts < cached.attempts) records[i] = cached;
    else cache.delete(k);
  }
  return records;
}

function ignoreNotFound(err: unknown): void {
  if (isApiError(err) && err.code === 404) return;
  throw err;
}

async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < max) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, max);
}

function errorText(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return truncate(`${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`, 1024);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
}
