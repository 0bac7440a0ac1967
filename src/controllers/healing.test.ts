import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Machine, NodePool, NodePoolSpec } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { Condition } from '../api/meta.js';
import { planHealing } from './healing.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

function pool(replicas: number, roles: NodePoolSpec['roles'] = ['worker'], healing?: NodePoolSpec['healing']): NodePool {
  return {
    apiVersion: API_VERSION,
    kind: 'NodePool',
    metadata: { name: 'c-w', project: 'p' },
    spec: { cluster: 'c', roles, replicas, kubernetesVersion: 'v1.36.3', provider: 'local', ...(healing ? { healing } : {}) },
  };
}

type State = 'healthy' | 'failed' | { unhealthyFor: number; reason?: string } | { bootingFor: number } | 'pending';

let n = 0;
function machine(state: State): Machine {
  const cond = (type: string, status: string, reason: string, since: number): Condition =>
    ({ type, status, reason, message: reason, lastTransitionTime: ago(since) }) as Condition;
  const conditions: Condition[] = [];
  let phase: NonNullable<Machine['status']>['phase'] = 'Running';
  if (state === 'healthy') conditions.push(cond('Bootstrapped', 'True', 'Started', 600), cond('Healthy', 'True', 'Healthy', 500));
  else if (state === 'failed') {
    phase = 'Failed';
    conditions.push(cond('Bootstrapped', 'True', 'Started', 600), cond('Healthy', 'False', 'MachineFailed', 1));
  } else if (state === 'pending') phase = 'Pending';
  else if ('unhealthyFor' in state) conditions.push(cond('Bootstrapped', 'True', 'Started', 600), cond('Healthy', 'False', state.reason ?? 'AgentUnreachable', state.unhealthyFor));
  else {
    phase = 'Provisioning';
    conditions.push(cond('Bootstrapped', 'True', 'Started', state.bootingFor), cond('Healthy', 'Unknown', 'Provisioning', state.bootingFor));
  }
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name: `m${++n}`, project: 'p', creationTimestamp: ago(700) },
    spec: { cluster: 'c', pool: 'w', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.36.3' },
    status: { phase, conditions, ...(phase === 'Running' ? { nodeReady: state === 'healthy' } : {}) },
  };
}

