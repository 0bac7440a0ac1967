// Node admission: how a real kubelet (a pool with runtime containerd, every imported server) gets
// into its cluster, and nothing else does. Kubernetes' kubelet TLS bootstrap, with Marina as the
// approver:
//
//   cluster (the Cluster controller's nodeBootstrap phase, for clusters with real kubelets)
//     - ClusterRoleBinding marina:kubelet-bootstrap: group system:bootstrappers may create CSRs
//       (ClusterRole system:node-bootstrapper). Nothing grants the nodeclient permissions that
//       kube-controller-manager's automatic approval looks for: Marina decides every request.
//     - Endpoints default/kubernetes → where the real nodes reach the API (the providers say where:
//       a node network's gateway, Marina's public address). The apiservers listen on loopback, so
//       their own endpoint reconciler is off; without this, pods could not reach the API.
//       kube-controller-manager mirrors it into an EndpointSlice.
//   machine (the Machine controller's admitNode phase, finalize revokeBootstrapToken)
//     - while its Node is not registered: kube-system/bootstrap-token-<id>, the machine's token
//       (src/bootstrap/bootstrap-token.ts), valid for an hour and renewed while needed; deleted
//       once the Node exists (the kubelet then renews its certificate as itself) or the machine goes.
//     - its kubelet's pending CSRs, judged by ./kubelet-csr.ts, approved or denied with the reason;
//       the cluster's signer (kube-controller-manager, cluster CA) issues the approved ones.
//     - admitted (NodeAdmitted=True) once the Node is registered and the apiserver reaches its
//       kubelet and verifies the serving certificate (the node proxy's /healthz): from then on
//       `kubectl logs` and `exec` work, which is why the machine counts as Running only then.
import type { ConditionInput } from '../api/conditions.js';
import type { Cluster, Machine } from '../api/kinds.js';
import { usesRealKubelet } from '../api/machines.js';
import { ClusterCondition, KUBELET_BOOTSTRAP_BINDING, LABEL_MANAGED_BY, MachineCondition, MANAGED_BY_MARINA } from '../api/wellknown.js';
import {
  BOOTSTRAP_TOKEN_NAMESPACE,
  bootstrapTokenExpiry,
  bootstrapTokenFor,
  bootstrapTokenSecret,
  bootstrapTokenSecretName,
} from '../bootstrap/bootstrap-token.js';
import type { ObjectApi, ObjectRef } from '../clusteraccess/access.js';
import type { ClusterRoleBinding, Endpoints, Secret } from '../kube/objects.js';
import { createsMachines, type ClusterRef } from '../providers/contract.js';
import type { Scope } from '../runtime/phases.js';
import { errorMessage, providerName, type Shared } from './common.js';
import { isPending, judgeCsr, requestedNode } from './kubelet-csr.js';

/** A bootstrap token Secret lives this long; renewed while the machine has not joined. */
const BOOTSTRAP_TOKEN_TTL_MS = 60 * 60 * 1000;
const MANAGED = { [LABEL_MANAGED_BY]: MANAGED_BY_MARINA };
/** Server-side apply's field manager of what node admission writes. */
const FIELD_MANAGER = 'marina';

/** Whether a cluster has pools whose machines run real kubelets. */
export function hasRealKubelets(cluster: Cluster): boolean {
  return cluster.spec.nodePools.some((p) => usesRealKubelet({ spec: { runtime: p.runtime, provider: p.provider ?? providerName(cluster) } }));
}

const KUBERNETES_ENDPOINTS: ObjectRef = { apiVersion: 'v1', kind: 'Endpoints', namespace: 'default', name: 'kubernetes' };
const tokenSecretRef = (id: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Secret', namespace: BOOTSTRAP_TOKEN_NAMESPACE, name: bootstrapTokenSecretName(id) });

const BOOTSTRAP_BINDING: ClusterRoleBinding = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name: KUBELET_BOOTSTRAP_BINDING, labels: MANAGED },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-bootstrapper' },
  subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:bootstrappers' }],
};

// ---------------------------------------------------------------------------------------------
// cluster

