import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Alert, Machine } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import { AlertManager } from '../alerts/manager.js';
import type { InfrastructureProvider, MachineRef, ProviderClusterResource, ProviderMachine } from '../providers/contract.js';
import { cluster, openTestStore } from '../store/test-util.js';
import { OrphanSweep, orphanSweepSettingsFromEnv } from './orphans.js';

const GRACE = 5 * 60_000;

/** A provider whose inventory is a map the test edits; deleteMachine removes by uid. */
function inventoryProvider(name: string, sweepOrphans = true) {
  const machines = new Map<string, ProviderMachine>();
  const deleted: MachineRef[] = [];
  let failList = false;
  const provider: InfrastructureProvider = {
    name,
    sweepOrphans,
    listMachines: async () => {
      if (failList) throw new Error('inventory unavailable');
      return [...machines.values()];
    },
    deleteMachine: async (ref) => {
      deleted.push(ref);
      machines.delete(ref.uid);
    },
    prepareMachine: () => assert.fail('the sweep only lists and deletes'),
    startMachine: () => assert.fail('the sweep only lists and deletes'),
    describeMachine: () => assert.fail('the sweep only lists and deletes'),
    ensureEndpoint: () => assert.fail('the sweep only lists and deletes'),
    deleteEndpoint: () => assert.fail('the sweep only lists and deletes'),
    close: async () => undefined,
  };
  const add = (machineName: string, uid: string = randomUUID()): MachineRef => {
    const ref = { project: 'default', cluster: 'demo', name: machineName, uid };
    machines.set(uid, { ref, providerID: `${name}:///default/demo/${machineName}`, state: 'Running' });
    return ref;
  };
  return { provider, machines, deleted, add, failListing: (v: boolean) => (failList = v) };
}

