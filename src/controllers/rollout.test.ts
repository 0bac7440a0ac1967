import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Machine, MachineSpec } from '../api/kinds.js';
import { API_VERSION, type Condition } from '../api/meta.js';
import { resolveRollout, rolloutProblem } from '../api/rollout-policy.js';
import { planRollout, type RolloutInput } from './rollout.js';
import { templateHash } from './template.js';

const OLD: Pick<MachineSpec, 'kubernetesVersion'> = { kubernetesVersion: 'v1.35.4' };
const NEW: Pick<MachineSpec, 'kubernetesVersion'> = { kubernetesVersion: 'v1.36.3' };

let n = 0;
function machine(o: { version?: Pick<MachineSpec, 'kubernetesVersion'>; healthy?: boolean; replaces?: string; requested?: string; roles?: MachineSpec['roles']; name?: string } = {}): Machine {
  const healthy = o.healthy ?? true;
  const conditions: Condition[] = [{ type: 'Healthy', status: healthy ? 'True' : 'Unknown', reason: healthy ? 'Healthy' : 'Provisioning', message: '', lastTransitionTime: new Date().toISOString() } as Condition];
  const annotations: Record<string, string> = {};
  if (o.replaces) annotations['marina.dev/replaces'] = o.replaces;
  if (o.requested) annotations['marina.dev/replace-requested'] = o.requested;
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name: o.name ?? `m${++n}`, project: 'p', annotations },
    spec: { cluster: 'c', pool: 'w', roles: o.roles ?? ['worker'], provider: 'local', ...(o.version ?? OLD) },
    status: { phase: healthy ? 'Running' : 'Provisioning', conditions, nodeReady: healthy },
  };
}

const hashOf = (m: Machine) => templateHash(m.spec);
const healthy = (m: Machine) => m.status?.phase === 'Running' && m.status.conditions?.[0]?.status === 'True';

function plan(active: Machine[], o: Partial<RolloutInput> = {}) {
  const roles = active[0]?.spec.roles ?? ['worker'];
  return planRollout({
    replicas: 3,
    policy: resolveRollout(roles, undefined),
    critical: roles.includes('etcd') || roles.includes('controlplane'),
    active,
    removing: 0,
    hash: templateHash({ roles, provider: 'local', ...NEW }),
    hashOf,
    stale: new Map(),
    draining: new Set(),
    blocked: new Set(),
    healthy,
    ...o,
  });
}

const names = (cs: { machine: Machine }[]) => cs.map((c) => c.machine.metadata.name);