/** The cluster's side (see the top of this file), as the NodeBootstrapReady condition. */
export async function ensureNodeBootstrap(s: Shared, sc: Scope<Cluster>): Promise<ConditionInput> {
  const type = ClusterCondition.NodeBootstrapReady;
  try {
    const objects = await s.connections.objects(sc.obj);
    if (!objects) return { type, status: 'False', reason: 'NoKubeconfig', message: 'no admin kubeconfig yet' };
    await objects.apply(BOOTSTRAP_BINDING, FIELD_MANAGER, { signal: sc.signal });
    const target = await nodeAPIEndpoint(s, sc.obj);
    if (!target) return { type, status: 'False', reason: 'NoNodeAPIEndpoint', message: 'no provider of the pools says yet where their nodes reach the API' };
    await ensureKubernetesEndpoints(objects, target, sc);
    return { type, status: 'True', reason: 'Ready', message: `bootstrap tokens may request kubelet certificates; the kubernetes Service points at ${target}` };
  } catch (err) {
    sc.signal.throwIfAborted();
    return { type, status: 'False', reason: 'APIUnreachable', message: errorMessage(err) };
  }
}

/**
 * Where the cluster's real nodes reach the API, from its pools' providers. A provider of servers
 * elsewhere (one that creates no machines: imported servers) wins: those servers reach only its
 * public address, and this host's own nodes reach that too, not the other way round.
 */
async function nodeAPIEndpoint(s: Shared, cluster: Cluster): Promise<string | undefined> {
  const ref: ClusterRef = { project: cluster.metadata.project ?? '', name: cluster.metadata.name, uid: cluster.metadata.uid ?? '' };
  const names = new Set(cluster.spec.nodePools.map((p) => p.provider ?? providerName(cluster)));
  const providers = [...names].flatMap((n) => {
    try {
      return [s.providers.get(n)];
    } catch {
      return []; // a provider this server does not run: its machines fail on their own
    }
  });
  providers.sort((a, b) => Number(createsMachines(a)) - Number(createsMachines(b)));
  for (const p of providers) {
    const target = await p.nodeAPIEndpoint?.(ref);
    if (target) return target;
  }
  return undefined;
}

/** Endpoints default/kubernetes → `target` (ip:port), written only when it says something else. */
async function ensureKubernetesEndpoints(objects: ObjectApi, target: string, sc: Scope<Cluster>): Promise<void> {
  const i = target.lastIndexOf(':');
  const subsets = [{ addresses: [{ ip: target.slice(0, i) }], ports: [{ name: 'https', port: Number(target.slice(i + 1)), protocol: 'TCP' }] }];
  const current = (await objects.get(KUBERNETES_ENDPOINTS, { signal: sc.signal })) as Endpoints | undefined;
  if (current && JSON.stringify(current.subsets ?? []) === JSON.stringify(subsets)) return;
  const endpoints: Endpoints = { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'kubernetes', namespace: 'default', labels: MANAGED }, subsets };
  await objects.apply(endpoints, FIELD_MANAGER, { signal: sc.signal });
  sc.log.info({ endpoint: target }, 'the kubernetes Service points where the nodes reach the API');
}

// ---------------------------------------------------------------------------------------------
// machine

/**
 * The machine's side while it runs (see the top of this file), as the NodeAdmitted condition.
 * `address`: the node address its serving certificate may name; `settled`: that address is final
 * (the machine ran), so a serving certificate for another one is denied rather than waited for.
 */
