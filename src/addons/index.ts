// Add-on management, wired for the server:
//
//   const addons = await openAddons({ store, logger, kubeconfig: (c) => secrets.adminKubeconfig(c) });
//   buildApp({ ..., validation: { ..., addons: addons.admission } });   // checks at the API edge
//   await addons.startControllers({ alerts, metrics });                // the starter
//   ...
//   await addons.stop();
//
// openAddons follows the catalog in the store (DefinitionIndex) and loads the shipped catalog
// (catalog/ in the repository, or $MARINA_ADDON_CATALOG) into it.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AddonAdmission } from '../api/addons.js';
import type { ValidationContext } from '../api/registry.js';
import type { AlertSink } from '../alerts/manager.js';
import type { Store } from '../store/types.js';
import { addonAdmission } from './admission.js';
import { DEFAULT_CATALOG_DIR, loadCatalog, readCatalog } from './catalog.js';
import type { KubeconfigSource } from './controller.js';
import { DefinitionIndex } from './definitions.js';
import type { AddonClusterApi } from './kube.js';
import { AddonMetrics } from './metrics.js';
import { AddonStarter } from './starter.js';

export { AddonStarter } from './starter.js';
export { DefinitionIndex } from './definitions.js';
export type { KubeconfigSource } from './controller.js';

export interface AddonsOptions {
  store: Store;
  logger: Logger;
  kubeconfig: KubeconfigSource;
  /** Catalog directory (default $MARINA_ADDON_CATALOG, else catalog/ of the installation); false loads none. */
  catalogDir?: string | false;
  /** The rest of the validation context, for validating what the catalog and the starter write. */
  validation?: Omit<ValidationContext, 'addons'>;
  apiFor?: (kubeconfig: string) => AddonClusterApi;
}

export interface Addons {
  admission: AddonAdmission;
  definitions: DefinitionIndex;
  startControllers(deps?: { alerts?: AlertSink; metrics?: Registry }): Promise<AddonStarter>;
  stop(): Promise<void>;
}

export async function openAddons(o: AddonsOptions): Promise<Addons> {
  const definitions = await DefinitionIndex.start(o.store);
  const admission = addonAdmission(definitions);
  const validation: ValidationContext = { kubernetesVersions: [], ...o.validation, addons: admission };
  const dir = o.catalogDir ?? process.env.MARINA_ADDON_CATALOG ?? DEFAULT_CATALOG_DIR;
  if (dir !== false) {
    try {
      await loadCatalog(o.store, readCatalog(dir), validation, o.logger);
    } catch (err) {
      definitions.stop();
      throw err;
    }
  }
  let starter: AddonStarter | undefined;
  return {
    admission,
    definitions,
    async startControllers(deps = {}) {
      starter = new AddonStarter({
        store: o.store,
        definitions,
        validation,
        kubeconfig: o.kubeconfig,
        ...(o.apiFor ? { apiFor: o.apiFor } : {}),
        ...(deps.alerts ? { alerts: deps.alerts } : {}),
        ...(deps.metrics ? { metrics: new AddonMetrics(deps.metrics) } : {}),
        log: o.logger,
      });
      await starter.start();
      return starter;
    },
    async stop() {
      await starter?.stop();
      definitions.stop();
    },
  };
}
