// The AlertManager opens, updates and resolves Alert objects. Evaluators (health checks, the
// healer, provisioning watchdogs) call it; the notifier controller delivers what changes.
//
// Level-based, like the controllers that call it: `sync(scope, active)` takes the COMPLETE set of
// alerts one evaluator currently sees for one scope (a project, optionally one cluster). Alerts in
// the set are opened (or re-opened) and kept current; alerts the same evaluator opened earlier in
// that scope and no longer reports are resolved. A reconcile can therefore call sync() every time
// with whatever is true now, never tracking what it reported before, and a restart of Marina
// converges to the same alerts. `raise`/`resolve` are the edge-triggered convenience for callers
// that see a single event (a backup that failed).
//
// Deduplication: an alert's identity is rule + project + cluster + labels; its fingerprint (64 bits
// of SHA-256 over the sorted identity labels) names the object (`<rule-kebab>-<fingerprint>`), so
// raising the same alert again finds the same object. Severity and annotations are not part of the
// identity: they are updated in place.
import { pino, type Logger } from 'pino';
import { isApiError } from '../api/errors.js';
import type { Alert, AlertSpec, AlertStatus, Severity } from '../api/kinds.js';
import { jsonEqual } from '../api/json.js';
import { API_VERSION } from '../api/meta.js';
import { LABEL_CLUSTER } from '../api/wellknown.js';
import { validateObject } from '../api/registry.js';
import { typed, type TypedStore } from '../store/typed.js';
import type { Store } from '../store/types.js';
import type { EventBus } from '../events/bus.js';
import { alertChanged } from '../events/platform.js';
import { alertName, fingerprint, type AlertIdentity } from './fingerprint.js';

/** Labels on every Alert object, for label selectors (`marina get alerts -l ...`). */
export const LABEL_ALERT_SOURCE = 'marina.dev/alert-source';
export const LABEL_ALERT_RULE = 'marina.dev/alert-rule';

/** Rule names Marina's own evaluators use (any PascalCase name is accepted). */
export const RULES = {
  NodeProvisioningSlow: 'NodeProvisioningSlow',
  ClusterProvisioningSlow: 'ClusterProvisioningSlow',
  ComponentUnhealthy: 'ComponentUnhealthy',
  NodeConditionUnhealthy: 'NodeConditionUnhealthy',
  ClusterConditionUnhealthy: 'ClusterConditionUnhealthy',
  HealingHeldBack: 'HealingHeldBack',
  /** An imported server is unhealthy; healing never replaces a user's server, so a person must look. */
  ImportedMachineUnhealthy: 'ImportedMachineUnhealthy',
  BackupFailed: 'BackupFailed',
  BackupMissing: 'BackupMissing',
  RestoreFailed: 'RestoreFailed',
  CertificateNearExpiry: 'CertificateNearExpiry',
  OrphanedMachine: 'OrphanedMachine',
  /** A provider's resource of a whole cluster (load balancer, security or server group) whose Cluster is gone (warning). */
  OrphanedResource: 'OrphanedResource',
  /** An add-on unhealthy or not applied for AddonPolicy.spec.unhealthyAlertSeconds (warning). */
  AddonUnhealthy: 'AddonUnhealthy',
  /** Objects of an add-on put back after someone changed or deleted them (info, for 5 minutes). */
  AddonDriftCorrected: 'AddonDriftCorrected',
} as const;

/** One alert as an evaluator reports it. */
export interface AlertInput {
  rule: string;
  severity: Severity;
  /** Identifying labels (Prometheus label names), e.g. `{ node: 'w-1', condition: 'Ready' }`. */
  labels?: Record<string, string>;
  summary: string;
  description?: string;
}

/** Who reports, about what: sync() resolves only alerts of the same source and scope. */
export interface AlertScope {
  project: string;
  /** One cluster's alerts; undefined: project-level alerts (no cluster). */
  cluster?: string;
  /**
   * The evaluator, e.g. `health`, `provisioning`, or `healing.<pool>` for one that reports per pool
   * (lower case, dots and dashes, ≤ 253 characters).
   */
  source: string;
}

export interface RaiseInput extends AlertInput {
  project: string;
  cluster?: string;
  /** Default `events`. */
  source?: string;
}

export interface SyncResult {
  /** Names of the alerts reported firing (opened, re-opened or still firing). */
  firing: string[];
  /** Names that went from absent or resolved to firing in this call. */
  opened: string[];
  /** Names resolved in this call. */
  resolved: string[];
}