export async function admitNode(s: Shared, sc: Scope<Machine>, cluster: Cluster, node: { address?: string; settled: boolean }): Promise<ConditionInput> {
  const type = MachineCondition.NodeAdmitted;
  const machine = sc.obj;
  const name = machine.metadata.name;
  try {
    const [kube, objects, pki] = await Promise.all([s.connections.kube(cluster), s.connections.objects(cluster), s.secrets.pki(cluster)]);
    if (!kube || !objects || !pki) return { type, status: 'False', reason: 'WaitingForAPI', message: 'the cluster has no admin kubeconfig or PKI yet' };
    const token = bootstrapTokenFor(pki.ca.keyPem, machine.metadata.uid ?? '');
    const registered = (await kube.getNode(name, { signal: sc.signal })) !== undefined;
    if (registered) await objects.delete(tokenSecretRef(token.id), { signal: sc.signal });
    else await ensureBootstrapToken(objects, token, name, sc);

    const decided: string[] = [];
    for (const csr of await kube.listCertificateSigningRequests({ signal: sc.signal })) {
      if (!isPending(csr) || requestedNode(csr) !== name) continue;
      const verdict = judgeCsr(csr, { name, tokenId: token.id, address: node.address, settled: node.settled });
      if (verdict.action === 'ignore') continue;
      const condition =
        verdict.action === 'approve'
          ? ({ type: 'Approved', reason: 'MarinaApproved', message: verdict.message } as const)
          : ({ type: 'Denied', reason: verdict.reason, message: verdict.message } as const);
      await kube.decideCertificateSigningRequest(csr, condition, { signal: sc.signal });
      sc.log.info({ csr: csr.metadata.name, signer: csr.spec.signerName, decision: condition.type, message: condition.message }, 'kubelet certificate request decided');
      decided.push(`${condition.type === 'Approved' ? 'approved' : 'denied'} ${csr.metadata.name}: ${condition.message}`);
    }
    const what = decided.length > 0 ? `; ${decided.join('; ')}` : '';
    if (!registered) return { type, status: 'False', reason: 'WaitingForKubelet', message: `bootstrap token ${token.id} is valid; waiting for the kubelet to register${what}`.slice(0, 32768) };
    const kubelet = await kube.kubeletHealthz(name, { signal: sc.signal });
    return kubelet.ok
      ? { type, status: 'True', reason: 'Admitted', message: `Node ${name} registered; the apiserver reaches its kubelet and verifies its serving certificate${what}`.slice(0, 32768) }
      : { type, status: 'False', reason: 'WaitingForServingCertificate', message: `Node ${name} registered; the apiserver cannot verify its kubelet yet: ${kubelet.message}${what}`.slice(0, 32768) };
  } catch (err) {
    sc.signal.throwIfAborted();
    return { type, status: 'False', reason: 'APIUnreachable', message: errorMessage(err) };
  }
}

/** The token's Secret, renewed ahead of its expiry: a kubelet that starts bootstrapping must find it valid. */
async function ensureBootstrapToken(objects: ObjectApi, token: ReturnType<typeof bootstrapTokenFor>, machine: string, sc: Scope<Machine>): Promise<void> {
  const existing = (await objects.get(tokenSecretRef(token.id), { signal: sc.signal })) as Secret | undefined;
  if (existing && bootstrapTokenExpiry(existing) - Date.now() > BOOTSTRAP_TOKEN_TTL_MS / 4) return;
  await objects.apply(bootstrapTokenSecret(token, { expiration: new Date(Date.now() + BOOTSTRAP_TOKEN_TTL_MS), machine }), FIELD_MANAGER, { signal: sc.signal });
  sc.log.info({ secret: bootstrapTokenSecretName(token.id), renewed: existing !== undefined }, 'bootstrap token valid for an hour');
}

/**
 * A removed machine's token stops working at once. Best effort: a cluster whose API does not
 * answer lets it expire on its own (within the hour; kube-controller-manager's tokencleaner
 * deletes expired tokens).
 */
export async function revokeBootstrapToken(s: Shared, sc: Scope<Machine>, cluster: Cluster): Promise<void> {
  try {
    const [objects, pki] = await Promise.all([s.connections.objects(cluster), s.secrets.pki(cluster)]);
    if (!objects || !pki) return;
    const token = bootstrapTokenFor(pki.ca.keyPem, sc.obj.metadata.uid ?? '');
    await objects.delete(tokenSecretRef(token.id), { signal: sc.signal });
  } catch (err) {
    sc.signal.throwIfAborted();
    sc.log.warn({ err: errorMessage(err) }, 'cannot delete the bootstrap token; it expires within the hour');
  }
}
