// The import provider under the shared conformance suite, with the agent's side of the protocol
// (register on join, sync, confirm the leave) played by a loop over the provider's own methods —
// the real agent (marina agent join) is exercised end to end in test/workers/import.test.ts.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProviderConformance } from '../conformance.js';
import { ProviderError, type InfrastructureProvider, type MachineBootstrap, type MachineRef } from '../contract.js';
import { ImportProvider } from './index.js';

const root = mkdtempSync(join(tmpdir(), 'marina-import-provider-'));
const newProvider = () => new ImportProvider({ root, reachableEndpoint: (url) => ({ url, tlsServerName: 'kubernetes' }) });
let nextHost = 2;
const agents: NodeJS.Timeout[] = [];

/** A joined server's agent: syncs healthy every 50 ms and confirms a leave. */
function simulatedAgent(provider: ImportProvider, credential: string): void {
  const timer = setInterval(() => {
    const r = provider.authenticate(credential);
    if (!r) return;
    const a = provider.sync(r, { ok: true, message: 'ok' }, 'waiting');
    if (a.action === 'leave' && r.state !== 'left') provider.confirmLeft(r);
  }, 50);
  agents.push(timer);
}

function bootstrap(): MachineBootstrap {
  return {
    kubernetesVersion: 'v1.36.3',
    roles: ['worker'],
    files: [{ path: 'pki/ca.crt', content: 'ca', mode: 0o644 }],
    services: [],
    node: {
      nodeName: 'n',
      apiServerURL: 'https://127.0.0.1:6443',
      caFile: 'pki/ca.crt',
      bootstrapToken: 'abcdef.0123456789abcdef',
      kubeProxyCertFile: 'pki/kp.crt',
      kubeProxyKeyFile: 'pki/kp.key',
      clusterCIDR: '10.244.0.0/16',
      clusterDNS: '10.96.0.10',
      clusterDomain: 'cluster.local',
      labels: {},
      taints: [],
      maxPods: 110,
    },
  };
}

const provider = newProvider();
describeProviderConformance('import', {
  newProvider: () => provider,
  async join(m) {
    simulatedAgent(provider, provider.register(m, { address: `10.99.0.${nextHost++}`, hostname: `server-${m.name}` }));
  },
  minimalBootstrap: () => bootstrap(),
  async assertMachineGone(machine) {
    const file = join(root, 'machines', machine.project, machine.cluster, `${machine.name}.json`);
    // A tombstone stays (so a returning agent learns to leave), holding no bootstrap secrets.
    const r = JSON.parse(readFileSync(file, 'utf8')) as { state: string; bootstrap?: unknown };
    assert.equal(r.state, 'left');
    assert.equal(r.bootstrap, undefined);
  },
  runningTimeoutMs: 10_000,
  cleanup: async () => {
    for (const t of agents) clearInterval(t);
    rmSync(root, { recursive: true, force: true });
  },
});

