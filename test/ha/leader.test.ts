// Leader election (src/runtime/leader.ts) against a real kube-apiserver: one leader at a time, a
// clean stop hands over at once, a leader cut off from the API server stops its work before anyone
// else starts (fencing), and a leader whose work fails to start gives the Lease up.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { KubeClient, loadKubeconfig, Resources } from '../../src/kube/client.js';
import { LeaderElector, type Leadership } from '../../src/runtime/leader.js';
import { waitFor } from '../../src/store/conformance.js';
import { startManagement, toolchainOrSkip, type Management } from './management.js';

const tc = toolchainOrSkip();

/** A TCP pass-through to the API server that a test can cut (connections dropped, new ones refused). */
async function cuttableProxy(target: URL): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, target.hostname, r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://${target.hostname}:${port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 300 };

interface Journal {
  entries: { who: string; what: 'start' | 'stop'; at: number }[];
  leaders(): string[];
}

function journal(): Journal {
  const entries: Journal['entries'] = [];
  return {
    entries,
    leaders() {
      const on = new Set<string>();
      for (const e of entries) if (e.what === 'start') on.add(e.who);
      else on.delete(e.who);
      return [...on];
    },
  };
}

/** Work that records when it starts and stops, and asserts it never overlaps another replica's. */
function work(j: Journal, who: string): () => Promise<Leadership> {
  return async () => {
    assert.deepEqual(j.leaders(), [], `${who} starts while ${j.leaders()} still works`);
    j.entries.push({ who, what: 'start', at: performance.now() });
    return {
      stop: async () => {
        j.entries.push({ who, what: 'stop', at: performance.now() });
      },
    };
  };
}

describe('leader election on a Lease', { skip: tc.skip }, () => {
  let mgmt: Management;
  let namespace = 0;
  before(async () => {
    mgmt = await startManagement(tc.toolchain!);
  });
  after(async () => {
    await mgmt?.stop();
  });

  async function ns(): Promise<string> {
    const name = `lease-${++namespace}`;
    await mgmt.client.create(Resources.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    return name;
  }

  test('one replica acquires; the Lease carries MicroTimes with six fractional digits and is renewed', async () => {
    const namespace = await ns();
    const j = journal();
    const e = new LeaderElector({ client: mgmt.client, namespace, name: 'marina', identity: 'a', logger: quiet, ...timing }, work(j, 'a'));
    e.start();
    try {
      await waitFor('leadership', () => e.isLeader() && j.leaders().length === 1);
      const lease = await mgmt.client.get<{ metadata?: object; spec: Record<string, unknown> }>(Resources.leases, 'marina', { namespace });
      assert.equal(lease.spec.holderIdentity, 'a');
      assert.equal(lease.spec.leaseDurationSeconds, 3);
      assert.match(String(lease.spec.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.match(String(lease.spec.acquireTime), /\.\d{6}Z$/);
      const first = lease.spec.renewTime;
      let renewed = first;
      const deadline = Date.now() + 10_000;
      while (renewed === first && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        renewed = (await mgmt.client.get<{ metadata?: object; spec: Record<string, unknown> }>(Resources.leases, 'marina', { namespace })).spec.renewTime;
      }
      assert.notEqual(renewed, first, 'the leader renews');
      assert.equal(e.leader, 'a');
    } finally {
      await e.stop();
    }
    assert.deepEqual(j.leaders(), []);
    const released = await mgmt.client.get<{ metadata?: object; spec: Record<string, unknown> }>(Resources.leases, 'marina', { namespace });
    assert.equal(released.spec.holderIdentity, '', 'a clean stop releases the Lease');
  });

  test('of three candidates exactly one works at a time; a clean stop hands over at once', async () => {
    const namespace = await ns();
    const j = journal();
    const electors = ['a', 'b', 'c'].map((who) => new LeaderElector({ client: mgmt.client, namespace, name: 'marina', identity: who, logger: quiet, ...timing }, work(j, who)));
    for (const e of electors) e.start();
    try {
      await waitFor('a leader', () => j.leaders().length === 1);
      // Two handovers: each time the leader stops cleanly, another one takes over.
      for (let round = 0; round < 2; round++) {
        const leader = electors.find((e) => e.isLeader())!;
        const stoppedAt = performance.now();
        await leader.stop();
        await waitFor('a successor', () => j.leaders().length === 1 && electors.some((e) => e !== leader && e.isLeader()));
        const start = j.entries.filter((x) => x.what === 'start').at(-1)!;
        // Released, not expired: the successor did not wait for the lease duration.
        assert.ok(start.at - stoppedAt < timing.leaseDurationMs, `handover took ${Math.round(start.at - stoppedAt)} ms`);
      }
    } finally {
      await Promise.all(electors.map((e) => e.stop()));
    }
    assert.equal(j.entries.filter((x) => x.what === 'start').length, 3);
  });

  test('a leader cut off from the API server stops its work before another replica takes over', async () => {
    const namespace = await ns();
    const j = journal();
    const conn = await loadKubeconfig(mgmt.cp.kubeconfig);
    const proxy = await cuttableProxy(new URL(conn.server));
    const cutClient = new KubeClient({ ...conn, server: proxy.url }, { timeoutMs: 1000 });
    const breaches: string[] = [];
    const isolated = new LeaderElector(
      { client: cutClient, namespace, name: 'marina', identity: 'isolated', logger: quiet, onFenceBreach: () => breaches.push('isolated'), ...timing },
      work(j, 'isolated'),
    );
    isolated.start();
    await waitFor('the first leader', () => isolated.isLeader());
    const other = new LeaderElector({ client: mgmt.client, namespace, name: 'marina', identity: 'other', logger: quiet, ...timing }, work(j, 'other'));
    other.start();
    try {
      proxy.cut();
      await waitFor('the takeover', () => other.isLeader() && j.leaders().join() === 'other', 20_000);
      const stop = j.entries.find((x) => x.who === 'isolated' && x.what === 'stop')!;
      const start = j.entries.find((x) => x.who === 'other' && x.what === 'start')!;
      assert.ok(stop.at < start.at, 'the cut-off leader stopped before the successor started');
      assert.deepEqual(breaches, []);
      assert.equal(isolated.isLeader(), false);
    } finally {
      await other.stop();
      await isolated.stop();
      cutClient.close();
      await proxy.close();
    }
  });

  test('a leader whose work fails to start gives the Lease up', async () => {
    const namespace = await ns();
    const j = journal();
    const failing = new LeaderElector({ client: mgmt.client, namespace, name: 'marina', identity: 'failing', logger: quiet, ...timing }, async () => {
      throw new Error('cannot start');
    });
    failing.start();
    await waitFor('the failing replica to lead once', () => failing.leader === 'failing');
    const healthy = new LeaderElector({ client: mgmt.client, namespace, name: 'marina', identity: 'healthy', logger: quiet, ...timing }, work(j, 'healthy'));
    healthy.start();
    try {
      await waitFor('the healthy replica to lead', () => healthy.isLeader() && j.leaders().join() === 'healthy', 20_000);
    } finally {
      await healthy.stop();
      await failing.stop();
    }
  });
});
