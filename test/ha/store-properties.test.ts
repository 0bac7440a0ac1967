// The store's property-based tests (src/store/properties.ts) against the Kubernetes-backed store on
// a real etcd + kube-apiserver: concurrent writers really race over the network here.
import { after, before, describe } from 'node:test';
import { storeProperties } from '../../src/store/properties.js';
import { startManagement, toolchainOrSkip, type Management } from './management.js';

const tc = toolchainOrSkip();
const runs = Number(process.env.MARINA_PROP_RUNS ?? 20);

describe('kubernetes store properties', { skip: tc.skip }, () => {
  let mgmt: Management | undefined;
  before(async () => {
    mgmt = await startManagement(tc.toolchain!);
  });
  after(async () => {
    await mgmt?.stop();
  });
  storeProperties('kubernetes', {
    open: (opts = {}) =>
      mgmt!.openStore({
        ...(opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
      }),
    historyPerKind: true,
    deletedByUpdateShows: 'lastStored',
    runs: { random: runs, tinyHistory: Math.ceil(runs / 2), paged: Math.ceil(runs / 2) },
  });
});
