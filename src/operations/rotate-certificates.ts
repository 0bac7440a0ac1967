// The RotateCertificates operation: every serving and client certificate of a cluster re-issued,
// rolled out one machine at a time; with `ca: true` the certificate authorities replaced too, in
// two phases.
//
// Certificates are part of what a machine is made of (its template carries the cluster's
// certificate generation, src/bootstrap/clusterPki.ts), so a rotation is a roll: each new machine
// starts with fresh certificates, surge first, the old one drained and removed — the same
// machinery as an upgrade, with the same health gate and PodDisruptionBudget handling. We chose
// rolling machines over restarting components in place because it keeps the API serving:
// a new apiserver is up and healthy before the old one leaves the endpoint (in place, every
// apiserver would restart under its clients), a new etcd member is a promoted voter before the old
// one leaves (in place, a member restarts and the apiservers using it see errors), and a machine
// that fails to come up with its new certificates never takes a working one down.
//
//   preflight          touches nothing: etcd healthy, every pool Ready; no pool of servers users
//                      joined (nothing is re-certified in place; the message says so).
//   reissue            (disruptive) a new certificate generation — with ca: phase 1 of the CA
//                      rotation: new CAs sign, every trust bundle holds old + new, and each new CA
//                      is cross-signed by the old one so nothing that still trusts only the old
//                      CA is cut off. The admin kubeconfig is re-issued (with the bundle).
//   etcd, controlPlanes, workers
//                      the pools roll onto it in upgrade order.
//   dropOldCAs         (ca only) phase 2: trust in the old CAs ends; a kubeconfig downloaded
//                      before the rotation stops working from here on.
//   finalEtcd, finalControlPlanes, finalWorkers
//                      (ca only) the pools roll onto the bundles without the old CAs.
//   summary            the new expiries.
import { getCondition } from '../api/conditions.js';
import type { Machine } from '../api/kinds.js';
import { isDeleting } from '../api/meta.js';
import { ANNOTATION_CERTIFICATES_GENERATION, ClusterCondition, adminKubeconfigSecretName, pkiSecretName } from '../api/wellknown.js';
import { beginCaRotation, finishCaRotation, pkiToSecretData, withGeneration, type ClusterPki } from '../bootstrap/clusterPki.js';
import { clusterMachines, typed } from '../store/typed.js';
import { done, fail, skip, wait, type OperationDefinition, type StepScope } from './framework.js';
import { clusterServes, resumeRollouts, rollStep, stopRollouts } from './rolling.js';

const isCa = (sc: Pick<StepScope, 'op'>) => sc.op.spec.rotateCertificates?.ca === true;
/** The generation each phase sets: the operation's name (a CA rotation: `.1`, then `.2`). */
const generationOf = (sc: Pick<StepScope, 'op'>, phase: 1 | 2) => (isCa(sc) ? `${sc.op.metadata.name}.${phase}` : sc.op.metadata.name);

export const OLD_KUBECONFIG_NOTE =
  'kubeconfigs downloaded before this rotation keep working until phase 2 (dropOldCAs) starts; download the kubeconfig again now (marina cluster kubeconfig)';

/**
 * Why a rotation refuses clusters with imported servers. A CA rotation would need each server to
 * trust the new CAs in place (its kubelet's CA file, kube-proxy's kubeconfig), which Marina does
 * not do yet; a leaf rotation could skip their kubelets (they renew their own certificates through
 * certificate requests) but not the kube-proxy certificate Marina issued them.
 */
const IMPORTED_REFUSAL =
  'certificate rotation of clusters with imported servers is not offered yet: Marina cannot re-issue their kube-proxy certificate or, for a CA rotation, make them trust new CAs in place, and it never replaces a user\'s server; remove the imported servers first, or rotate later';

async function preflight(sc: StepScope) {
  const serving = await clusterServes(sc, IMPORTED_REFUSAL);
  if (serving) return fail(serving);
  const pki = await sc.deps.secrets.pki(sc.cluster);
  if (!pki) return fail('the cluster has no PKI');
  const resuming = pki.rotation ? ` (a CA rotation is in phase 1 since generation ${pki.generation ?? '?'}: ${isCa(sc) ? 'it is continued' : 'its new CAs issue the new certificates'})` : '';
  return done(`etcd healthy, every pool Ready${resuming}`);
}

/** Writes the cluster's PKI Secret (the Cluster controller passes the generation on to the pools). */
async function writePki(sc: StepScope, pki: ClusterPki): Promise<void> {
  const secrets = typed(sc.deps.store, 'Secret');
  const secret = await secrets.get(sc.op.metadata.project ?? '', pkiSecretName(sc.cluster.metadata.name));
  if (!secret) throw new Error('the PKI Secret is gone');
  await secrets.update({ ...secret, spec: { ...secret.spec, data: pkiToSecretData(pki) } });
}

async function reissue(sc: StepScope) {
  await resumeRollouts(sc);
  const pki = await sc.deps.secrets.pki(sc.cluster);
  if (!pki) return fail('the cluster has no PKI');
  const generation = generationOf(sc, 1);
  // Written once: a re-run after a crash finds its own generation in place.
  if (pki.generation !== generation) {
    if (isCa(sc) && !pki.rotation) await writePki(sc, await beginCaRotation(pki, generation, { clusterName: sc.cluster.metadata.name }));
    else await writePki(sc, withGeneration(pki, generation));
  }
  sc.record.generation = generation;
  if (!isCa(sc)) return done(`certificate generation ${generation}: every machine gets new certificates from the existing CAs`);
  sc.result('note', OLD_KUBECONFIG_NOTE);
  return done(`phase 1: new CAs sign, every component trusts the old and the new ones (generation ${generation})`);
}

