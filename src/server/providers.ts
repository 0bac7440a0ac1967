// The provider registry a server runs with. This is the one place that knows concrete providers;
// controllers receive the registry and see only the contract.
import { join } from 'node:path';
import { ApiError } from '../api/errors.js';
import type { InfrastructureProvider, ProviderRegistry } from '../providers/contract.js';
import { LocalProvider } from '../providers/local/index.js';
import { resolveToolchain } from '../toolchain/resolve.js';

export function buildProviderRegistry(dataDir: string): ProviderRegistry & { close(): Promise<void> } {
  const providers = new Map<string, InfrastructureProvider>([
    ['local', new LocalProvider({ root: join(dataDir, 'local'), binaries: (version) => resolveToolchain(version).paths })],
  ]);
  return {
    get(name: string): InfrastructureProvider {
      const provider = providers.get(name);
      if (!provider) {
        throw ApiError.invalidField('spec.provider', `provider ${JSON.stringify(name)} is not available on this server; available: ${[...providers.keys()].join(', ')}`);
      }
      return provider;
    },
    async close() {
      await Promise.all([...providers.values()].map((p) => p.close()));
    },
  };
}
