// What the Kubernetes-backed store needs in the management cluster before it can serve: its CRDs
// (applied when missing or outdated, if Marina may; otherwise a message says how to install them),
// its namespace, and a check that every replica encrypts with the same key.
import { createHmac } from 'node:crypto';
import { isAlreadyExists, isForbidden, isNotFound, Resources, type KubeClient, type KubeObject } from '../../kube/client.js';
import { allCrds, SCHEMA_HASH_ANNOTATION, type CustomResourceDefinition } from './crd.js';

const FIELD_MANAGER = 'marina';

interface CrdState extends KubeObject {
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

/**
 * Applies every CRD whose schema hash differs from the generated one (server-side apply), then waits
 * until each is Established. With `install: false`, or without the permission, an outdated or
 * missing CRD is an error naming the command that installs them.
 */
export async function ensureCrds(client: KubeClient, opts: { install: boolean; timeoutMs?: number }): Promise<void> {
  const wanted = allCrds();
  const stale: CustomResourceDefinition[] = [];
  for (const crd of wanted) {
    let current: CrdState | undefined;
    try {
      current = await client.get<CrdState>(Resources.customResourceDefinitions, crd.metadata.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (current?.metadata?.annotations?.[SCHEMA_HASH_ANNOTATION] !== crd.metadata.annotations?.[SCHEMA_HASH_ANNOTATION]) stale.push(crd);
  }
  if (stale.length > 0) {
    const names = stale.map((c) => c.metadata.name).join(', ');
    const how = 'install them with `marina crds | kubectl apply --server-side -f -` (or the Helm chart)';
    if (!opts.install) throw new Error(`CustomResourceDefinitions missing or outdated: ${names}; ${how}`);
    for (const crd of stale) {
      try {
        await client.apply(Resources.customResourceDefinitions, crd, { fieldManager: FIELD_MANAGER, force: true });
      } catch (err) {
        if (isForbidden(err)) throw new Error(`CustomResourceDefinitions missing or outdated (${names}) and Marina may not install them; ${how}`);
        throw err;
      }
    }
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (const crd of wanted) {
    for (;;) {
      const cur = await client.get<CrdState>(Resources.customResourceDefinitions, crd.metadata.name);
      const established = cur.status?.conditions?.find((c) => c.type === 'Established');
      if (established?.status === 'True') break;
      if (Date.now() > deadline) throw new Error(`CustomResourceDefinition ${crd.metadata.name} not Established: ${established?.message ?? 'no condition yet'}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const KEY_CHECK_CONFIGMAP = 'marina-store';
const KEY_CHECK_FIELD = 'encryptionKeyCheck';

/** A value that tells keys apart without revealing them. */
export function keyCheck(key: Buffer): string {
  return createHmac('sha256', key).update('marina store encryption key check').digest('hex').slice(0, 32);
}

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/**
 * Makes sure the namespace exists (creating it when Marina may) and that the encryption key is the
 * one the store was first opened with: replicas with different keys would write Secrets the others
 * cannot read.
 */
export async function ensureNamespaceAndKey(client: KubeClient, namespace: string, key: Buffer): Promise<void> {
  const check = keyCheck(key);
  const cm: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: KEY_CHECK_CONFIGMAP, namespace, labels: { 'app.kubernetes.io/part-of': 'marina' } },
    data: { [KEY_CHECK_FIELD]: check },
  };
  for (let attempt = 0; ; attempt++) {
    try {
      await client.create(Resources.configMaps, cm);
      return;
    } catch (err) {
      if (isAlreadyExists(err)) break;
      // The namespace itself is missing: create it once, then try again.
      if (isNotFound(err) && attempt === 0) {
        try {
          await client.create(Resources.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
        } catch (nsErr) {
          if (isAlreadyExists(nsErr)) continue;
          if (isForbidden(nsErr)) throw new Error(`namespace ${namespace} does not exist and Marina may not create it`);
          throw nsErr;
        }
        continue;
      }
      throw err;
    }
  }
  const existing = await client.get<ConfigMap>(Resources.configMaps, KEY_CHECK_CONFIGMAP, { namespace });
  const stored = existing.data?.[KEY_CHECK_FIELD];
  if (stored !== check) {
    throw new Error(
      `the encryption key differs from the one this store was created with (ConfigMap ${namespace}/${KEY_CHECK_CONFIGMAP}); ` +
        'every replica needs the same key (MARINA_ENCRYPTION_KEY or <data-dir>/encryption.key)',
    );
  }
}
