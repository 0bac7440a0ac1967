import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Cluster } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { Operation } from '../api/operations.js';
import { upgradeProblem } from '../api/versions.js';
import { openSqliteStore } from '../store/sqlite.js';
import { typed } from '../store/typed.js';
import { CertificateRenewal, renewalDueAt, renewalName } from './renewal.js';

const DAY = 86_400_000;
const ctx = { signal: new AbortController().signal, log: pino({ level: 'silent' }) };

function cluster(leafEnds: string, renewalDays?: number): Cluster {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: 'c', project: 'p' },
    spec: { nodePools: [{ name: 'e', roles: ['etcd', 'controlplane', 'worker'], replicas: 1 }], ...(renewalDays ? { certificateRenewalDays: renewalDays } : {}) },
    status: {
      phase: 'Ready',
      certificates: [
        { name: 'ca', notAfter: '2036-01-01T00:00:00.000Z' },
        { name: 'admin', notAfter: '2027-12-01T00:00:00.000Z' },
        { name: 'pool/e', notAfter: leafEnds },
      ],
    },
  };
}

test('renewal: due renewalDays (default 30) before the earliest leaf ends; CAs do not count', () => {
  assert.equal(renewalDueAt(cluster('2027-06-30T00:00:00.000Z')), Date.parse('2027-06-30T00:00:00.000Z') - 30 * DAY);
  assert.equal(renewalDueAt(cluster('2027-06-30T00:00:00.000Z', 90)), Date.parse('2027-06-30T00:00:00.000Z') - 90 * DAY);
  assert.equal(renewalName('c', '2027-06-30T00:00:00.000Z'), 'c-renew-20270630');
});

test('renewal: one RotateCertificates per expiry, requested by Marina, none while another disruptive operation runs', async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  try {
    const clusters = typed(store, 'Cluster');
    const ops = typed(store, 'Operation');
    const c = await clusters.create(cluster('2027-06-30T00:00:00.000Z'));
    await clusters.updateStatus({ ...c, status: cluster('2027-06-30T00:00:00.000Z').status! });
    let now = Date.parse('2027-05-01T00:00:00.000Z');
    const renewal = new CertificateRenewal(store, () => now);
    const key = { kind: 'Cluster', project: 'p', name: 'c' };
    const early = await renewal.reconcile(key, ctx);
    assert.ok(early && 'requeueAfterMs' in early && early.requeueAfterMs! <= 3600_000, 'looks again later');
    assert.equal((await ops.list({ project: 'p' })).length, 0, 'not due yet');

    now = Date.parse('2027-06-15T00:00:00.000Z');
    const upgrade: Operation = { apiVersion: API_VERSION, kind: 'Operation', metadata: { name: 'u', project: 'p', labels: { 'marina.dev/cluster': 'c' } }, spec: { cluster: 'c', type: 'Upgrade', upgrade: { version: 'v1.36.3' } }, status: { phase: 'Running' } };
    await ops.create(upgrade);
    await renewal.reconcile(key, ctx);
    assert.deepEqual((await ops.list({ project: 'p' })).map((o) => o.metadata.name), ['u'], 'waits for the upgrade');

    const u = (await ops.get('p', 'u'))!;
    await ops.updateStatus({ ...u, status: { phase: 'Succeeded' } });
    await renewal.reconcile(key, ctx);
    await renewal.reconcile(key, ctx);
    const renewals = (await ops.list({ project: 'p' })).filter((o) => o.spec.type === 'RotateCertificates');
    assert.deepEqual(renewals.map((o) => [o.metadata.name, o.status?.requestedBy, o.spec.rotateCertificates]), [['c-renew-20270630', 'system:certificate-renewal', undefined]]);
  } finally {
    await store.close();
  }
});

test('upgrade skew: one minor at a time, no minor downgrade, patches either way', () => {
  assert.equal(upgradeProblem(['v1.35.4'], 'v1.36.3'), undefined);
  assert.equal(upgradeProblem(['v1.36.3'], 'v1.36.1'), undefined, 'a patch downgrade is allowed');
  assert.match(upgradeProblem(['v1.34.2', 'v1.35.4'], 'v1.36.3') ?? '', /one minor version at a time/);
  assert.match(upgradeProblem(['v1.36.3'], 'v1.35.4') ?? '', /minor downgrade/);
  assert.match(upgradeProblem(['v1.36.3'], 'v2.0.0') ?? '', /major/);
});
