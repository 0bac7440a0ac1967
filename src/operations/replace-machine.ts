// The ReplaceMachine operation: a new machine for an old one, surge first, through the NodePool's
// own surge machinery (the `marina.dev/replaces` annotation, counted on top of the pool's
// replicas, as healing's replacements of stale control planes are):
//
//   request       the old Machine is annotated `marina.dev/replace-requested: <operation>`; its
//                 pool creates the successor (annotated `marina.dev/replaces: <old>`). For etcd,
//                 the successor joins as a learner and is promoted before it counts as Running.
//   waitSuccessor the successor is Running and healthy (its Node Ready).
//   removeOld     (disruptive) the old Machine is deleted: cordoned and drained through the
//                 eviction API within the pool's drain timeout, its etcd member removed while the
//                 others keep quorum, its Node deleted — the Machine controller's finalizer.
//   waitGone      the old Machine is gone; meanwhile the step message carries its drain state,
//                 naming the PodDisruptionBudget blockers.
// A machine of a provider that creates no machines (an imported server) cannot be replaced: the
// request fails before anything changes.
import { getCondition } from '../api/conditions.js';
import type { Machine } from '../api/kinds.js';
import { isMachineReady } from '../api/machines.js';
import { ANNOTATION_REPLACE_REQUESTED, ANNOTATION_REPLACES, MachineCondition } from '../api/wellknown.js';
import { createsMachines } from '../providers/contract.js';
import { clusterMachines, typed } from '../store/typed.js';
import { done, fail, wait, type OperationDefinition, type StepScope } from './framework.js';

const machinesOf = (sc: Pick<StepScope, 'deps'>) => typed(sc.deps.store, 'Machine');

function healthy(m: Machine): boolean {
  return isMachineReady(m) && getCondition(m.status?.conditions, MachineCondition.Healthy)?.status !== 'False';
}

async function request(sc: StepScope) {
  const project = sc.op.metadata.project ?? '';
  const name = sc.op.spec.replaceMachine!.machine;
  const m = await machinesOf(sc).get(project, name);
  if (!m || m.spec.cluster !== sc.cluster.metadata.name) return fail(`Machine ${name} is not a machine of cluster ${sc.cluster.metadata.name}`);
  if (sc.record.uid && sc.record.uid !== m.metadata.uid) return fail(`Machine ${name} was replaced by another object of the same name meanwhile`);
  if (m.metadata.deletionTimestamp) return fail(`Machine ${name} is being deleted already`);
  if (!createsMachines(sc.deps.providers.get(m.spec.provider))) {
    return fail(`Machine ${name} is a server that joined by itself (provider ${m.spec.provider}): Marina cannot create its successor; join another server, then delete this Machine`);
  }
  sc.record.uid = m.metadata.uid;
  sc.record.pool = m.spec.pool;
  if (m.metadata.annotations?.[ANNOTATION_REPLACE_REQUESTED] !== sc.op.metadata.name) {
    await machinesOf(sc).update({ ...m, metadata: { ...m.metadata, annotations: { ...m.metadata.annotations, [ANNOTATION_REPLACE_REQUESTED]: sc.op.metadata.name } } });
  }
  return done(`pool ${m.spec.pool} asked to surge a successor for ${name}`);
}

async function waitSuccessor(sc: StepScope) {
  const project = sc.op.metadata.project ?? '';
  const old = sc.op.spec.replaceMachine!.machine;
  const all = await clusterMachines(sc.deps.store, project, sc.cluster.metadata.name);
  const successor = all.find((m) => m.metadata.annotations?.[ANNOTATION_REPLACES] === old && !m.metadata.deletionTimestamp);
  if (!successor) return wait(`waiting for pool ${String(sc.records.request?.pool)} to create a successor for ${old}`);
  sc.record.successor = successor.metadata.name;
  sc.result('successor', successor.metadata.name);
  if (successor.status?.phase === 'Failed') return fail(`the successor ${successor.metadata.name} failed: ${successor.status.failureReason}: ${successor.status.failureMessage}`);
  if (!healthy(successor)) return wait(`successor ${successor.metadata.name} is ${successor.status?.phase ?? 'Pending'}${successor.status?.nodeReady === false ? ' (Node not Ready)' : ''}`);
  return done(`successor ${successor.metadata.name} is Running and healthy`);
}

async function removeOld(sc: StepScope) {
  const project = sc.op.metadata.project ?? '';
  const old = sc.op.spec.replaceMachine!.machine;
  const m = await machinesOf(sc).get(project, old);
  if (m && m.metadata.uid === sc.records.request?.uid) await machinesOf(sc).deleteIfExists(project, old);
  return done(`${old} is being drained and removed`);
}

async function waitGone(sc: StepScope) {
  const project = sc.op.metadata.project ?? '';
  const old = sc.op.spec.replaceMachine!.machine;
  const m = await machinesOf(sc).get(project, old);
  if (!m || m.metadata.uid !== sc.records.request?.uid) return done(`${old} is gone; ${String(sc.records.waitSuccessor?.successor)} replaced it`);
  const drained = getCondition(m.status?.conditions, MachineCondition.Drained);
  const etcd = getCondition(m.status?.conditions, MachineCondition.EtcdMemberRemoved);
  const parts = [drained ? `drain: ${drained.reason}: ${drained.message ?? ''}` : 'draining', ...(etcd && etcd.status !== 'True' ? [`etcd: ${etcd.reason}: ${etcd.message ?? ''}`] : [])];
  return wait(`${old} is being removed (${parts.join('; ')})`);
}

export const replaceMachineOperation: OperationDefinition = {
  type: 'ReplaceMachine',
  steps: [
    { name: 'request', run: request },
    { name: 'waitSuccessor', run: waitSuccessor },
    { name: 'removeOld', disruptive: true, run: removeOld },
    { name: 'waitGone', run: waitGone },
  ],
  /** Before removeOld: the request is withdrawn and the successor (if any) removed again. */
  async cleanup(sc, why) {
    const project = sc.op.metadata.project ?? '';
    const old = sc.op.spec.replaceMachine!.machine;
    const removing = (sc.op.status?.steps ?? []).find((s) => s.name === 'removeOld')?.state !== 'Pending';
    if (removing) return `${old} was already being removed; its successor ${String(sc.records.waitSuccessor?.successor ?? '')} stays`;
    const machines = machinesOf(sc);
    const m = await machines.get(project, old);
    if (m?.metadata.annotations?.[ANNOTATION_REPLACE_REQUESTED]) {
      const { [ANNOTATION_REPLACE_REQUESTED]: _gone, ...rest } = m.metadata.annotations;
      await machines.update({ ...m, metadata: { ...m.metadata, annotations: rest } });
    }
    const all = await clusterMachines(sc.deps.store, project, sc.cluster.metadata.name);
    const successors = all.filter((x) => x.metadata.annotations?.[ANNOTATION_REPLACES] === old);
    for (const s of successors) await machines.deleteIfExists(project, s.metadata.name);
    return `${why}: ${old} stays${successors.length > 0 ? `; the successor ${successors.map((s) => s.metadata.name).join(', ')} is removed again` : ''}`;
  },
};