describe('template hash', () => {
  it('changes with what a machine is made of, not with labels, taints or the drain timeout', () => {
    const base: MachineSpec = { cluster: 'c', pool: 'w', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.35.4', machine: { cpu: 2 } };
    const h = templateHash(base);
    assert.match(h, /^[0-9a-f]{10}$/);
    const withExtras: MachineSpec = { ...base, labels: { a: 'b' }, taints: [], drainTimeoutSeconds: 5 };
    assert.equal(templateHash(withExtras), h);
    assert.equal(templateHash({ ...base, runtime: {} }), h, 'an empty object is no change');
    assert.notEqual(templateHash({ ...base, kubernetesVersion: 'v1.36.3' }), h);
    assert.notEqual(templateHash({ ...base, machine: { cpu: 4 } }), h);
    assert.notEqual(templateHash({ ...base, certificates: 'op-1' }), h);
    assert.notEqual(templateHash({ ...base, runtime: { maxPods: 50 } }), h);
  });

  it('etcd-only machines follow the etcd version, which both pinned Kubernetes versions share', () => {
    const etcd = (v: string) => templateHash({ roles: ['etcd'], provider: 'local', kubernetesVersion: v });
    assert.equal(etcd('v1.35.4'), etcd('v1.36.3'));
    const cp = (v: string) => templateHash({ roles: ['controlplane'], provider: 'local', kubernetesVersion: v });
    assert.notEqual(cp('v1.35.4'), cp('v1.36.3'));
  });
});

describe('rollout policy', () => {
  it('defaults to surge 1 / unavailable 0 and forces it on etcd and control planes', () => {
    assert.deepEqual(resolveRollout(['worker'], undefined), { maxSurge: 1, maxUnavailable: 0 });
    assert.deepEqual(resolveRollout(['worker'], { maxSurge: 0, maxUnavailable: 2 }), { maxSurge: 0, maxUnavailable: 2 });
    assert.deepEqual(resolveRollout(['controlplane'], { maxSurge: 3 }), { maxSurge: 1, maxUnavailable: 0 });
    assert.deepEqual(rolloutProblem(['worker'], { maxSurge: 0 }), { field: 'rollout', message: 'maxSurge and maxUnavailable cannot both be 0: a roll could never replace a machine' });
    assert.equal(rolloutProblem(['etcd'], { maxUnavailable: 1 })?.field, 'rollout.maxUnavailable');
    assert.equal(rolloutProblem(['worker'], { maxSurge: 2, maxUnavailable: 1 }), undefined);
  });
});

describe('planRollout', () => {
  it('an up-to-date pool plans nothing', () => {
    const p = plan([machine({ version: NEW }), machine({ version: NEW }), machine({ version: NEW })]);
    assert.equal(p.candidates.length, 0);
    assert.equal(p.updated, 3);
    assert.equal(p.waiting, undefined);
  });

  it('workers: surge one successor, drain its old machine once the successor is healthy, then the next', () => {
    const [a, b, c] = [machine(), machine(), machine()];
    const first = plan([a!, b!, c!]);
    assert.deepEqual(names(first.surgeFor), [a!.metadata.name], 'one successor (maxSurge 1), the oldest first');
    assert.deepEqual(first.drain, [], 'nothing drained while no machine is spare (maxUnavailable 0)');

    const booting = machine({ version: NEW, healthy: false, replaces: a!.metadata.name });
    const second = plan([a!, b!, c!, booting]);
    assert.deepEqual(second.surgeFor, [], 'no second successor above maxSurge');
    assert.deepEqual(second.drain, []);
    assert.match(second.waiting ?? '', /successor .* not healthy yet/);

    const up = machine({ version: NEW, replaces: a!.metadata.name });
    const third = plan([a!, b!, c!, up]);
    assert.deepEqual(names(third.drain), [a!.metadata.name], 'the replaced machine is drained once its successor serves');
    assert.equal(third.updated, 1);
    assert.equal(third.surging, 1);
  });

  it('workers with maxSurge 2 / maxUnavailable 1 replace three machines at once, never below replicas - 1', () => {
    const ms = [machine(), machine(), machine()];
    const p = plan(ms, { policy: { maxSurge: 2, maxUnavailable: 1 } });
    assert.equal(p.surgeFor.length, 2);
    assert.equal(p.drain.length, 1, 'one old machine may go unavailable right away');
    assert.notDeepEqual(names(p.drain), names(p.surgeFor).slice(0, 1), 'the drained one gets no successor of its own (scale replaces it)');
  });

  it('etcd and control planes: one at a time, surge first', () => {
    const cp = (o: Parameters<typeof machine>[0] = {}) => machine({ roles: ['controlplane'], ...o });
    const [a, b] = [cp(), cp()];
    const first = plan([a!, b!], { replicas: 2 });
    assert.deepEqual(names(first.surgeFor), [a!.metadata.name]);
    const s = cp({ version: NEW, replaces: a!.metadata.name });
    const second = plan([a!, b!, s], { replicas: 2 });
    assert.deepEqual(names(second.drain), [a!.metadata.name]);
    assert.deepEqual(second.surgeFor, [], 'no second successor while one replacement is in flight');
    const third = plan([a!, b!, s], { replicas: 2, draining: new Set([a!.metadata.name]) });
    assert.deepEqual(third.drain, []);
    assert.deepEqual(third.surgeFor, []);
    const fourth = plan([b!, s], { replicas: 2, removing: 1 });
    assert.deepEqual(fourth.surgeFor, [], 'the next waits until the old one is gone');
    assert.deepEqual(names(plan([b!, s], { replicas: 2 }).surgeFor), [b!.metadata.name]);
  });

  it('the health gate stops the roll; a person\'s ReplaceMachine still surges', () => {
    const ms = [machine(), machine(), machine({ requested: 'op-x' })];
    const p = plan(ms, { gateClosed: '/readyz through the endpoint: HTTP 500' });
    assert.deepEqual(names(p.surgeFor), [ms[2]!.metadata.name], 'only the requested replacement');
    assert.deepEqual(p.drain, []);
    assert.match(p.waiting ?? '', /health gate/);
    const sick = plan([machine({ version: NEW }), machine({ version: NEW, healthy: false }), machine()]);
    assert.deepEqual(sick.surgeFor, [], 'a sick up-to-date machine (healing\'s) holds the roll');
    const paused = plan(ms, { paused: 'rollouts paused by operation u' });
    assert.deepEqual(names(paused.surgeFor), [ms[2]!.metadata.name]);
    assert.match(paused.waiting ?? '', /paused/);
  });

  it('stale control planes are replaced like out-of-date ones; a requested machine is never drained by the pool', () => {
    const cp = (o: Parameters<typeof machine>[0] = {}) => machine({ roles: ['controlplane'], version: NEW, ...o });
    const [a, b] = [cp(), cp()];
    const p = plan([a!, b!], { replicas: 2, stale: new Map([[b!.metadata.name, 'knows 1 of 3 etcd members']]) });
    assert.deepEqual(p.candidates.map((c) => c.reason), ['EtcdEndpointsStale']);
    assert.deepEqual(names(p.surgeFor), [b!.metadata.name]);
    const r = machine({ requested: 'op-1', version: NEW });
    const withSuccessor = plan([r, machine({ version: NEW }), machine({ version: NEW }), machine({ version: NEW, replaces: r.metadata.name })]);
    assert.deepEqual(withSuccessor.drain, [], 'the ReplaceMachine operation removes it');
  });

  it('a successor is never made twice and a drain that timed out is not retried at once', () => {
    const [a, b, c] = [machine(), machine(), machine()];
    const s = machine({ version: NEW, replaces: a!.metadata.name });
    const p = plan([a!, b!, c!, s], { blocked: new Set([a!.metadata.name]), policy: { maxSurge: 2, maxUnavailable: 0 } });
    assert.ok(!names(p.drain).includes(a!.metadata.name), 'the blocked machine waits');
    assert.ok(!names(p.surgeFor).includes(a!.metadata.name), 'a has its successor already');
  });

  it('a successor made from an older template waits until the machine it replaces is gone', () => {
    const a = machine();
    const s = machine({ version: { kubernetesVersion: 'v1.35.9' }, replaces: a.metadata.name });
    const p = plan([a, machine({ version: NEW }), machine({ version: NEW }), s]);
    assert.deepEqual(names(p.candidates), [a.metadata.name]);
    assert.deepEqual(names(p.drain), [a.metadata.name]);
  });
});
