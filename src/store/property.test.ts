// The store's property-based tests (./properties.ts) against SQLite: in-memory databases, so many runs.
import { storeProperties } from './properties.js';
import { openSqliteStore } from './sqlite.js';
import { TEST_KEY } from './test-util.js';

storeProperties('sqlite', {
  open: async (opts = {}) =>
    openSqliteStore({
      path: ':memory:',
      encryptionKey: TEST_KEY,
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {}),
    }),
  historyPerKind: false,
  deletedByUpdateShows: 'update',
  runs: { random: 100, tinyHistory: 50, paged: 50 },
});