describe('import provider: what the contract does not cover', () => {
  const dir = mkdtempSync(join(tmpdir(), 'marina-import-provider-2-'));
  const p = new ImportProvider({ root: dir, reachableEndpoint: () => undefined, leaveTimeoutMs: 200 });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ref = (name: string): MachineRef => ({ project: 'p', cluster: 'c', name, uid: randomUUID() });

  it('cannot create machines: prepareMachine of a machine no server joined as fails, retryably', async () => {
    await assert.rejects(p.prepareMachine(ref('nobody')), (err: unknown) => err instanceof ProviderError && err.reason === 'NotJoined' && !err.terminal);
    assert.equal(p.capabilities.createsMachines, false);
  });

  it('stores only the hash of the agent credential, and authenticates with it', () => {
    const m = ref('hashed');
    const credential = p.register(m, { address: '10.99.1.2', hostname: 'h' });
    const text = readdirSync(join(dir, 'machines', 'p', 'c')).map((f) => readFileSync(join(dir, 'machines', 'p', 'c', f), 'utf8')).join('\n');
    assert.equal(text.includes(credential), false, 'the credential itself is never stored');
    assert.equal(p.authenticate(credential)?.name, 'hashed');
    assert.equal(p.authenticate(`${credential}x`), undefined);
  });

  it('tells the agent to wait, then to run with the endpoint it can reach, then to leave', async () => {
    const m = ref('flow');
    const credential = p.register(m, { address: '10.99.1.3', hostname: 'h' });
    const r = () => p.authenticate(credential)!;
    assert.deepEqual(p.sync(r(), undefined, 'WaitingForApproval: an operator admits it'), { action: 'wait', message: 'WaitingForApproval: an operator admits it' });
    await p.startMachine(m, bootstrap());
    // Marina listens on loopback only here: the server could not reach the API.
    const a = p.sync(r(), { ok: false, message: 'starting' }, '');
    assert.equal(a.action, 'wait');
    assert.match((a as { message: string }).message, /not reachable from other hosts/);
    assert.equal((await p.describeMachine(m)).state, 'Provisioning');
  });

  it('gives up waiting for an agent that never comes back, and answers it with leave if it does', async () => {
    const m = ref('gone');
    const credential = p.register(m, { address: '10.99.1.4', hostname: 'h' });
    await assert.rejects(p.deleteMachine(m), (err: unknown) => err instanceof ProviderError && err.reason === 'LeavePending');
    await new Promise((res) => setTimeout(res, 300));
    await p.deleteMachine(m);
    assert.equal((await p.describeMachine(m)).state, 'Missing');
    assert.equal(p.sync(p.authenticate(credential)!, undefined, '').action, 'leave');
    assert.ok(existsSync(join(dir, 'machines', 'p', 'c', 'gone.json')), 'tombstone kept');
  });

  it('lists the servers that joined and have not left; the orphan sweep never deletes one', async () => {
    const m = ref('listed');
    p.register(m, { address: '10.99.1.5', hostname: 'h' });
    const listed = (await p.listMachines()).find((x) => x.ref.uid === m.uid);
    assert.deepEqual(listed, { ref: m, providerID: 'import:///p/c/listed', state: 'Provisioning' });
    assert.equal((await p.listMachines()).some((x) => x.ref.name === 'gone'), false, 'a tombstone is not listed');
    assert.equal(p.sweepOrphans, false);
  });

  it('writes nothing for a call whose reconcile was aborted', async () => {
    const m = ref('aborted');
    const credential = p.register(m, { address: '10.99.1.6', hostname: 'h' });
    const signal = AbortSignal.abort();
    await assert.rejects(p.startMachine(m, bootstrap(), { signal }), { name: 'AbortError' });
    await assert.rejects(p.deleteMachine(m, { signal }), { name: 'AbortError' });
    assert.equal(p.authenticate(credential)?.state, 'joined', 'neither started nor leaving');
  });

  it('upgrades a started node in place: the next sync hands the agent the bootstrap of the new version', async () => {
    const m = ref('upgrade');
    const reachable = new ImportProvider({ root: dir, reachableEndpoint: (url) => ({ url }) });
    const credential = reachable.register(m, { address: '10.99.1.7', hostname: 'h' });
    await assert.rejects(reachable.actions.upgradeNode!(m, 'v1.37.0'), (err: unknown) => err instanceof ProviderError && err.reason === 'NotStarted');
    await reachable.startMachine(m, bootstrap());
    reachable.sync(reachable.authenticate(credential)!, { ok: true, message: 'ok' }, '');
    const state = await reachable.actions.upgradeNode!(m, 'v1.37.0');
    assert.equal(state.requested, 'v1.37.0');
    assert.ok(state.agentSeenAt, 'says when the agent was last heard of');
    const asked = reachable.authenticate(credential)!.upgradeRequestedAt;
    await reachable.actions.upgradeNode!(m, 'v1.37.0');
    assert.equal(reachable.authenticate(credential)!.upgradeRequestedAt, asked, 'asking again changes nothing');
    const a = reachable.sync(reachable.authenticate(credential)!, { ok: true, message: 'ok' }, '');
    assert.equal(a.action, 'run');
    assert.equal((a as { bootstrap: MachineBootstrap }).bootstrap.kubernetesVersion, 'v1.37.0');
    assert.equal((a as { bootstrap: MachineBootstrap }).bootstrap.node?.bootstrapToken, bootstrap().node?.bootstrapToken, 'only the version changes');
    // An imported server runs only a worker node: a restore's actions are refused, terminally.
    await assert.rejects(reachable.actions.holdServices(m, ['etcd']), (err: unknown) => err instanceof ProviderError && err.terminal);
  });

  it('has no endpoints', async () => {
    await assert.rejects(p.ensureEndpoint({ project: 'p', name: 'c', uid: 'u' }), (err: unknown) => err instanceof ProviderError && err.terminal);
  });
});
