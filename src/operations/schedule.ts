// The backup schedule: a reconciler over Clusters that starts a Snapshot operation at every slot
// of the cluster's cron schedule (spec.backup, default every 6 hours), keeps the newest `retain`
// scheduled snapshots, and syncs the cluster's backup alerts:
//   BackupFailed    the newest finished snapshot operation failed
//   BackupMissing   no snapshot succeeded within twice the schedule's interval
//   RestoreFailed   the newest finished restore failed
// Level-based: a slot's operation has a name derived from the slot's time, so a restarted Marina
// (or a second look) creates it at most once; a slot missed while Marina was down is taken once
// when it comes back (only the newest missed one). Finished scheduled operations beyond twice the
// retention are deleted (the Snapshots keep the record).
import { parseSchedule, resolveBackup, scheduleIntervalMs } from '../api/backup-policy.js';
import type { Cluster } from '../api/kinds.js';
import { API_VERSION, byAge, type ObjectKey } from '../api/meta.js';
import type { Operation, Snapshot } from '../api/operations.js';
import { LABEL_CLUSTER, LABEL_OPERATION_TYPE, LABEL_SCHEDULED, SYSTEM_SCHEDULER } from '../api/wellknown.js';
import { RULES, type AlertInput, type AlertSink } from '../alerts/manager.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { isTerminal } from './rules.js';

export const BACKUP_ALERT_SOURCE = 'backup';
const MAX_LOOK_MS = 60_000;

/** `<cluster>-sched-<yyyymmddhhmm>`: one name per slot. */
export function scheduledName(cluster: string, slot: Date): string {
  const stamp = slot.toISOString().replace(/[-:T]/g, '').slice(0, 12);
  return `${cluster.slice(0, 63 - stamp.length - 7)}-sched-${stamp}`;
}

/** The newest slot at or before `now`, not before `since` (undefined: none yet). */
export function dueSlot(schedule: string, since: Date, now: Date): Date | undefined {
  const cron = parseSchedule(schedule);
  const prev = cron.previousRuns(1, now)[0];
  return prev && prev.getTime() > since.getTime() ? prev : undefined;
}

const finishedAt = (o: Operation) => Date.parse(o.status?.completionTime ?? o.metadata.creationTimestamp ?? '') || 0;

/** The backup alerts of a cluster, from its operations and snapshots (pure). */
export function backupAlerts(cluster: Cluster, ops: readonly Operation[], snaps: readonly Snapshot[], nowMs: number): AlertInput[] {
  const policy = resolveBackup(cluster.spec.backup);
  const alerts: AlertInput[] = [];
  const newest = (type: string) => ops.filter((o) => o.spec.type === type && isTerminal(o) && o.status?.phase !== 'Cancelled').sort((a, b) => finishedAt(b) - finishedAt(a))[0];
  const snapshotOp = newest('Snapshot');
  if (snapshotOp?.status?.phase === 'Failed') {
    alerts.push({
      rule: RULES.BackupFailed,
      severity: 'warning',
      summary: `the newest snapshot of cluster ${cluster.metadata.name} failed`,
      description: `operation ${snapshotOp.metadata.name}: ${snapshotOp.status.message ?? ''}`.slice(0, 16384),
    });
  }
  if (policy.enabled) {
    const intervalMs = scheduleIntervalMs(policy.schedule, new Date(nowMs));
    const lastOk = Math.max(0, ...snaps.filter((s) => s.status?.phase === 'Completed').map((s) => Date.parse(s.status?.completionTime ?? '') || 0));
    const since = Math.max(lastOk, Date.parse(cluster.metadata.creationTimestamp ?? '') || nowMs);
    if (nowMs - since > 2 * intervalMs) {
      alerts.push({
        rule: RULES.BackupMissing,
        severity: 'warning',
        summary: `cluster ${cluster.metadata.name} has no successful snapshot for ${Math.round((nowMs - since) / 60_000)} min (schedule "${policy.schedule}")`,
        description: lastOk ? `the newest successful snapshot finished at ${new Date(lastOk).toISOString()}` : 'no snapshot of this cluster ever succeeded',
      });
    }
  }
  const restore = newest('Restore');
  if (restore?.status?.phase === 'Failed') {
    alerts.push({
      rule: RULES.RestoreFailed,
      severity: 'critical',
      summary: `the restore of cluster ${cluster.metadata.name} failed`,
      description: `operation ${restore.metadata.name}: ${restore.status.message ?? ''}`.slice(0, 16384),
    });
  }
  return alerts;
}

