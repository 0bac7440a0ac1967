// The shared conformance suite every infrastructure provider passes (run from each provider's own
// test file). It checks the contract's promises: idempotent calls, re-adoption by a new provider
// instance (a Marina restart), distinct addresses, stable endpoints, complete clean-up, and an
// inventory (listMachines) that names every machine by the uid it was made for.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createsMachines, ProviderError, type ClusterRef, type InfrastructureProvider, type MachineBootstrap, type MachineDescription, type MachineRef, type ProviderMachine } from './contract.js';

export interface ConformanceHarness {
  /** A provider instance; called again to simulate a restart of Marina on the same state. */
  newProvider(): InfrastructureProvider;
  /** The smallest bootstrap that brings a machine of this provider to Running. */
  minimalBootstrap(machine: MachineRef, address: string): MachineBootstrap;
  /** Provider-specific proof that nothing of the machine is left (processes, ports, files, VMs). */
  assertMachineGone(machine: MachineRef, last: MachineDescription): Promise<void>;
  assertEndpointGone?(cluster: ClusterRef, url: string): Promise<void>;
  /**
   * Providers that cannot create machines (capabilities.createsMachines false: imported servers)
   * need a machine to exist before prepareMachine: this makes one join, the way it would in use.
   */
  join?(machine: MachineRef): Promise<void>;
  /** Generous: a real provider boots real things. */
  runningTimeoutMs?: number;
  cleanup?(): Promise<void>;
}

