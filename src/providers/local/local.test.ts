import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPortListening, isProcessGroupAlive } from '../../proc/index.js';
import { describeProviderConformance } from '../conformance.js';
import { pickAddressBase } from '../../../test/support/loopback.js';
import type { MachineRef } from '../contract.js';
import { AGENT_PORT, ENDPOINT_PORT, LocalProvider } from './index.js';
import { processesWithConfig } from './processes.js';

const root = mkdtempSync(join(tmpdir(), 'marina-local-provider-'));
// A random free block per test file keeps parallel test files and parallel runs apart.
const addressBase = await pickAddressBase();
const otherBase = (n: number) => addressBase.replace(/^127\.(\d+)\.0\.0$/, (_, b: string) => `127.${b}.${n}.0`);
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
  const provider = new LocalProvider({ root: root2, addressBase: otherBase(128), binaries: () => ({}), startTimeoutMs: 3000 });
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

describe('local provider: a start cut off by a crash leaves no second copy and no orphan', () => {
  const root3 = mkdtempSync(join(tmpdir(), 'marina-local-provider-crash-'));
  const newProvider = () => new LocalProvider({ root: root3, addressBase: otherBase(192), binaries: () => ({}), startTimeoutMs: 30_000 });
  const provider = newProvider();
  const bootstrap = { kubernetesVersion: 'v0.0.0', roles: [], files: [], services: [] };
  const agentsOf = (m: MachineRef) => processesWithConfig('/agent/main.js', join(provider.machineDir(m), 'agent.json')).map((p) => p.pid);
  const made: MachineRef[] = [];
  const pids: number[] = [];

  after(async () => {
    for (const m of made) await provider.deleteMachine(m).catch(() => undefined);
    for (const pid of pids) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone, as it should be */
      }
    }
    rmSync(root3, { recursive: true, force: true });
  });

  /** The state a SIGKILL of Marina between spawning the agent and recording its pid leaves behind. */
  async function startedButNotRecorded(name: string): Promise<{ m: MachineRef; pid: number; address: string }> {
    const m = { project: 'p', cluster: 'c', name, uid: randomUUID() };
    made.push(m);
    const { address } = await provider.prepareMachine(m);
    const pid = (await provider.startMachine(m, bootstrap)).providerStatus?.pid as number;
    pids.push(pid);
    const record = join(provider.machineDir(m), 'machine.json');
    writeFileSync(record, JSON.stringify({ uid: m.uid, address }));
    assert.equal(JSON.parse(readFileSync(record, 'utf8')).pid, undefined);
    return { m, pid, address };
  }

  it('a repeated start adopts the agent whose pid was never recorded instead of starting a second one', async () => {
    const { m, pid } = await startedButNotRecorded('cut-off');
    const restarted = newProvider();
    const again = await restarted.startMachine(m, bootstrap);
    assert.equal(again.providerStatus?.pid, pid, 'the running agent was adopted');
    assert.deepEqual(agentsOf(m), [pid], 'exactly one agent runs for the machine');
    await restarted.deleteMachine(m);
    assert.deepEqual(agentsOf(m), [], 'deleting stops the adopted agent');
    assert.equal(isProcessGroupAlive(pid), false);
  });

  it('lists an agent whose directory is gone, by the uid on its command line, and deleteMachine stops it', async () => {
    const { m, pid } = await startedButNotRecorded('lost-dir');
    // What the old code left: the directory removed while the unrecorded agent kept running.
    rmSync(provider.machineDir(m), { recursive: true, force: true });
    const entry = (await provider.listMachines()).find((x) => x.ref.uid === m.uid);
    assert.deepEqual(entry && { ref: entry.ref, state: entry.state }, { ref: m, state: 'Running' });
    await provider.deleteMachine({ ...m, uid: randomUUID() });
    assert.ok(isProcessGroupAlive(pid), 'another uid does not stop it');
    await provider.deleteMachine(m);
    assert.equal(isProcessGroupAlive(pid), false, 'its own uid does');
    assert.equal((await provider.listMachines()).find((x) => x.ref.uid === m.uid), undefined);
  });

  it('an endpoint balancer whose pid was never recorded is adopted, not started twice', async () => {
    const cluster = { project: 'p', name: 'c', uid: randomUUID() };
    try {
      const { host, port } = await provider.ensureEndpoint(cluster, ['127.0.0.1:1']);
      // Up and serving, as a balancer of a crashed Marina would be.
      for (let i = 0; i < 100 && !(await isPortListening(host, port)); i++) await new Promise((r) => setTimeout(r, 100));
      const recordPath = join(provider.endpointDir(cluster), 'endpoint.json');
      const { pid, ...rest } = JSON.parse(readFileSync(recordPath, 'utf8')) as { pid: number };
      pids.push(pid);
      writeFileSync(recordPath, JSON.stringify(rest));
      await newProvider().ensureEndpoint(cluster, ['127.0.0.1:2']);
      assert.deepEqual(processesWithConfig('/lb/main.js', join(provider.endpointDir(cluster), 'lb.json')).map((p) => p.pid), [pid]);
    } finally {
      await provider.deleteEndpoint(cluster);
    }
  });
});
