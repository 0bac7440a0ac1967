// The provider registry a server runs with. This is the one place that knows concrete providers;
// controllers receive the registry and see only the contract.
import { join } from 'node:path';
import { ApiError } from '../api/errors.js';
import { parseIPv4 } from '../api/cidr.js';
import type { InfrastructureProvider, ProviderRegistry } from '../providers/contract.js';
import { LocalProvider } from '../providers/local/index.js';
import { ImportProvider } from '../providers/import/index.js';
import { DEFAULT_ADDRESS_BASE } from '../providers/local/addresses.js';
import { OpenStackProvider, type CloudDirectory, type MachineJoins } from '../providers/openstack/index.js';
import { SimProvider } from '../providers/sim/index.js';
import type { SimWorld } from '../sim/world.js';
import { resolveExtraBinary, resolveToolchain } from '../toolchain/resolve.js';
import { resolveImages, resolveNodeRuntime } from '../toolchain/components.js';
import type { NodeArtifacts } from '../agent/node-runtime/config.js';

/** What a real node runs for `version`, from the toolchain caches (throws naming the install step). */
export function nodeArtifacts(version: string): NodeArtifacts {
  const runtime = resolveNodeRuntime();
  const images = resolveImages();
  return {
    binaries: {
      kubelet: resolveExtraBinary('kubelet', version),
      kubeProxy: resolveExtraBinary('kube-proxy', version),
      containerd: runtime.containerd,
      ctr: runtime.ctr,
      runc: runtime.runc,
      cniBinDir: runtime.cniBinDir,
      pathDirs: runtime.pathDirs,
    },
    images: Object.values(images).map((i) => ({ ref: i.ref, archive: i.archive })),
    sandboxImage: images.pause.ref,
  };
}

/** The Kubernetes toolchain's binaries for `version` by name (etcd, kube-apiserver, ..., etcdutl). */
export function toolchainBinaries(version: string): Record<string, string> {
  const t = resolveToolchain(version);
  return { ...t.paths, ...t.extras };
}

/**
 * First address of the /16 the local provider allocates machine and endpoint addresses from:
 * `$MARINA_LOCAL_ADDRESS_BASE`, default 127.77.0.0. Two Marinas on one host need different blocks.
 */
export function localAddressBase(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.MARINA_LOCAL_ADDRESS_BASE?.trim();
  if (!base) return DEFAULT_ADDRESS_BASE;
  const n = parseIPv4(base);
  if (n === undefined || n >>> 24 !== 127 || n % 65536 !== 0) {
    throw new Error(`MARINA_LOCAL_ADDRESS_BASE must be the first address of a loopback /16 such as 127.77.0.0, got ${JSON.stringify(base)}`);
  }
  return base;
}

export interface ProviderRegistryOptions {
  /** Set when Marina listens beyond loopback: cluster endpoints are published there for imported servers. */
  publicAddress?: { bind: string; advertise: string };
  /** The simulated world whose machines the `sim` provider runs (only servers started with --sim have one). */
  sim?: SimWorld;
  /**
   * The OpenStack provider's view of the store and the join (src/server/openstack-directory.ts,
   * src/joins/machine-joins.ts); the joins need the import provider, whose agent records a VM's
   * agent shares.
   */
  openstack?: { directory: CloudDirectory; joins: (imports: ImportProvider) => MachineJoins };
}

export function buildProviderRegistry(
  dataDir: string,
  opts: ProviderRegistryOptions = {},
): ProviderRegistry & { imports: ImportProvider; close(): Promise<void> } {
  const local = new LocalProvider({
    root: join(dataDir, 'local'),
    addressBase: localAddressBase(),
    binaries: toolchainBinaries,
    nodeArtifacts,
    ...(opts.publicAddress ? { publicAddress: opts.publicAddress } : {}),
  });
  const imports = new ImportProvider({ root: join(dataDir, 'import'), reachableEndpoint: (url) => local.reachableEndpoint(url) });
  const providers = new Map<string, InfrastructureProvider>([
    ['local', local],
    ['import', imports],
  ]);
  if (opts.openstack) providers.set('openstack', new OpenStackProvider({ directory: opts.openstack.directory, joins: opts.openstack.joins(imports) }));
  if (opts.sim) providers.set('sim', new SimProvider(opts.sim));
  return {
    imports,
    get(name: string): InfrastructureProvider {
      const provider = providers.get(name);
      if (!provider) {
        throw ApiError.invalidField('spec.provider', `provider ${JSON.stringify(name)} is not available on this server; available: ${[...providers.keys()].join(', ')}`);
      }
      return provider;
    },
    list: () => [...providers.values()],
    async close() {
      await Promise.all([...providers.values()].map((p) => p.close()));
    },
  };
}
