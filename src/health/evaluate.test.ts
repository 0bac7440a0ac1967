import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveHealth } from '../api/healing-policy.js';
import type { Cluster, Machine } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import { healthAlerts, provisioningAlerts, sampleOf } from './evaluate.js';
import type { HealthReport } from './types.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

function cluster(phase: NonNullable<Cluster['status']>['phase'], createdSecondsAgo = 60, certificates: { name: string; notAfter: string }[] = []): Cluster {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: 'c', project: 'p', creationTimestamp: ago(createdSecondsAgo) },
    spec: { nodePools: [{ name: 'a', roles: ['etcd', 'controlplane', 'worker'], replicas: 1 }] },
    status: {
      phase,
      certificates,
      conditions: [{ type: 'Ready', status: phase === 'Ready' ? 'True' : 'False', reason: 'ControlPlaneReady:Unreachable', message: 'not ready: ControlPlaneReady', lastTransitionTime: ago(5) }],
    },
  };
}

function report(over: Partial<HealthReport> = {}): HealthReport {
  return { project: 'p', cluster: 'c', at: ago(0), durationMs: 12, healthy: true, checks: [], nodes: [], ...over };
}

describe('healthAlerts', () => {
  const policy = resolveHealth(undefined);

  it('a healthy report of a Ready cluster raises nothing', () => {
    assert.deepEqual(healthAlerts(report({ checks: [{ component: 'endpoint', ok: true, message: 'ok' }] }), cluster('Ready'), policy, NOW), []);
  });

  it('one alert per failing check and per Node problem, labelled so they deduplicate', () => {
    const alerts = healthAlerts(
      report({
        healthy: false,
        checks: [
          { component: 'agent', machine: 'w-1', ok: false, message: 'unreachable: ECONNREFUSED', reachable: false },
          { component: 'etcd', machine: 'e-1', ok: false, message: 'context deadline exceeded' },
          { component: 'agent', machine: 'w-2', ok: true, message: 'ok' },
        ],
        nodes: [{ name: 'w-1', ready: 'Unknown', problems: [{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown' }] }],
      }),
      cluster('Ready'),
      policy,
      NOW,
    );
    assert.deepEqual(
      alerts.map((a) => [a.rule, a.severity, a.labels]),
      [
        ['ComponentUnhealthy', 'warning', { component: 'agent', machine: 'w-1' }],
        ['ComponentUnhealthy', 'critical', { component: 'etcd', machine: 'e-1' }],
        ['NodeConditionUnhealthy', 'critical', { node: 'w-1', condition: 'Ready' }],
      ],
    );
    assert.match(alerts[0]!.description ?? '', /ECONNREFUSED/);
  });

  it('a Degraded cluster raises ClusterConditionUnhealthy per lost core condition, not for pools that scale', () => {
    const degraded = cluster('Degraded');
    degraded.status!.conditions!.push({ type: 'ControlPlaneReady', status: 'False', reason: 'Unreachable', message: 'connect ECONNREFUSED', lastTransitionTime: ago(5) });
    const alerts = healthAlerts(report(), degraded, policy, NOW);
    assert.deepEqual(alerts.map((a) => [a.rule, a.labels]), [['ClusterConditionUnhealthy', { condition: 'ControlPlaneReady' }]]);
    const scaling = cluster('Degraded');
    scaling.status!.conditions!.push({ type: 'PoolsReady', status: 'False', reason: 'Scaling', message: 'waiting for workers 2/3', lastTransitionTime: ago(5) });
    assert.deepEqual(healthAlerts(report(), scaling, policy, NOW), []);
  });

  it('certificates within the window raise CertificateNearExpiry, critical in the last week', () => {
    const day = 24 * 3600;
    const alerts = healthAlerts(
      report(),
      cluster('Ready', 60, [
        { name: 'ca', notAfter: ago(-3650 * day) },
        { name: 'admin', notAfter: ago(-20 * day) },
        { name: 'etcd-ca', notAfter: ago(-3 * day) },
      ]),
      policy,
      NOW,
    );
    assert.deepEqual(alerts.map((a) => [a.labels?.certificate, a.severity]), [['admin', 'warning'], ['etcd-ca', 'critical']]);
  });
});

describe('provisioningAlerts', () => {
  const policy = resolveHealth({ nodeProvisioningAlertSeconds: 300, clusterProvisioningAlertSeconds: 900 });
  const m = (name: string, createdAgo: number, phase: NonNullable<Machine['status']>['phase'], healthy?: string): Machine => ({
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project: 'p', creationTimestamp: ago(createdAgo) },
    spec: { cluster: 'c', pool: 'w', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.36.3' },
    status: {
      phase,
      conditions: [
        { type: 'Bootstrapped', status: 'False', reason: 'WaitingForControlPlane', message: 'kube-apiserver is not ready', lastTransitionTime: ago(createdAgo) },
        ...(healthy ? [{ type: 'Healthy', status: 'False' as const, reason: healthy, message: '', lastTransitionTime: ago(1) }] : []),
      ],
    },
  });

  it('flags machines that are not running after the threshold, with what they wait for', () => {
    const alerts = provisioningAlerts(cluster('Ready'), [m('slow', 400, 'Pending'), m('young', 100, 'Pending'), m('up', 400, 'Running'), m('was-up', 400, 'Provisioning', 'AgentUnreachable')], policy, NOW);
    assert.deepEqual(alerts.map((a) => [a.rule, a.labels?.machine]), [['NodeProvisioningSlow', 'slow']]);
    assert.match(alerts[0]!.description ?? '', /WaitingForControlPlane/);
  });

  it('flags a cluster that was never Ready after the threshold, not one that was', () => {
    assert.deepEqual(provisioningAlerts(cluster('Provisioning', 1000), [], policy, NOW).map((a) => a.rule), ['ClusterProvisioningSlow']);
    assert.deepEqual(provisioningAlerts(cluster('Provisioning', 100), [], policy, NOW), []);
    assert.deepEqual(provisioningAlerts(cluster('Degraded', 1000), [], policy, NOW), []);
  });
});

describe('sampleOf', () => {
  it('keeps the worst apiserver and etcd figures and per-machine usage', () => {
    const s = sampleOf(
      report({
        checks: [{ component: 'endpoint', ok: true, message: 'ok', latencyMs: 4 }],
        nodes: [{ name: 'a', ready: 'True', problems: [] }, { name: 'b', ready: 'False', problems: [{ type: 'Ready', status: 'False' }] }],
        metrics: {
          at: ago(0),
          etcd: [
            { machine: 'e1', hasLeader: true, isLeader: true, leaderChangesTotal: 1, dbSizeBytes: 100, walFsyncP99Seconds: 0.004 },
            { machine: 'e2', hasLeader: true, isLeader: false, leaderChangesTotal: 2, dbSizeBytes: 300 },
          ],
          apiservers: [{ machine: 'cp', requestP99Seconds: 0.0251, inflightRequests: 3 }],
          machines: [{ machine: 'w', cpuCores: 0.12345, rssBytes: 1000, diskUsedBytes: 5 }],
        },
      }),
    );
    assert.equal(s.endpointLatencyMs, 4);
    assert.equal(s.nodesReady, 1);
    assert.equal(s.nodesTotal, 2);
    assert.equal(s.etcdDbBytes, 300);
    assert.equal(s.etcdFsyncP99Ms, 4);
    assert.equal(s.etcdLeaderChanges, 2);
    assert.equal(s.apiserverP99Ms, 25.1);
    assert.equal(s.apiserverInflight, 3);
    assert.deepEqual(s.machines, { w: { cpuCores: 0.123, rssBytes: 1000, diskUsedBytes: 5 } });
  });
});
