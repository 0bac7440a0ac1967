import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
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

describe('local provider: a machine that was healthy once is never a failed start', () => {
  const root2 = mkdtempSync(join(tmpdir(), 'marina-local-provider-health-'));
  const provider = new LocalProvider({ root: root2, addressBase: '127.78.128.0', binaries: () => ({}), startTimeoutMs: 3000 });
  const m = { project: 'p', cluster: 'c', name: 'was-healthy', uid: randomUUID() };
  let pid: number | undefined;

  after(async () => {
    if (pid) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
    await provider.deleteMachine(m).catch(() => undefined);
    rmSync(root2, { recursive: true, force: true });
  });

  it('reports an unhealthy agent as Provisioning after the start timeout, and Running again once it recovers', async () => {
    const prepared = await provider.prepareMachine(m);
    const started = await provider.startMachine(m, { kubernetesVersion: 'v0.0.0', roles: [], files: [], services: [] });
    pid = started.providerStatus?.pid as number;
    const waitState = async (want: string) => {
      for (let i = 0; i < 150; i++) {
        const d = await provider.describeMachine(m);
        if (d.state === want) return d;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.fail(`machine not ${want} in time`);
    };
    await waitState('Running');
    await new Promise((r) => setTimeout(r, 3500)); // past the start timeout
    process.kill(pid, 'SIGSTOP'); // the agent stops answering /healthz
    const d = await provider.describeMachine(m);
    assert.equal(d.state, 'Provisioning', `${d.failureReason}: ${d.failureMessage}`);
    assert.equal(d.address, prepared.address);
    process.kill(pid, 'SIGCONT');
    await waitState('Running');
  });
});
