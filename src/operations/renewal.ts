// Automatic certificate renewal: a reconciler over Clusters that starts a RotateCertificates
// operation (leaf certificates, requested by `system:certificate-renewal`) when a machine's or the
// admin kubeconfig's certificate ends within the cluster's `certificateRenewalDays` (default 30).
// Level-based and bounded: the operation is named after the day the earliest certificate ends,
// so one expiry starts at most one rotation — a failed one is not retried in a loop (the
// CertificateNearExpiry alert keeps firing for a person). It waits while another disruptive
// operation holds the cluster, and only renews a cluster that is up.
import type { Cluster } from '../api/kinds.js';
import { API_VERSION, type ObjectKey } from '../api/meta.js';
import { LABEL_CLUSTER, LABEL_OPERATION_TYPE, SYSTEM_CERTIFICATE_RENEWAL } from '../api/wellknown.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { holderOf } from './rules.js';

export const DEFAULT_RENEWAL_DAYS = 30;
const DAY_MS = 86_400_000;
/** Looked at again at least this often (expiries move when machines are replaced). */
const MAX_LOOK_MS = 3600_000;

/** The earliest end of a leaf certificate (the admin kubeconfig's, each pool's earliest) in the cluster's status. */
export function earliestLeafExpiry(cluster: Cluster): string | undefined {
  return (cluster.status?.certificates ?? [])
    .filter((c) => c.name === 'admin' || c.name.startsWith('pool/'))
    .map((c) => c.notAfter)
    .sort()[0];
}

/** `<cluster>-renew-<yyyymmdd>`: one name per day an earliest certificate ends. */
export function renewalName(cluster: string, notAfter: string): string {
  const day = notAfter.slice(0, 10).replace(/-/g, '');
  return `${cluster.slice(0, 63 - day.length - 7)}-renew-${day}`;
}

/** When the cluster's certificates are due for renewal (ms), or undefined when it shows none. */
export function renewalDueAt(cluster: Cluster): number | undefined {
  const earliest = earliestLeafExpiry(cluster);
  if (!earliest) return undefined;
  return Date.parse(earliest) - (cluster.spec.certificateRenewalDays ?? DEFAULT_RENEWAL_DAYS) * DAY_MS;
}

export class CertificateRenewal implements Reconciler {
  private readonly clusters;
  private readonly ops;

  constructor(
    store: Store,
    private readonly now: () => number = Date.now,
  ) {
    this.clusters = typed(store, 'Cluster');
    this.ops = typed(store, 'Operation');
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const cluster = await this.clusters.get(key.project, key.name);
    if (!cluster || cluster.metadata.deletionTimestamp || cluster.status?.phase !== 'Ready') return;
    const due = renewalDueAt(cluster);
    if (due === undefined) return;
    const nowMs = this.now();
    if (nowMs < due) return { requeueAfterMs: Math.min(MAX_LOOK_MS, due - nowMs + 1000) };
    const name = renewalName(key.name, earliestLeafExpiry(cluster)!);
    const ops = (await this.ops.list({ project: key.project, labelSelector: `${LABEL_CLUSTER}=${key.name}` })).filter((o) => o.spec.cluster === key.name);
    if (ops.some((o) => o.metadata.name === name)) return { requeueAfterMs: MAX_LOOK_MS };
    const holder = holderOf(ops, key.name);
    if (holder) return { requeueAfterMs: 60_000 };
    ctx.log.info({ operation: name, earliest: earliestLeafExpiry(cluster) }, 'certificates near their end: starting a rotation');
    try {
      await this.ops.create({
        apiVersion: API_VERSION,
        kind: 'Operation',
        metadata: { name, project: key.project, labels: { [LABEL_CLUSTER]: key.name, [LABEL_OPERATION_TYPE]: 'RotateCertificates' } },
        spec: { cluster: key.name, type: 'RotateCertificates' },
        status: { phase: 'Pending', requestedBy: SYSTEM_CERTIFICATE_RENEWAL },
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    return { requeueAfterMs: MAX_LOOK_MS };
  }
}
