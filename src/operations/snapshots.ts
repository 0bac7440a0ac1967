// Deleting a Snapshot deletes its stored copy first (the `marina.dev/snapshot` finalizer), so
// retention and `marina delete snapshot` leave nothing behind in the target.
import type { ObjectKey } from '../api/meta.js';
import type { Snapshot } from '../api/operations.js';
import { FINALIZER_SNAPSHOT } from '../api/wellknown.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { reconcileObject } from '../runtime/reconcile.js';
import { withTarget } from './backup.js';
import type { OperationDeps } from './framework.js';

export class SnapshotReconciler implements Reconciler {
  constructor(private readonly deps: OperationDeps) {}

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<Snapshot>(
      this.deps.store,
      key,
      {
        finalizer: FINALIZER_SNAPSHOT,
        // The Snapshot operation writes the status; nothing to drive here.
        reconcile: async (s) => ({ status: s.status ?? {} }),
        finalize: async (s) => {
          const location = s.status?.location;
          if (location) {
            await withTarget(this.deps, s.metadata.project ?? '', s.spec.target ?? '', (target) => target.delete(location, ctx.signal));
            ctx.log.info({ location }, 'deleted the stored snapshot');
          }
          return { done: true };
        },
      },
      ctx,
    );
  }
}