function world(providers: InfrastructureProvider[]) {
  const store = openTestStore();
  const alerts = new AlertManager({ store });
  const lines: { msg: string; machine?: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  let clock = Date.parse('2026-01-01T00:00:00Z');
  // What the sweep sees of the store: Machines can be hidden, as during a restore of the store.
  let hideMachines = false;
  const seen = new Proxy(store, {
    get: (target, prop, receiver) =>
      prop === 'list'
        ? (kind: string, opts: object) => (hideMachines && kind === 'Machine' ? Promise.resolve({ items: [] }) : target.list(kind, opts))
        : Reflect.get(target, prop, receiver),
  });
  const sweep = () => new OrphanSweep({ store: seen, providers: { get: (n) => providers.find((p) => p.name === n)!, list: () => providers }, alerts, log, graceMs: GRACE, now: () => clock });
  const createMachine = async (name: string): Promise<Machine> =>
    (await store.create({
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: { name, project: 'default' },
      spec: { cluster: 'demo', pool: 'workers', roles: ['worker'], provider: 'local' },
    })) as Machine;
  const firing = async (): Promise<string[]> =>
    ((await store.list('Alert', { project: 'default' })).items as Alert[])
      .filter((a) => a.spec.rule === 'OrphanedMachine' && a.status?.state === 'firing')
      .map((a) => a.spec.labels?.machine ?? '')
      .sort();
  return { store, lines, sweep, createMachine, firing, advance: (ms: number) => (clock += ms), hideMachines: (v: boolean) => (hideMachines = v) };
}

describe('orphan sweep', () => {
  it('leaves machines that a Machine object accounts for (by uid) alone', async () => {
    const inv = inventoryProvider('local');
    const w = world([inv.provider]);
    const m = await w.createMachine('demo-workers-abcde');
    inv.add('demo-workers-abcde', m.metadata.uid!);
    const s = w.sweep();
    await s.sweep();
    w.advance(GRACE * 3);
    const r = await s.sweep();
    assert.deepEqual(r, { orphans: [], removed: [], resourceOrphans: [], resourcesRemoved: [] });
    assert.deepEqual(inv.deleted, []);
    assert.deepEqual(await w.firing(), []);
  });

  it('reports an orphan at once, removes it only after the grace period, then resolves its alert', async () => {
    const inv = inventoryProvider('local');
    const w = world([inv.provider]);
    const orphan = inv.add('demo-workers-zzzzz');
    // Same name as the orphan, other uid: the name is no alibi.
    const m = await w.createMachine('demo-workers-kept1');
    inv.add('demo-workers-kept1', m.metadata.uid!);
    const s = w.sweep();

    const first = await s.sweep();
    assert.deepEqual(first.orphans.map((o) => o.machine.ref), [orphan]);
    assert.deepEqual(first.removed, []);
    assert.deepEqual(await w.firing(), ['demo-workers-zzzzz'], 'an OrphanedMachine alert fires');
    assert.ok(w.lines.some((l) => l.msg.startsWith('orphaned machine') && l.machine === 'demo-workers-zzzzz'), 'and a log line says so');

    w.advance(GRACE - 1);
    assert.deepEqual((await s.sweep()).removed, [], 'not before the grace period is over');
    assert.deepEqual(inv.deleted, []);

    w.advance(1);
    const done = await s.sweep();
    assert.deepEqual(done.removed.map((o) => o.machine.ref), [orphan]);
    assert.deepEqual(inv.deleted, [orphan], 'deleted with its own uid, nothing else');
    assert.deepEqual(done.orphans, []);
    assert.deepEqual(await w.firing(), [], 'the alert resolves once the machine is gone');
    assert.ok(w.lines.some((l) => l.msg === 'orphaned machine removed'));
  });

  it('does not remove an orphan that a Machine accounts for before the grace period ends', async () => {
    const inv = inventoryProvider('local');
    const w = world([inv.provider]);
    const s = w.sweep();
    const m = await w.createMachine('demo-workers-late1');
    inv.add('demo-workers-late1', m.metadata.uid!);
    w.hideMachines(true);
    await s.sweep();
    assert.deepEqual(await w.firing(), ['demo-workers-late1']);
    w.hideMachines(false);
    w.advance(GRACE);
    assert.deepEqual(await s.sweep(), { orphans: [], removed: [], resourceOrphans: [], resourcesRemoved: [] });
    assert.deepEqual(inv.deleted, []);
    assert.deepEqual(await w.firing(), [], 'the alert resolves');
  });

  it('never lists or removes machines of a provider that must not be swept', async () => {
    const imported = inventoryProvider('import', false);
    imported.add('someones-server');
    const w = world([imported.provider]);
    const s = w.sweep();
    await s.sweep();
    w.advance(GRACE * 2);
    assert.deepEqual(await s.sweep(), { orphans: [], removed: [], resourceOrphans: [], resourcesRemoved: [] });
    assert.deepEqual(imported.deleted, []);
    assert.deepEqual(await w.firing(), []);
  });

  it('an incomplete inventory removes nothing and leaves the alerts as they are', async () => {
    const inv = inventoryProvider('local');
    const w = world([inv.provider]);
    inv.add('demo-workers-flaky');
    const s = w.sweep();
    await s.sweep();
    inv.failListing(true);
    w.advance(GRACE);
    const r = await s.sweep();
    assert.deepEqual(r.removed, []);
    assert.equal(r.orphans.length, 1);
    assert.deepEqual(await w.firing(), ['demo-workers-flaky']);
    inv.failListing(false);
    assert.equal((await s.sweep()).removed.length, 1, 'removed once the inventory is complete again');
  });

  it('a restarted Marina resolves the alerts of orphans that are gone, and starts the grace period anew', async () => {
    const inv = inventoryProvider('local');
    const w = world([inv.provider]);
    const gone = inv.add('demo-workers-gone1');
    inv.add('demo-workers-stays');
    await w.sweep().sweep();
    assert.deepEqual(await w.firing(), ['demo-workers-gone1', 'demo-workers-stays']);
    inv.machines.delete(gone.uid); // removed by hand while Marina was down
    w.advance(GRACE);
    const restarted = w.sweep();
    const r = await restarted.sweep();
    assert.deepEqual(r.removed, [], 'the grace period counts from when this process saw it');
    assert.deepEqual(await w.firing(), ['demo-workers-stays']);
  });

  it("reports a cluster resource whose Cluster is gone, deletes it after the grace period, never a live cluster's", async () => {
    const inv = inventoryProvider('openstack');
    const resources = new Map<string, ProviderClusterResource>();
    const deleted: string[] = [];
    inv.provider.listClusterResources = async () => [...resources.values()];
    inv.provider.deleteClusterResource = async (r) => {
      deleted.push(r.id);
      resources.delete(r.id);
    };
    const w = world([inv.provider]);
    const live = await w.store.create(cluster('default', 'live'));
    const add = (id: string, kind: string, c: { name: string; uid: string }) => resources.set(id, { kind, id, name: `marina-${c.name}`, cluster: { project: 'default', ...c } });
    add('lb-live', 'load balancer', { name: 'live', uid: live.metadata.uid! });
    add('lb-gone', 'load balancer', { name: 'gone', uid: randomUUID() });
    add('sg-gone', 'security group', { name: 'gone', uid: randomUUID() });
    const s = w.sweep();
    const first = await s.sweep();
    assert.deepEqual(first.resourceOrphans.map((o) => o.resource.id).sort(), ['lb-gone', 'sg-gone']);
    const alerts = ((await w.store.list('Alert', { project: 'default' })).items as Alert[]).filter((a) => a.spec.rule === 'OrphanedResource' && a.status?.state === 'firing');
    assert.deepEqual(alerts.map((a) => a.spec.labels?.resource).sort(), ['lb-gone', 'sg-gone'], 'an OrphanedResource alert each');
    assert.ok(w.lines.some((l) => l.msg.startsWith('orphaned resource')));
    w.advance(GRACE - 1);
    assert.deepEqual((await s.sweep()).resourcesRemoved, []);
    w.advance(1);
    const done = await s.sweep();
    assert.deepEqual(done.resourcesRemoved.map((o) => o.resource.id).sort(), ['lb-gone', 'sg-gone']);
    assert.deepEqual(deleted.sort(), ['lb-gone', 'sg-gone'], "the live cluster's load balancer stays");
    const still = ((await w.store.list('Alert', { project: 'default' })).items as Alert[]).filter((a) => a.spec.rule === 'OrphanedResource' && a.status?.state === 'firing');
    assert.deepEqual(still, [], 'the alerts resolve');
  });

  it('reads its timing from the environment', () => {
    assert.deepEqual(orphanSweepSettingsFromEnv({}), { intervalMs: 60_000, graceMs: 300_000 });
    assert.deepEqual(orphanSweepSettingsFromEnv({ MARINA_ORPHAN_GRACE_SECONDS: '30', MARINA_ORPHAN_SWEEP_INTERVAL_SECONDS: '5' }), { intervalMs: 5000, graceMs: 30_000 });
    assert.deepEqual(orphanSweepSettingsFromEnv({ MARINA_ORPHAN_GRACE_SECONDS: 'soon', MARINA_ORPHAN_SWEEP_INTERVAL_SECONDS: '-1' }), { intervalMs: 60_000, graceMs: 300_000 });
  });
});
