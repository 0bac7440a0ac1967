// The store conformance suite (src/store/conformance.ts) against the Kubernetes-backed store, on a
// real etcd + kube-apiserver started from the project's toolchain and stopped afterwards.
import { describe } from 'node:test';
import { kindInfo } from '../../src/api/registry.js';
import { storeConformance } from '../../src/store/conformance.js';
import { crName, resourceType } from '../../src/store/kubernetes/objects.js';
import { startManagement, toolchainOrSkip, type Management } from './management.js';

const tc = toolchainOrSkip();
let mgmt: Management | undefined;

describe('kubernetes store', { skip: tc.skip }, () => {
  storeConformance('kubernetes', {
    async setup() {
      mgmt = await startManagement(tc.toolchain!);
    },
    async teardown() {
      await mgmt?.stop();
    },
    open: (opts = {}) =>
      mgmt!.openStore({
        ...(opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
      }),
    async raw(store, key) {
      const info = kindInfo(key.kind);
      const cr = await mgmt!.client.get(resourceType(info), crName(info, key.project, key.name), { namespace: (store as unknown as { namespace: string }).namespace });
      return JSON.stringify(cr);
    },
    futureRevisionIsGone: false,
  });
});
