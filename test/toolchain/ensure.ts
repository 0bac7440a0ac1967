// Test fixtures: make sure what a test needs is in the cache by running the project's scripts
// (a cached component answers in about a second; a missing one is built, which takes minutes).
// The scripts' progress goes to the test's stderr.
import { resolveExtraBinary, resolveToolchain, type ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { type LocalImage, type NodeRuntime, resolveHelm, resolveImages, resolveNodeRuntime, resolveS3Server } from '../../src/toolchain/components.js';
import { installToolchain, runToolchainScript } from '../../src/toolchain/install.js';
import type { ExtraBinaryName, ImageName } from '../../src/toolchain/versions.js';

const quiet = { stdio: ['ignore', 'ignore', 'inherit'] as ('ignore' | 'inherit')[] };

/** The Kubernetes toolchain of a version with its extra binaries (etcdutl, kubelet, kube-proxy). */
export async function ensureToolchain(version: string): Promise<ResolvedToolchain & { extra: Record<ExtraBinaryName, string> }> {
  await installToolchain([version], quiet);
  const t = resolveToolchain(version);
  return {
    ...t,
    extra: {
      etcdutl: resolveExtraBinary('etcdutl', version),
      kubelet: resolveExtraBinary('kubelet', version),
      'kube-proxy': resolveExtraBinary('kube-proxy', version),
    },
  };
}

export async function ensureNodeRuntime(): Promise<NodeRuntime> {
  await runToolchainScript('node-runtime.sh', [], quiet);
  return resolveNodeRuntime();
}

export async function ensureImages(): Promise<Record<ImageName, LocalImage>> {
  await runToolchainScript('images.sh', [], quiet);
  return resolveImages();
}

export async function ensureS3Server(): Promise<{ versitygw: string; version: string }> {
  await runToolchainScript('s3.sh', [], quiet);
  return resolveS3Server();
}

export async function ensureHelm(): Promise<{ helm: string; version: string }> {
  await runToolchainScript('helm.sh', [], quiet);
  return resolveHelm();
}
