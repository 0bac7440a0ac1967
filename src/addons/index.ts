// Add-on management, wired for the server:
//
//   const addons = await openAddons({ store, logger, validation });   // catalog, API-edge checks
//   buildApp({ ..., validation: { ..., addons: addons.admission } });
//   await addons.startControllers({ access, alerts, metrics });       // the starter (control loops)
//   ...
//   await addons.stop();
//
// openAddons follows the catalog in the store (DefinitionIndex) and loads the shipped catalog
// (catalog/ in the repository, or $MARINA_ADDON_CATALOG) into it. The starter and its per-cluster
// controllers reach clusters through the cluster access the other control loops share.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AddonAdmission } from '../api/addons.js';
import type { ValidationContext } from '../api/registry.js';
import type { AlertSink } from '../alerts/manager.js';
import type { Store } from '../store/types.js';
import { addonAdmission } from './admission.js';
import { DEFAULT_CATALOG_DIR, loadCatalog, readCatalog } from './catalog.js';
import type { ClusterObjectAccess } from './controller.js';
import { DefinitionIndex } from './definitions.js';
import { AddonMetrics } from './metrics.js';
import { AddonStarter } from './starter.js';

export { AddonStarter } from './starter.js';
export { DefinitionIndex } from './definitions.js';
export type { ClusterObjectAccess } from './controller.js';

export interface AddonsOptions {
  store: Store;
  logger: Logger;
  /** Catalog directory (default $MARINA_ADDON_CATALOG, else catalog/ of the installation); false loads none. */
  catalogDir?: string | false;
  /** The rest of the validation context, for validating what the catalog and the starter write. */
  validation?: Omit<ValidationContext, 'addons'>;
}

export interface AddonControllerDeps {
  access: ClusterObjectAccess;
  alerts?: AlertSink;
  metrics?: Registry;
  stopGracePeriodMs?: number;
}

export interface Addons {
  admission: AddonAdmission;
  definitions: DefinitionIndex;
  /** Starts the starter (not while it runs); stopControllers() or stop() stops it. */
  startControllers(deps: AddonControllerDeps): Promise<AddonStarter>;
  /** Stops the starter, if started; it may start again (a replica that regains the Lease). */
  stopControllers(): Promise<void>;
  /** Stops the starter, if started, then the catalog's watch. */
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
  const stopControllers = async (): Promise<void> => {
    const running = starter;
    starter = undefined;
    await running?.stop();
  };
  return {
    admission,
    definitions,
    async startControllers(deps) {
      if (starter) throw new Error('the add-on controllers are already started');
      starter = new AddonStarter({
        store: o.store,
        definitions,
        validation,
        access: deps.access,
        ...(deps.alerts ? { alerts: deps.alerts } : {}),
        ...(deps.metrics ? { metrics: new AddonMetrics(deps.metrics) } : {}),
        ...(deps.stopGracePeriodMs !== undefined ? { stopGracePeriodMs: deps.stopGracePeriodMs } : {}),
        log: o.logger,
      });
      await starter.start();
      return starter;
    },
    stopControllers,
    async stop() {
      await stopControllers();
      definitions.stop();
    },
  };
}
