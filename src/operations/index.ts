// Day-2 operations: the Operation controller with every operation type, the backup schedule (one
// per cluster, with retention and the backup alerts), the automatic certificate renewal and the
// Snapshot finalizer, as one ControllerManager the server's control loops start beside the
// cluster controllers.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { clusterKey } from '../controllers/common.js';
import { Controller } from '../runtime/controller.js';
import { ControllerManager } from '../runtime/manager.js';
import { RuntimeMetrics } from '../runtime/metrics.js';
import { OperationReconciler } from './controller.js';
import type { OperationDefinition, OperationDeps } from './framework.js';
import { replaceMachineOperation } from './replace-machine.js';
import { restoreOperation } from './restore.js';
import { rotateCertificatesOperation } from './rotate-certificates.js';
import { upgradeOperation } from './upgrade.js';
import { CertificateRenewal } from './renewal.js';
import { BackupScheduler } from './schedule.js';
import { snapshotOperation } from './snapshot.js';
import { SnapshotReconciler } from './snapshots.js';

/** Every operation type Marina runs. */
export const OPERATION_DEFINITIONS: ReadonlyMap<string, OperationDefinition> = new Map(
  [snapshotOperation, restoreOperation, replaceMachineOperation, upgradeOperation, rotateCertificatesOperation].map((d) => [d.type, d]),
);

export interface OperationControllerOptions {
  deps: OperationDeps;
  logger: Logger;
  metrics: Registry;
  resyncPeriodMs?: number;
  stopGracePeriodMs?: number;
}

export async function startOperationControllers(o: OperationControllerOptions): Promise<ControllerManager> {
  const common = {
    store: o.deps.store,
    logger: o.logger,
    metrics: new RuntimeMetrics(o.metrics),
    ...(o.resyncPeriodMs !== undefined ? { resyncPeriodMs: o.resyncPeriodMs } : {}),
    ...(o.stopGracePeriodMs !== undefined ? { stopGracePeriodMs: o.stopGracePeriodMs } : {}),
  };
  const operations = new Controller({
    ...common,
    name: 'operation',
    kind: 'Operation',
    reconciler: new OperationReconciler(o.deps, OPERATION_DEFINITIONS),
    workers: 4,
  });
  const schedule = new Controller({
    ...common,
    name: 'backup-schedule',
    kind: 'Cluster',
    reconciler: new BackupScheduler(o.deps.store, o.deps.alerts),
    workers: 2,
    watches: [
      { kind: 'Operation', mapTo: (op) => [clusterKey(op.metadata.project ?? '', op.spec.cluster)] },
      { kind: 'Snapshot', mapTo: (s) => [clusterKey(s.metadata.project ?? '', s.spec.cluster)] },
    ],
  });
  const snapshots = new Controller({ ...common, name: 'snapshot', kind: 'Snapshot', reconciler: new SnapshotReconciler(o.deps), workers: 2 });
  const renewal = new Controller({
    ...common,
    name: 'certificate-renewal',
    kind: 'Cluster',
    reconciler: new CertificateRenewal(o.deps.store),
    workers: 1,
    // A finished operation frees the cluster for a renewal that waited.
    watches: [{ kind: 'Operation', mapTo: (op) => [clusterKey(op.metadata.project ?? '', op.spec.cluster)] }],
  });
  const manager = new ControllerManager([operations, schedule, snapshots, renewal]);
  await manager.start();
  return manager;
}

export type { OperationDeps } from './framework.js';