export interface AlertManagerOptions {
  store: Store;
  logger?: Logger;
  now?: () => Date;
  /**
   * A still-firing alert's `status.lastEvaluatedAt` is rewritten at most this often (default 60 s),
   * so that evaluators calling sync() every few seconds do not write every time.
   */
  evaluatedRefreshMs?: number;
  /** Where alert.fired and alert.resolved platform events go (the function service); absent: none. */
  events?: EventBus;
}

const SOURCE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const MAX_ATTEMPTS = 8;

export class AlertManager {
  private readonly alerts: TypedStore<Alert>;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly refreshMs: number;
  private readonly events?: EventBus;

  constructor(opts: AlertManagerOptions) {
    this.alerts = typed(opts.store, 'Alert');
    this.events = opts.events;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'alert-manager' });
    this.now = opts.now ?? (() => new Date());
    this.refreshMs = opts.evaluatedRefreshMs ?? 60_000;
  }

  /**
   * Makes the firing alerts of `scope` exactly `active`: opens or updates each of them, resolves
   * the scope's other firing alerts of the same source. Inputs with the same identity count once
   * (the last wins). Invalid input (rule not PascalCase, bad label names...) throws a 422 ApiError
   * before anything is written.
   */
  async sync(scope: AlertScope, active: readonly AlertInput[]): Promise<SyncResult> {
    checkSource(scope.source);
    const wanted = new Map<string, { id: AlertIdentity; input: AlertInput; obj: Alert }>();
    for (const input of active) {
      const id: AlertIdentity = { project: scope.project, cluster: scope.cluster, rule: input.rule, labels: input.labels ?? {} };
      const fp = fingerprint(id);
      wanted.set(fp, { id, input, obj: this.build(id, input, scope.source, fp) });
    }
    const result: SyncResult = { firing: [], opened: [], resolved: [] };
    for (const [fp, w] of wanted) {
      const { alert, opened } = await this.upsert(w.obj, fp);
      result.firing.push(alert.metadata.name);
      if (opened) result.opened.push(alert.metadata.name);
    }
    const selector = [`${LABEL_ALERT_SOURCE}=${scope.source}`, scope.cluster ? `${LABEL_CLUSTER}=${scope.cluster}` : `!${LABEL_CLUSTER}`].join(',');
    for (const a of await this.listAlerts(scope.project, selector)) {
      if (a.status?.state !== 'firing' || (a.spec.cluster ?? undefined) !== scope.cluster) continue;
      if (a.status.fingerprint && wanted.has(a.status.fingerprint)) continue;
      if (await this.resolveByName(scope.project, a.metadata.name, scope.source)) result.resolved.push(a.metadata.name);
    }
    if (result.opened.length > 0 || result.resolved.length > 0) {
      this.log.info({ ...scope, opened: result.opened, resolved: result.resolved }, 'alerts changed');
    }
    return result;
  }

  /** Opens (or keeps open) one alert; returns it. */
  async raise(input: RaiseInput): Promise<Alert> {
    const source = input.source ?? 'events';
    checkSource(source);
    const id: AlertIdentity = { project: input.project, cluster: input.cluster, rule: input.rule, labels: input.labels ?? {} };
    const fp = fingerprint(id);
    const { alert, opened } = await this.upsert(this.build(id, input, source, fp), fp);
    if (opened) this.log.info({ project: input.project, cluster: input.cluster, alert: alert.metadata.name }, 'alert opened');
    return alert;
  }

  /** Resolves the alert with this identity if it is firing; returns it (undefined if none exists). */
  async resolve(id: AlertIdentity): Promise<Alert | undefined> {
    const name = alertName(id.rule, fingerprint({ ...id, labels: id.labels ?? {} }));
    await this.resolveByName(id.project, name);
    return this.alerts.get(id.project, name);
  }

  /**
   * Resolves every firing alert of a project, or of one cluster of it (e.g. when the cluster is
   * deleted), optionally of one source only. Returns the names resolved.
   */
  async resolveAll(filter: { project: string; cluster?: string; source?: string }): Promise<string[]> {
    const sel: string[] = [];
    if (filter.cluster) sel.push(`${LABEL_CLUSTER}=${filter.cluster}`);
    if (filter.source) sel.push(`${LABEL_ALERT_SOURCE}=${filter.source}`);
    const resolved: string[] = [];
    for (const a of await this.listAlerts(filter.project, sel.join(','))) {
      if (a.status?.state !== 'firing') continue;
      if (filter.cluster && a.spec.cluster !== filter.cluster) continue;
      if (await this.resolveByName(filter.project, a.metadata.name)) resolved.push(a.metadata.name);
    }
    return resolved;
  }

  // ---------- internals ----------

  private build(id: AlertIdentity, input: AlertInput, source: string, fp: string): Alert {
    const annotations: AlertSpec['annotations'] = { summary: input.summary };
    if (input.description) annotations.description = input.description;
    const spec: AlertSpec = { rule: input.rule, severity: input.severity, labels: { ...(input.labels ?? {}) }, annotations };
    if (id.cluster) spec.cluster = id.cluster;
    const labels: Record<string, string> = { [LABEL_ALERT_SOURCE]: source, [LABEL_ALERT_RULE]: input.rule };
    if (id.cluster) labels[LABEL_CLUSTER] = id.cluster;
    const obj: Alert = {
      apiVersion: API_VERSION,
      kind: 'Alert',
      metadata: { name: alertName(input.rule, fp), project: id.project, labels },
      spec,
    };
    // The schema and semantic checks of the API, so that Marina never stores what a client could not.
    validateObject(obj, undefined, { kubernetesVersions: [] });
    return obj;
  }

  /** Creates the alert firing, or brings an existing one to the desired spec and to firing. */
  private async upsert(desired: Alert, fp: string): Promise<{ alert: Alert; opened: boolean }> {
    const key = { kind: 'Alert', project: desired.metadata.project ?? '', name: desired.metadata.name };
    for (let attempt = 0; ; attempt++) {
      try {
        const current = await this.alerts.get(key.project, key.name);
        const now = this.now().toISOString();
        if (!current) {
          const status: AlertStatus = { state: 'firing', startsAt: now, lastEvaluatedAt: now, fingerprint: fp, notifications: [] };
          const created = await this.alerts.create({ ...desired, status });
          this.publish(created);
          return { alert: created, opened: true };
        }
        if (current.status?.fingerprint && current.status.fingerprint !== fp) {
          throw new Error(`alert name ${key.name} is taken by fingerprint ${current.status.fingerprint}, not ${fp}`);
        }
        let obj = current;
        const labels = { ...current.metadata.labels, ...desired.metadata.labels };
        if (!jsonEqual(current.spec, desired.spec) || !jsonEqual(current.metadata.labels ?? {}, labels)) {
          obj = await this.alerts.update({ ...current, spec: desired.spec, metadata: { ...current.metadata, labels } });
        }
        const st: AlertStatus = obj.status ?? {};
        let next: AlertStatus | undefined;
        let opened = false;
        if (st.state !== 'firing') {
          next = { ...st, state: 'firing', startsAt: now, lastEvaluatedAt: now, fingerprint: fp };
          delete next.endsAt;
          opened = true;
        } else if (!st.lastEvaluatedAt || Date.parse(now) - Date.parse(st.lastEvaluatedAt) >= this.refreshMs || st.fingerprint !== fp) {
          next = { ...st, lastEvaluatedAt: now, fingerprint: fp };
        }
        if (next) obj = await this.alerts.updateStatus({ ...obj, status: next });
        if (opened) this.publish(obj);
        return { alert: obj, opened };
      } catch (err) {
        // 404: the notifier garbage-collected the resolved alert meanwhile; create it again.
        if ((retryable(err) || (isApiError(err) && err.code === 404)) && attempt < MAX_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /** Resolves one alert if it is firing (and, with `source`, still belongs to that source). */
  private async resolveByName(project: string, name: string, source?: string): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        const current = await this.alerts.get(project, name);
        if (!current || current.status?.state !== 'firing') return false;
        if (source && current.metadata.labels?.[LABEL_ALERT_SOURCE] !== source) return false;
        const now = this.now().toISOString();
        this.publish(await this.alerts.updateStatus({ ...current, status: { ...current.status, state: 'resolved', endsAt: now, lastEvaluatedAt: now } }));
        return true;
      } catch (err) {
        if (isApiError(err) && err.code === 404) return false;
        if (retryable(err) && attempt < MAX_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /** The platform event of a transition that was just stored; a failure is logged, never fails the evaluator. */
  private publish(a: Alert): void {
    this.events?.publish(alertChanged(a)).catch((err) => this.log.warn({ err, alert: a.metadata.name }, 'publishing a platform event failed'));
  }

  private listAlerts(project: string, labelSelector: string): Promise<Alert[]> {
    return this.alerts.list({ project, labelSelector: labelSelector || undefined });
  }
}

function checkSource(source: string): void {
  if (!SOURCE.test(source) || source.length > 253) throw new TypeError(`alert source ${JSON.stringify(source)} must be lower-case alphanumerics, "-" and "."`);
}

/** Optimistic-concurrency conflicts and create races: read again and retry. */
function retryable(err: unknown): boolean {
  return isApiError(err) && err.code === 409;
}

/** What evaluators (health checks, healing, provisioning watchdogs) need: depend on this, not the class. */
export type AlertSink = Pick<AlertManager, 'sync' | 'raise' | 'resolve' | 'resolveAll'>;