describe('planHealing', () => {
  it('replaces a failed machine at once and leaves healthy ones alone', () => {
    const ms = [machine('healthy'), machine('failed'), machine('healthy')];
    const plan = planHealing(pool(3), ms, NOW);
    assert.deepEqual(plan.victims.map((v) => v.machine.metadata.name), [ms[1]!.metadata.name]);
    assert.equal(plan.victims[0]!.reason, 'MachineFailed');
    assert.equal(plan.heldBack.length, 0);
  });

  it('waits for the unhealthy timeout and says when to look again', () => {
    const ms = [machine('healthy'), machine({ unhealthyFor: 20 })];
    const plan = planHealing(pool(2, ['worker'], { unhealthyTimeoutSeconds: 60 }), ms, NOW);
    assert.equal(plan.victims.length, 0);
    assert.equal(plan.nextCheckAtMs, NOW + 40_000);
    const later = planHealing(pool(2, ['worker'], { unhealthyTimeoutSeconds: 60 }), ms, NOW + 40_000);
    assert.equal(later.victims.length, 1);
    assert.equal(later.victims[0]!.reason, 'Unhealthy');
  });

  it('a 40% guard on 5 machines replaces 2 of 3 failures and holds the third back', () => {
    const ms = [machine('healthy'), machine('healthy'), machine('failed'), machine('failed'), machine('failed')];
    const plan = planHealing(pool(5, ['worker'], { maxInFlight: '40%' }), ms, NOW);
    assert.equal(plan.budget, 2);
    assert.equal(plan.victims.length, 2);
    assert.equal(plan.heldBack.length, 1);
    assert.equal(plan.heldReason, 'MaxInFlight');
    // Next pass: the two victims are being deleted (not active); their replacements boot.
    const next = [ms[0]!, ms[1]!, ms[4]!, machine({ bootingFor: 5 }), machine({ bootingFor: 5 })];
    const plan2 = planHealing(pool(5, ['worker'], { maxInFlight: '40%' }), next, NOW);
    assert.equal(plan2.inFlight, 2);
    assert.equal(plan2.victims.length, 0, 'the third waits while two replacements are in flight');
    assert.equal(plan2.heldBack.length, 1);
    // Replacements healthy: the third goes.
    const done = [ms[0]!, ms[1]!, ms[4]!, machine('healthy'), machine('healthy')];
    const plan3 = planHealing(pool(5, ['worker'], { maxInFlight: '40%' }), done, NOW);
    assert.equal(plan3.victims.length, 1);
    assert.equal(plan3.heldBack.length, 0);
  });

  it('more machines unreachable at once than the guard allows look like a partition: none replaced, confirmed failures still are', () => {
    const ms = [machine('healthy'), machine({ unhealthyFor: 90 }), machine({ unhealthyFor: 90 }), machine({ unhealthyFor: 90 }), machine('failed')];
    const plan = planHealing(pool(5, ['worker'], { maxInFlight: '40%' }), ms, NOW);
    assert.equal(plan.heldReason, 'TooManyUnhealthy');
    assert.deepEqual(plan.victims.map((v) => v.reason), ['MachineFailed']);
    assert.equal(plan.heldBack.length, 3);
    assert.match(plan.heldMessage ?? '', /partition/);
    // Within the guard, unreachable machines are replaced as usual.
    const two = planHealing(pool(5, ['worker'], { maxInFlight: '40%' }), [machine('healthy'), machine('healthy'), machine('healthy'), machine({ unhealthyFor: 90 }), machine({ unhealthyFor: 90 })], NOW);
    assert.equal(two.victims.length, 2);
    assert.equal(two.heldReason, undefined);
    // The machines of a partition turn unhealthy one reconcile after another: the first one past
    // its timeout is not replaced alone while the others are still within theirs.
    const staggered = planHealing(
      pool(4, ['worker'], { maxInFlight: 1, unhealthyTimeoutSeconds: 60 }),
      [machine({ unhealthyFor: 60 }), machine({ unhealthyFor: 59.5 }), machine({ unhealthyFor: 59.5 }), machine('healthy')],
      NOW,
    );
    assert.equal(staggered.heldReason, 'TooManyUnhealthy');
    assert.deepEqual(staggered.victims, []);
  });

  it('believes the newest health pass over a Healthy condition that has not caught up yet', () => {
    // Two machines were unreachable; the newest pass reached one of them again, whose condition is
    // still False: replacing the other alone would be a partition healed half-way.
    const ms = [machine({ unhealthyFor: 90 }), machine({ unhealthyFor: 90 }), machine('healthy'), machine('healthy')];
    const plan = planHealing(pool(4, ['worker'], { maxInFlight: 1 }), ms, NOW, { fineNow: new Set([ms[0]!.metadata.name]) });
    assert.deepEqual(plan.victims.map((v) => v.machine.metadata.name), [ms[1]!.metadata.name]);
    const both = planHealing(pool(4, ['worker'], { maxInFlight: 1 }), ms, NOW, { fineNow: new Set([ms[0]!.metadata.name, ms[1]!.metadata.name]) });
    assert.deepEqual(both.victims, []);
    assert.equal(both.heldBack.length, 0);
  });

  it('replaces nothing for being unreachable while no machine of the cluster answers, not even a lone control plane', () => {
    const lone = [machine({ unhealthyFor: 90 })];
    const plan = planHealing(pool(1, ['controlplane']), lone, NOW, { clusterUnreachable: true });
    assert.deepEqual(plan.victims, []);
    assert.equal(plan.heldReason, 'TooManyUnhealthy');
    assert.match(plan.heldMessage ?? '', /no machine of the cluster answers/);
    // A failure the provider confirms is still replaced.
    assert.equal(planHealing(pool(1, ['controlplane']), [machine('failed')], NOW, { clusterUnreachable: true }).victims.length, 1);
  });

  it('etcd and controlplane pools replace one machine at a time whatever the guard says', () => {
    const ms = [machine('failed'), machine('failed'), machine('healthy')];
    const plan = planHealing(pool(3, ['etcd']), ms, NOW);
    assert.equal(plan.budget, 1);
    assert.equal(plan.victims.length, 1);
    assert.equal(plan.heldBack.length, 1);
  });

  it('replaces a machine that does not come up within the startup timeout, never one still gated', () => {
    const ms = [machine({ bootingFor: 700 }), machine('pending'), machine({ bootingFor: 10 })];
    const plan = planHealing(pool(3, ['worker'], { startupTimeoutSeconds: 600, maxInFlight: 3 }), ms, NOW);
    assert.deepEqual(plan.victims.map((v) => v.reason), ['StartupTimeout']);
    assert.equal(plan.victims[0]!.machine.metadata.name, ms[0]!.metadata.name);
    assert.equal(plan.nextCheckAtMs, NOW + 590_000);
  });

  it('a disabled policy holds every candidate back', () => {
    const plan = planHealing(pool(2, ['worker'], { enabled: false }), [machine('failed'), machine('healthy')], NOW);
    assert.equal(plan.victims.length, 0);
    assert.equal(plan.heldBack.length, 1);
    assert.equal(plan.heldReason, 'HealingDisabled');
  });

  it('holds healing back while a scale-out is still booting machines', () => {
    const ms = [machine('healthy'), machine('failed'), machine({ bootingFor: 5 }), machine({ bootingFor: 5 }), machine({ bootingFor: 5 })];
    const plan = planHealing(pool(5, ['worker'], { maxInFlight: 2 }), ms, NOW);
    assert.equal(plan.inFlight, 3);
    assert.equal(plan.victims.length, 0);
    assert.equal(plan.heldBack.length, 1);
  });
});
