// What Marina hands a joining server to run: for a node, kubelet and kube-proxy of the cluster's
// version, containerd (with ctr and its runc shim), runc, the CNI plugins and the locally built
// images; for a machine's services (etcd, kube-apiserver, ... on a VM a provider booted), their
// binaries of the Kubernetes toolchain — all from Marina's own toolchain cache. Each comes with its SHA-256 and size; the agent checks both
// before it uses a file.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { NodeArtifacts } from '../agent/node-runtime/config.js';
import type { MachineBootstrap } from '../providers/contract.js';

/** What of a bootstrap needs files: a real node, and the binaries of its services. */
export type ArtifactNeeds = Pick<MachineBootstrap, 'kubernetesVersion' | 'services' | 'node'>;
type ArtifactFile = { path: string; kind: ArtifactKind; ref?: string; sandbox?: boolean };

export type ArtifactKind = 'binary' | 'cni' | 'image';

export interface Artifact {
  /** kubelet, kube-proxy, containerd, ctr, containerd-shim-runc-v2, runc, cni-<plugin>, image-<name>. */
  name: string;
  kind: ArtifactKind;
  sha256: string;
  size: number;
  /** Images: the reference it is imported under; the pause image is the sandbox image. */
  ref?: string;
  sandbox?: boolean;
}

const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];

/** The SHA-256 (hex) of a file's content. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export class ArtifactCatalog {
  /** path → digest, keyed by size and mtime so a rebuilt binary is hashed again. */
  private readonly digests = new Map<string, { key: string; sha256: Promise<string> }>();

  constructor(
    private readonly resolve: (version: string) => NodeArtifacts,
    /** The toolchain's binaries by name (etcd, kube-apiserver, ...) for a version; services need them. */
    private readonly toolchain: (version: string) => Record<string, string> = () => ({}),
  ) {}

  /** name → file path of what the bootstrap runs (throws when the toolchain lacks it). */
  files(b: ArtifactNeeds): Map<string, ArtifactFile> {
    const out = b.node ? this.nodeFiles(b.kubernetesVersion) : new Map<string, ArtifactFile>();
    if (b.services.length > 0) {
      const binaries = this.toolchain(b.kubernetesVersion);
      for (const s of b.services) {
        const path = binaries[s.binary];
        if (!path) throw new Error(`service ${s.name} needs binary ${s.binary}, not in the ${b.kubernetesVersion} toolchain`);
        out.set(s.binary, { path, kind: 'binary' });
      }
    }
    return out;
  }

  private nodeFiles(version: string): Map<string, ArtifactFile> {
    const a = this.resolve(version);
    const out = new Map<string, ArtifactFile>();
    out.set('kubelet', { path: a.binaries.kubelet, kind: 'binary' });
    if (a.binaries.kubeProxy) out.set('kube-proxy', { path: a.binaries.kubeProxy, kind: 'binary' });
    out.set('containerd', { path: a.binaries.containerd, kind: 'binary' });
    out.set('ctr', { path: a.binaries.ctr, kind: 'binary' });
    out.set('containerd-shim-runc-v2', { path: join(dirname(a.binaries.containerd), 'containerd-shim-runc-v2'), kind: 'binary' });
    out.set('runc', { path: a.binaries.runc, kind: 'binary' });
    for (const p of CNI_PLUGINS) out.set(`cni-${p}`, { path: join(a.binaries.cniBinDir, p), kind: 'cni' });
    for (const img of a.images) {
      const name = img.ref.slice(img.ref.lastIndexOf('/') + 1).split(':')[0]!;
      out.set(`image-${name}`, { path: img.archive, kind: 'image', ref: img.ref, ...(img.ref === a.sandboxImage ? { sandbox: true } : {}) });
    }
    return out;
  }

  async manifest(b: ArtifactNeeds): Promise<Artifact[]> {
    const out: Artifact[] = [];
    for (const [name, f] of this.files(b)) {
      if (!existsSync(f.path)) throw new Error(`artifact ${name} is missing at ${f.path}`);
      const st = statSync(f.path);
      const key = `${st.size}:${st.mtimeMs}`;
      let d = this.digests.get(f.path);
      if (!d || d.key !== key) {
        d = { key, sha256: sha256File(f.path) };
        this.digests.set(f.path, d);
      }
      out.push({ name, kind: f.kind, sha256: await d.sha256, size: st.size, ...(f.ref ? { ref: f.ref } : {}), ...(f.sandbox ? { sandbox: true } : {}) });
    }
    return out;
  }
}
