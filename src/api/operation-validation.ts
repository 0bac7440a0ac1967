// Semantic checks of Operations, Snapshots and BackupTargets that their schemas cannot express.
import type { FieldCause } from './errors.js';
import type { Resource } from './meta.js';
import type { ValidationContext } from './registry.js';
import type { BackupTargetSpec, OperationSpec, OperationType } from './operations.js';
import { jsonEqual } from './json.js';

/** The spec field that holds each type's parameters (undefined: the type takes none). */
export const PARAMETERS_FIELD: Readonly<Record<OperationType, keyof OperationSpec | undefined>> = {
  Snapshot: 'snapshot',
  Restore: 'restore',
  ReplaceMachine: 'replaceMachine',
  Upgrade: 'upgrade',
  RotateCertificates: 'rotateCertificates',
};

export function validateOperation(obj: Resource, old: Resource | undefined, ctx: ValidationContext): FieldCause[] {
  const spec = obj.spec as OperationSpec;
  const causes: FieldCause[] = [];
  const own = PARAMETERS_FIELD[spec.type];
  for (const field of Object.values(PARAMETERS_FIELD)) {
    if (field && field !== own && spec[field] !== undefined) causes.push({ field: `spec.${field}`, message: `parameters of another type; spec.type is ${spec.type}` });
  }
  if (spec.type === 'Restore' && !spec.restore) causes.push({ field: 'spec.restore.snapshot', message: 'a Restore names the snapshot to restore from' });
  if (spec.type === 'ReplaceMachine' && !spec.replaceMachine) causes.push({ field: 'spec.replaceMachine.machine', message: 'a ReplaceMachine names the machine to replace' });
  if (spec.type === 'Upgrade') {
    if (!spec.upgrade) causes.push({ field: 'spec.upgrade.version', message: 'an Upgrade names the Kubernetes version to upgrade to' });
    else if (!old && !ctx.kubernetesVersions.includes(spec.upgrade.version)) {
      causes.push({ field: 'spec.upgrade.version', message: `unsupported version ${spec.upgrade.version}; supported: ${ctx.kubernetesVersions.join(', ')}` });
    }
  }
  // An operation is a record of what was asked: it is never changed, only cancelled.
  if (old && !jsonEqual(old.spec, obj.spec)) causes.push({ field: 'spec', message: 'is immutable: create a new Operation instead' });
  return causes;
}

export function validateSnapshot(obj: Resource, old: Resource | undefined): FieldCause[] {
  if (old && !jsonEqual(old.spec, obj.spec)) return [{ field: 'spec', message: 'is immutable' }];
  return [];
}

export function validateBackupTarget(obj: Resource): FieldCause[] {
  const spec = obj.spec as BackupTargetSpec;
  if (spec.type === 's3') {
    if (!spec.s3) return [{ field: 'spec.s3', message: 'an s3 target needs endpoint, bucket and credentialsSecret' }];
    if (!/^https?:\/\/[^/\s]+/.test(spec.s3.endpoint)) return [{ field: 'spec.s3.endpoint', message: `must be an http:// or https:// URL, got ${JSON.stringify(spec.s3.endpoint)}` }];
  } else if (spec.s3) {
    return [{ field: 'spec.s3', message: 'only for type s3' }];
  }
  return [];
}
