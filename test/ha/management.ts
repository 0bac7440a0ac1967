// A management control plane for the HA tests: etcd + kube-apiserver from the project's toolchain
// (test/toolchain/controlplane.ts), and Kubernetes-backed stores on it, each in a fresh namespace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../../src/kube/client.js';
import { openKubernetesStore, type KubernetesStore, type KubernetesStoreOptions } from '../../src/store/kubernetes/store.js';
import { findToolchain, type ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { defaultVersion } from '../../src/toolchain/versions.js';
import { startControlPlane, type ControlPlane } from '../toolchain/controlplane.js';

export const TEST_KEY = Buffer.alloc(32, 7);

/** The default toolchain, or why a test must skip. */
export function toolchainOrSkip(): { toolchain: ResolvedToolchain; skip: false } | { toolchain: undefined; skip: string } {
  const found = findToolchain(defaultVersion());
  if (found.ok) return { toolchain: found.toolchain, skip: false };
  return { toolchain: undefined, skip: `toolchain ${defaultVersion()} not installed (missing ${found.missing.join(', ')}); run scripts/toolchain/install.sh` };
}

export interface Management {
  cp: ControlPlane;
  client: KubeClient;
  /** A store in a namespace of its own. */
  openStore(opts?: Partial<KubernetesStoreOptions>): Promise<KubernetesStore>;
  stop(): Promise<void>;
}

let namespaces = 0;

export async function startManagement(toolchain: ResolvedToolchain): Promise<Management> {
  const dir = mkdtempSync(join(tmpdir(), 'marina-mgmt-'));
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ toolchain, dir, components: ['etcd', 'kube-apiserver'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const client = await KubeClient.fromKubeconfigFile(cp.kubeconfig);
  return {
    cp,
    client,
    openStore: (opts = {}) =>
      openKubernetesStore({
        client,
        namespace: `t${process.pid}-${++namespaces}`,
        encryptionKey: TEST_KEY,
        ...opts,
      }),
    async stop() {
      client.close();
      const left = await cp.stop();
      rmSync(dir, { recursive: true, force: true });
      if (left.leftoverPids.length > 0) throw new Error(`control plane processes left: ${left.leftoverPids.join(', ')}`);
    },
  };
}
