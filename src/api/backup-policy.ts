// Defaults and resolution of a cluster's backup policy (scheduled etcd snapshots) and of the
// operation checkpoints of a cluster and its project, shared by validation at the API edge, the
// backup scheduler and the operation admission, so all agree on what an omitted field means.
import { Cron } from 'croner';
import type { BackupPolicy, ClusterSpec, OperationPolicy } from './kinds.js';
import type { OperationType } from './operations.js';

export const BACKUP_DEFAULTS = {
  enabled: true,
  /** Every 6 hours, on the hour (UTC). */
  schedule: '0 */6 * * *',
  retain: 8,
} as const;

export interface ResolvedBackup {
  enabled: boolean;
  schedule: string;
  retain: number;
  /** Empty: the built-in local target. */
  target: string;
}

export function resolveBackup(policy: BackupPolicy | undefined): ResolvedBackup {
  return {
    enabled: policy?.enabled ?? BACKUP_DEFAULTS.enabled,
    schedule: policy?.schedule ?? BACKUP_DEFAULTS.schedule,
    retain: policy?.retain ?? BACKUP_DEFAULTS.retain,
    target: policy?.target ?? '',
  };
}

/** A parsed schedule (UTC); throws with croner's message when the expression is invalid. */
export function parseSchedule(expression: string): Cron {
  return new Cron(expression, { paused: true, timezone: 'UTC' });
}

/** Why `expression` is not a cron schedule, or undefined when it is one. */
export function scheduleProblem(expression: string): string | undefined {
  try {
    const cron = parseSchedule(expression);
    if (!cron.nextRun(new Date())) return 'the schedule never fires';
    return undefined;
  } catch (err) {
    return `not a cron expression: ${(err as Error).message}`;
  }
}

/** The gap between two consecutive runs after `from` (what "twice the schedule interval" is measured in). */
export function scheduleIntervalMs(expression: string, from: Date = new Date()): number {
  const [a, b] = parseSchedule(expression).nextRuns(2, from);
  return a && b ? b.getTime() - a.getTime() : 6 * 3600_000;
}

/** Whether an operation of `type` waits for approval under the cluster's and its project's policy. */
export function needsApproval(type: OperationType, cluster: Pick<ClusterSpec, 'operations'>, project?: { operations?: OperationPolicy }): boolean {
  return (cluster.operations?.approvalRequired ?? []).includes(type) || (project?.operations?.approvalRequired ?? []).includes(type);
}