export function describeProviderConformance(name: string, harness: ConformanceHarness): void {
  describe(`provider conformance: ${name}`, () => {
    const provider = harness.newProvider();
    const cluster: ClusterRef = { project: 'conformance', name: 'c1', uid: randomUUID() };
    const machine = (n: string): MachineRef => ({ project: cluster.project, cluster: cluster.name, name: n, uid: randomUUID() });
    const created: MachineRef[] = [];
    const joins = !createsMachines(provider);
    const hasEndpoints = provider.capabilities?.endpoints !== false;
    if (joins && !harness.join) throw new Error(`provider ${name} cannot create machines: its harness must implement join()`);
    /** prepareMachine, after the machine joined when the provider cannot create it. */
    const prepare = async (m: MachineRef) => {
      if (joins) await harness.join!(m);
      return provider.prepareMachine(m);
    };
    /** deleteMachine until it succeeds: a retryable ProviderError means "not yet" (the controller retries). */
    const deleteEventually = async (m: MachineRef, p = provider) => {
      const deadline = Date.now() + (harness.runningTimeoutMs ?? 60_000);
      for (;;) {
        try {
          return await p.deleteMachine(m);
        } catch (err) {
          if (!(err instanceof ProviderError) || err.terminal || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };

    after(async () => {
      for (const m of created) await deleteEventually(m).catch(() => undefined);
      await provider.deleteEndpoint(cluster).catch(() => undefined);
      await provider.close();
      await harness.cleanup?.();
    });

    async function waitFor(m: MachineRef, state: string, p = provider): Promise<MachineDescription> {
      const deadline = Date.now() + (harness.runningTimeoutMs ?? 60_000);
      let last: MachineDescription;
      do {
        last = await p.describeMachine(m);
        if (last.state === state) return last;
        assert.notEqual(last.state, 'Failed', `machine failed: ${last.failureReason}: ${last.failureMessage}`);
        await new Promise((r) => setTimeout(r, 200));
      } while (Date.now() < deadline);
      assert.fail(`machine ${m.name} not ${state} in time; last state ${last.state}`);
    }

    const listed = async (m: MachineRef, p = provider): Promise<ProviderMachine | undefined> => {
      const all = await p.listMachines();
      const mine = all.filter((x) => x.ref.uid === m.uid);
      assert.ok(mine.length <= 1, `machine ${m.name} listed ${mine.length} times`);
      return mine[0];
    };

    it('says whether the orphan sweep may delete its machines', () => {
      assert.equal(typeof provider.sweepOrphans, 'boolean');
    });

    it('reports an unknown machine as Missing', async () => {
      assert.equal((await provider.describeMachine(machine('never-made'))).state, 'Missing');
    });

    it('prepares idempotently and gives each machine its own address', async () => {
      const a = machine('m-a');
      const b = machine('m-b');
      created.push(a, b);
      const first = await prepare(a);
      const again = await provider.prepareMachine(a);
      const other = await prepare(b);
      assert.deepEqual(again, first);
      assert.notEqual(other.address, first.address);
      assert.ok(first.providerID.length > 0);
      const inventory = await listed(a);
      assert.deepEqual(inventory && { ...inventory.ref, providerID: inventory.providerID }, { ...a, providerID: first.providerID }, 'a prepared machine is listed');
      assert.ok(await listed(b), 'every prepared machine is listed');
      await deleteEventually(b);
      created.splice(created.indexOf(b), 1);
      assert.equal(await listed(b), undefined, 'a deleted machine is no longer listed');
    });

    it('starts a machine, keeps one copy on a repeated start, and a restarted provider re-adopts it', async () => {
      const m = machine('m-run');
      created.push(m);
      const prepared = await prepare(m);
      await provider.startMachine(m, harness.minimalBootstrap(m, prepared.address));
      const running = await waitFor(m, 'Running');
      assert.equal(running.address, prepared.address);
      await provider.startMachine(m, harness.minimalBootstrap(m, prepared.address));
      const again = await provider.describeMachine(m);
      assert.deepEqual(again.providerStatus, running.providerStatus, 'a second start made a second machine');

      assert.equal((await listed(m))?.state, 'Running');

      const restarted = harness.newProvider();
      const adopted = await restarted.describeMachine(m);
      assert.equal(adopted.state, 'Running');
      assert.deepEqual(adopted.providerStatus, running.providerStatus);
      assert.equal((await listed(m, restarted))?.ref.name, m.name, 'a restarted provider lists what runs');
      await restarted.close();
    });

    it('does not adopt a machine of an earlier object with the same name', async () => {
      const first = created.find((m) => m.name === 'm-run')!;
      const impostor: MachineRef = { ...first, uid: randomUUID() };
      assert.equal((await provider.describeMachine(impostor)).state, 'Missing');
    });

    it('deleting with another uid leaves the machine of the same name alone', async () => {
      const first = created.find((m) => m.name === 'm-run')!;
      await provider.deleteMachine({ ...first, uid: randomUUID() });
      assert.equal((await provider.describeMachine(first)).state, 'Running');
      assert.ok(await listed(first));
    });

    it('deletes a machine completely, and deleting again succeeds', async () => {
      const m = created.find((x) => x.name === 'm-run')!;
      const last = await provider.describeMachine(m);
      await deleteEventually(m);
      assert.equal((await provider.describeMachine(m)).state, 'Missing');
      await harness.assertMachineGone(m, last);
      assert.equal(await listed(m), undefined, 'a deleted machine is no longer listed');
      await provider.deleteMachine(m);
      created.splice(created.indexOf(m), 1);
    });

    it('refuses endpoints when it has none (capabilities.endpoints false)', { skip: hasEndpoints }, async () => {
      await assert.rejects(provider.ensureEndpoint(cluster, ['127.0.0.1:1']), (err: unknown) => err instanceof ProviderError && err.terminal);
      await provider.deleteEndpoint(cluster);
    });

    it('keeps the endpoint address stable while its backends change, and removes it', { skip: !hasEndpoints }, async () => {
      const first = await provider.ensureEndpoint(cluster, ['127.0.0.1:1']);
      const second = await provider.ensureEndpoint(cluster, ['127.0.0.1:1', '127.0.0.1:2']);
      const restarted = harness.newProvider();
      const third = await restarted.ensureEndpoint(cluster, ['127.0.0.1:2']);
      await restarted.close();
      assert.equal(second.url, first.url);
      assert.equal(third.url, first.url);
      assert.match(first.url, /^https:\/\//);
      await provider.deleteEndpoint(cluster);
      await harness.assertEndpointGone?.(cluster, first.url);
      await provider.deleteEndpoint(cluster);
    });
  });
}
