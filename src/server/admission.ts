// Admission of new objects that the server completes itself, after the schema and semantic checks
// and before the store: an Operation gets its requester from the authenticated caller (whatever
// the body said), its checkpoint from the cluster's and project's policy, and is refused with 409
// while another disruptive operation holds its cluster. The Operation controller checks the
// cluster again when it starts the operation, because two creates can race past this check.
import { needsApproval } from '../api/backup-policy.js';
import { ApiError } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
import type { Operation } from '../api/operations.js';
import { upgradeProblem } from '../api/versions.js';
import { LABEL_CLUSTER, LABEL_OPERATION_TYPE } from '../api/wellknown.js';
import { holderOf, isDisruptive } from '../operations/rules.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import type { Principal } from './authz.js';

/** The object to store for a create by `p`: unchanged for most kinds. */
export async function admitCreate(store: Store, obj: Resource, p: Principal): Promise<Resource> {
  if (obj.kind === 'Operation') return admitOperation(store, obj as Operation, p);
  return obj;
}

async function admitOperation(store: Store, op: Operation, p: Principal): Promise<Operation> {
  const project = op.metadata.project ?? '';
  const cluster = await typed(store, 'Cluster').get(project, op.spec.cluster);
  if (!cluster) throw ApiError.invalidField('spec.cluster', `cluster ${op.spec.cluster} does not exist in project ${project}`);
  if (cluster.metadata.deletionTimestamp) throw ApiError.invalidField('spec.cluster', `cluster ${op.spec.cluster} is being deleted`);
  if (op.spec.type === 'Restore') {
    const name = op.spec.restore!.snapshot;
    const snap = await typed(store, 'Snapshot').get(project, name);
    if (!snap) throw ApiError.invalidField('spec.restore.snapshot', `Snapshot ${name} does not exist in project ${project}`);
  }
  if (op.spec.type === 'ReplaceMachine') {
    const name = op.spec.replaceMachine!.machine;
    const m = await typed(store, 'Machine').get(project, name);
    if (!m || m.spec.cluster !== op.spec.cluster) throw ApiError.invalidField('spec.replaceMachine.machine', `Machine ${name} is not a machine of cluster ${op.spec.cluster}`);
    if (m.metadata.deletionTimestamp) throw ApiError.invalidField('spec.replaceMachine.machine', `Machine ${name} is being deleted already`);
  }
  if (op.spec.type === 'Upgrade') {
    // The skew rules against what the cluster asks for now; the preflight checks the machines too.
    const from = cluster.spec.kubernetesVersion ?? cluster.status?.kubernetesVersion;
    const problem = from ? upgradeProblem([from], op.spec.upgrade!.version) : undefined;
    if (problem) throw ApiError.invalidField('spec.upgrade.version', problem);
  }
  if (isDisruptive(op)) {
    const siblings = await typed(store, 'Operation').list({ project, labelSelector: `${LABEL_CLUSTER}=${op.spec.cluster}` });
    const holder = holderOf(siblings, op.spec.cluster);
    if (holder) {
      throw new ApiError(409, 'Conflict', `cluster ${op.spec.cluster} already runs the disruptive operation ${holder.metadata.name} (${holder.spec.type}, ${holder.status?.phase ?? 'Pending'}); one at a time`, [
        { field: 'spec.cluster', message: `operation ${holder.metadata.name} is running` },
      ]);
    }
  }
  const projectObj = await typed(store, 'Project').get('', project);
  const approvalRequired = needsApproval(op.spec.type, cluster.spec, projectObj?.spec);
  return {
    ...op,
    metadata: { ...op.metadata, labels: { ...op.metadata.labels, [LABEL_CLUSTER]: op.spec.cluster, [LABEL_OPERATION_TYPE]: op.spec.type } },
    status: {
      phase: approvalRequired ? 'AwaitingApproval' : 'Pending',
      requestedBy: p.user,
      approvalRequired,
      ...(approvalRequired ? { message: 'waiting for another operator to approve it' } : {}),
    },
  };
}
