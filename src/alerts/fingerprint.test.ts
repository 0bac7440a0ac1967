import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DNS1123_LABEL, NAME_MAX } from '../api/meta.js';
import { alertName, fingerprint, identityLabels, kebab } from './fingerprint.js';

test('the fingerprint ignores label order and is 16 hex digits', () => {
  const a = fingerprint({ project: 'p', cluster: 'c', rule: 'NodeConditionUnhealthy', labels: { node: 'w1', condition: 'Ready' } });
  const b = fingerprint({ project: 'p', cluster: 'c', rule: 'NodeConditionUnhealthy', labels: { condition: 'Ready', node: 'w1' } });
  assert.equal(a, b);
  assert.match(a, /^[0-9a-f]{16}$/);
});

test('rule, project, cluster and every label value are part of the identity', () => {
  const base = { project: 'p', cluster: 'c', rule: 'ComponentUnhealthy', labels: { component: 'etcd' } };
  const fps = new Set([
    fingerprint(base),
    fingerprint({ ...base, rule: 'NodeProvisioningSlow' }),
    fingerprint({ ...base, project: 'q' }),
    fingerprint({ ...base, cluster: 'd' }),
    fingerprint({ ...base, cluster: undefined }),
    fingerprint({ ...base, labels: { component: 'kube-apiserver' } }),
    fingerprint({ ...base, labels: { component: 'etcd', member: 'e1' } }),
    // Separators keep ("a","bc") and ("ab","c") apart.
    fingerprint({ ...base, labels: { a: 'bc' } }),
    fingerprint({ ...base, labels: { ab: 'c' } }),
  ]);
  assert.equal(fps.size, 9);
});

test('identity labels carry alertname, project and cluster, sorted', () => {
  assert.deepEqual(Object.entries(identityLabels({ project: 'p', cluster: 'c', rule: 'HealingHeldBack', labels: { pool: 'workers' } })), [
    ['alertname', 'HealingHeldBack'],
    ['cluster', 'c'],
    ['pool', 'workers'],
    ['project', 'p'],
  ]);
  assert.deepEqual(identityLabels({ project: 'p', rule: 'X' }), { alertname: 'X', project: 'p' });
});

test('names are stable DNS labels: <rule-kebab>-<fingerprint>', () => {
  assert.equal(kebab('NodeProvisioningSlow'), 'node-provisioning-slow');
  assert.equal(kebab('HTTPProbeFailed'), 'http-probe-failed');
  assert.equal(kebab('Etcd3Down'), 'etcd3-down');
  const fp = fingerprint({ project: 'p', rule: 'CertificateNearExpiry' });
  assert.equal(alertName('CertificateNearExpiry', fp), `certificate-near-expiry-${fp}`);
  const long = alertName('A'.repeat(63), fp);
  assert.ok(long.length <= NAME_MAX, long);
  assert.match(long, new RegExp(DNS1123_LABEL));
  assert.ok(long.endsWith(`-${fp}`));
  const mixed = alertName('ThisIsAVeryLongRuleNameThatKeepsGoingOnAndOnForever', fp);
  assert.ok(mixed.length <= NAME_MAX && new RegExp(DNS1123_LABEL).test(mixed), mixed);
});