const wantsGeneration = (phase: 1 | 2) => (sc: StepScope, pool: { spec: { certificates?: string } }) =>
  pool.spec.certificates === generationOf(sc, phase) ? undefined : 'waits for the earlier pools';

async function dropOldCAs(sc: StepScope) {
  if (!isCa(sc)) return skip('leaf certificates only: the CAs stay');
  const pki = await sc.deps.secrets.pki(sc.cluster);
  if (!pki) return fail('the cluster has no PKI');
  const generation = generationOf(sc, 2);
  if (pki.generation !== generation) await writePki(sc, finishCaRotation(pki, generation));
  return done(`phase 2: trust in the old CAs ends (generation ${generation}); kubeconfigs from before the rotation no longer work`);
}

/** A phase-2 roll: only in a CA rotation. */
function finalRoll(name: string, step: 0 | 1 | 2) {
  const roll = rollStep(name, step, wantsGeneration(2));
  return { ...roll, run: (sc: StepScope) => (isCa(sc) ? roll.run(sc) : Promise.resolve(skip('leaf certificates only: one roll is enough'))) };
}

/** The leaf certificates' entries of Cluster.status.certificates: the admin kubeconfig's and each pool's earliest. */
function leafExpiries(certs: readonly { name: string; notAfter: string }[] | undefined): { name: string; notAfter: string }[] {
  return (certs ?? []).filter((x) => x.name === 'admin' || x.name.startsWith('pool/'));
}

/**
 * What the cluster has not yet recorded of the rotation: the admin kubeconfig and each pool whose
 * entry in status.certificates is not the one its machines, all on the final generation, report.
 * Compared by generation and by what the machines report — not by "notAfter moved": X.509 times
 * have one-second precision, so a rotation in the second its certificates were first issued
 * re-issues them with the same notAfter.
 */
async function unrecorded(sc: StepScope, generation: string, leaves: { name: string; notAfter: string }[]): Promise<string[]> {
  const project = sc.op.metadata.project ?? '';
  const admin = await typed(sc.deps.store, 'Secret').get(project, adminKubeconfigSecretName(sc.cluster.metadata.name));
  const missing = admin?.metadata.annotations?.[ANNOTATION_CERTIFICATES_GENERATION] === generation ? [] : ['admin'];
  const machines = (await clusterMachines(sc.deps.store, project, sc.cluster.metadata.name)).filter((m) => !isDeleting(m));
  const pools = new Map<string, string | undefined>();
  for (const m of machines) {
    const key = `pool/${m.spec.pool}`;
    const at = m.spec.certificates === generation ? m.status?.certificatesNotAfter : undefined;
    const earliest = pools.has(key) ? pools.get(key) : at;
    pools.set(key, at === undefined || earliest === undefined ? undefined : at < earliest ? at : earliest);
  }
  for (const [name, at] of pools) if (at === undefined || leaves.find((x) => x.name === name)?.notAfter !== at) missing.push(name);
  return missing.sort();
}

async function summary(sc: StepScope) {
  const c = await typed(sc.deps.store, 'Cluster').get(sc.op.metadata.project ?? '', sc.cluster.metadata.name);
  const leaves = leafExpiries(c?.status?.certificates);
  // The Cluster controller records the new expiries once it looked at the rolled machines.
  const stale = await unrecorded(sc, generationOf(sc, isCa(sc) ? 2 : 1), leaves);
  if (stale.length > 0 || getCondition(c?.status?.conditions, ClusterCondition.Ready)?.status !== 'True') {
    return wait(`waiting for the cluster to record the new certificates${stale.length > 0 ? ` (${stale.join(', ')})` : ''}`);
  }
  sc.result('earliestLeafNotAfter', leaves.map((x) => x.notAfter).sort()[0] ?? '');
  return done(`every certificate re-issued${isCa(sc) ? ' from the new CAs; the old CAs are no longer trusted' : ''}; ${leaves.map((x) => `${x.name} until ${x.notAfter}`).join(', ')}`);
}

export const rotateCertificatesOperation: OperationDefinition = {
  type: 'RotateCertificates',
  steps: [
    { name: 'preflight', run: preflight },
    { name: 'reissue', disruptive: true, run: reissue },
    rollStep('etcd', 0, wantsGeneration(1)),
    rollStep('controlPlanes', 1, wantsGeneration(1)),
    rollStep('workers', 2, wantsGeneration(1)),
    { name: 'dropOldCAs', run: dropOldCAs },
    finalRoll('finalEtcd', 0),
    finalRoll('finalControlPlanes', 1),
    finalRoll('finalWorkers', 2),
    { name: 'summary', run: summary },
  ],
  async cleanup(sc) {
    const changed = (sc.op.status?.steps ?? []).find((s) => s.name === 'reissue')?.state !== 'Pending';
    if (!changed) return 'the certificates were not touched';
    return stopRollouts(sc, (m: Machine) => `certificates ${m.spec.certificates ?? 'of the cluster\'s creation'}`);
  },
};