/** Finished scheduled operations beyond the newest `keep`: their Snapshots carry the record. */
export function expiredOperations(ops: readonly Operation[], keep: number): Operation[] {
  const scheduled = ops.filter((o) => o.metadata.labels?.[LABEL_SCHEDULED] === 'true' && isTerminal(o) && !o.metadata.deletionTimestamp).sort(byAge).reverse();
  return scheduled.slice(keep);
}

/** Scheduled snapshots beyond the newest `retain` (finished ones only), oldest last kept. */
export function expiredSnapshots(snaps: readonly Snapshot[], retain: number): Snapshot[] {
  const scheduled = snaps.filter((s) => s.metadata.labels?.[LABEL_SCHEDULED] === 'true' && s.status?.phase !== 'Pending' && !s.metadata.deletionTimestamp).sort(byAge).reverse();
  return scheduled.slice(retain);
}

export class BackupScheduler implements Reconciler {
  private readonly clusters;
  private readonly ops;
  private readonly snaps;

  constructor(
    private readonly store: Store,
    private readonly alerts?: AlertSink,
    private readonly now: () => number = Date.now,
  ) {
    this.clusters = typed(store, 'Cluster');
    this.ops = typed(store, 'Operation');
    this.snaps = typed(store, 'Snapshot');
  }

  async reconcile(key: ObjectKey, _ctx: ReconcileContext): Promise<Result> {
    const cluster = await this.clusters.get(key.project, key.name);
    const scope = { project: key.project, cluster: key.name, source: BACKUP_ALERT_SOURCE };
    if (!cluster || cluster.metadata.deletionTimestamp) {
      await this.alerts?.sync(scope, []);
      return;
    }
    const selector = `${LABEL_CLUSTER}=${key.name}`;
    const [ops, snaps] = await Promise.all([this.ops.list({ project: key.project, labelSelector: selector }), this.snaps.list({ project: key.project, labelSelector: selector })]);
    const mine = ops.filter((o) => o.spec.cluster === key.name);
    const policy = resolveBackup(cluster.spec.backup);
    const nowMs = this.now();
    // Only a cluster that came up is backed up (and missed).
    const up = cluster.status?.phase === 'Ready' || cluster.status?.phase === 'Degraded';
    if (up && policy.enabled) await this.takeDueSnapshot(cluster, policy.schedule, mine, nowMs);
    for (const s of expiredSnapshots(snaps.filter((s) => s.spec.cluster === key.name), policy.retain)) {
      await this.snaps.deleteIfExists(key.project, s.metadata.name);
    }
    // The schedule's own operations would pile up (4 a day by default): twice the snapshots kept.
    for (const o of expiredOperations(mine, 2 * policy.retain)) await this.ops.deleteIfExists(key.project, o.metadata.name);
    await this.alerts?.sync(scope, up ? backupAlerts(cluster, mine, snaps, nowMs) : []);
    if (!policy.enabled) return { requeueAfterMs: MAX_LOOK_MS };
    const next = parseSchedule(policy.schedule).nextRun(new Date(nowMs));
    return { requeueAfterMs: Math.max(50, Math.min(MAX_LOOK_MS, (next?.getTime() ?? nowMs + MAX_LOOK_MS) - nowMs + 10)) };
  }

  private async takeDueSnapshot(cluster: Cluster, schedule: string, ops: readonly Operation[], nowMs: number): Promise<void> {
    const created = new Date(cluster.metadata.creationTimestamp ?? nowMs);
    const slot = dueSlot(schedule, created, new Date(nowMs));
    if (!slot) return;
    const name = scheduledName(cluster.metadata.name, slot);
    if (ops.some((o) => o.metadata.name === name)) return;
    const project = cluster.metadata.project ?? '';
    try {
      await this.ops.create({
        apiVersion: API_VERSION,
        kind: 'Operation',
        metadata: { name, project, labels: { [LABEL_CLUSTER]: cluster.metadata.name, [LABEL_OPERATION_TYPE]: 'Snapshot', [LABEL_SCHEDULED]: 'true' } },
        spec: { cluster: cluster.metadata.name, type: 'Snapshot' },
        status: { phase: 'Pending', requestedBy: SYSTEM_SCHEDULER },
      });
    } catch (err) {
      // Created by an earlier look whose list missed it: that is the point of the name.
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }
}
