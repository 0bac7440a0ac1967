import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPortListening, isProcessGroupAlive } from '../../proc/index.js';
import { describeProviderConformance } from '../conformance.js';
import { AGENT_PORT, ENDPOINT_PORT, LocalProvider } from './index.js';

const root = mkdtempSync(join(tmpdir(), 'marina-local-provider-'));
// A distinct address block per test file keeps parallel test files from sharing addresses.
const addressBase = '127.78.0.0';
const newProvider = () => new LocalProvider({ root, addressBase, binaries: () => ({}), startTimeoutMs: 30_000 });

describeProviderConformance('local', {
  newProvider,
  minimalBootstrap: () => ({ kubernetesVersion: 'v0.0.0', roles: [], files: [{ path: 'hello.txt', content: 'hi', mode: 0o600 }], services: [] }),
  async assertMachineGone(machine, last) {
    const pid = last.providerStatus?.pid as number | undefined;
    assert.ok(pid, 'the running machine reported its pid');
    assert.equal(isProcessGroupAlive(pid), false, `process group ${pid} still alive`);
    assert.equal(await isPortListening(last.address!, AGENT_PORT), false, 'agent port still listening');
    assert.equal(existsSync(newProvider().machineDir(machine)), false, 'machine directory left behind');
  },
  async assertEndpointGone(cluster, url) {
    const host = new URL(url).hostname;
    assert.equal(await isPortListening(host, ENDPOINT_PORT), false, 'endpoint still listening');
    assert.equal(existsSync(newProvider().endpointDir(cluster)), false, 'endpoint directory left behind');
  },
  cleanup: async () => rmSync(root, { recursive: true, force: true }),
});
