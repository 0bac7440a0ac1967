import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Alert } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import { alertmanagerPayload, labelSetString, payloadFor, slackPayload, ZERO_TIME } from './payload.js';

function alert(state: 'firing' | 'resolved'): Alert {
  return {
    apiVersion: API_VERSION,
    kind: 'Alert',
    metadata: { name: 'node-condition-unhealthy-0123456789abcdef', project: 'team-a', creationTimestamp: '2030-01-01T00:00:00Z' },
    spec: {
      rule: 'NodeConditionUnhealthy',
      severity: 'warning',
      cluster: 'demo',
      labels: { node: 'w-1', condition: 'Ready' },
      annotations: { summary: 'Node w-1 is NotReady', description: 'kubelet stopped posting status 2m ago' },
    },
    status: {
      state,
      startsAt: '2030-01-01T00:00:05.000Z',
      ...(state === 'resolved' ? { endsAt: '2030-01-01T00:10:00.000Z' } : {}),
      lastEvaluatedAt: '2030-01-01T00:00:05.000Z',
      fingerprint: '0123456789abcdef',
      notifications: [],
    },
  } as Alert;
}

test('the webhook body is an Alertmanager version 4 payload', () => {
  const p = alertmanagerPayload(alert('firing'), 'firing', { receiver: 'oncall', externalURL: 'https://marina.example/' });
  assert.deepEqual(Object.keys(p).sort(), [
    'alerts', 'commonAnnotations', 'commonLabels', 'externalURL', 'groupKey', 'groupLabels', 'receiver', 'status', 'truncatedAlerts', 'version',
  ]);
  assert.equal(p.version, '4');
  assert.equal(p.status, 'firing');
  assert.equal(p.receiver, 'oncall');
  assert.equal(p.truncatedAlerts, 0);
  assert.equal(p.externalURL, 'https://marina.example/');
  const labels = { alertname: 'NodeConditionUnhealthy', cluster: 'demo', condition: 'Ready', node: 'w-1', project: 'team-a', severity: 'warning' };
  assert.deepEqual(p.commonLabels, labels);
  assert.deepEqual(p.groupLabels, { alertname: 'NodeConditionUnhealthy', cluster: 'demo', condition: 'Ready', node: 'w-1', project: 'team-a' });
  assert.deepEqual(p.commonAnnotations, { summary: 'Node w-1 is NotReady', description: 'kubelet stopped posting status 2m ago' });
  assert.equal(p.groupKey, '{}/{project="team-a"}:{alertname="NodeConditionUnhealthy", cluster="demo", condition="Ready", node="w-1", project="team-a"}');
  assert.equal(p.alerts.length, 1);
  assert.deepEqual(p.alerts[0], {
    status: 'firing',
    labels,
    annotations: { summary: 'Node w-1 is NotReady', description: 'kubelet stopped posting status 2m ago' },
    startsAt: '2030-01-01T00:00:05.000Z',
    endsAt: ZERO_TIME,
    generatorURL: 'https://marina.example/api/v1alpha1/projects/team-a/alerts/node-condition-unhealthy-0123456789abcdef',
    fingerprint: '0123456789abcdef',
  });
});

test('a resolved payload carries endsAt and the same groupKey', () => {
  const firing = alertmanagerPayload(alert('firing'), 'firing', { receiver: 'r' });
  const resolved = alertmanagerPayload(alert('resolved'), 'resolved', { receiver: 'r' });
  assert.equal(resolved.status, 'resolved');
  assert.equal(resolved.alerts[0]!.status, 'resolved');
  assert.equal(resolved.alerts[0]!.endsAt, '2030-01-01T00:10:00.000Z');
  assert.equal(resolved.groupKey, firing.groupKey);
  assert.equal(resolved.alerts[0]!.generatorURL, '', 'no backlink without an external URL');
  assert.equal(resolved.externalURL, '');
});

test('label sets print like Prometheus', () => {
  assert.equal(labelSetString({ b: '2', a: 'x"y' }), '{a="x\\"y", b="2"}');
});

test('the slack body has text and one coloured attachment', () => {
  const firing = slackPayload(alert('firing'), 'firing', { receiver: 's', externalURL: 'https://m' });
  assert.equal(firing.text, '[FIRING:warning] NodeConditionUnhealthy (team-a/demo): Node w-1 is NotReady');
  assert.equal(firing.attachments.length, 1);
  const a = firing.attachments[0]!;
  assert.equal(a.color, 'warning');
  assert.equal(a.text, 'kubelet stopped posting status 2m ago');
  assert.ok(a.title_link?.endsWith('/alerts/node-condition-unhealthy-0123456789abcdef'));
  assert.deepEqual(a.fields.find((f) => f.title === 'Labels'), { title: 'Labels', value: 'node=w-1, condition=Ready', short: false });
  const resolved = slackPayload(alert('resolved'), 'resolved', { receiver: 's' });
  assert.match(resolved.text, /^\[RESOLVED\] NodeConditionUnhealthy/);
  assert.equal(resolved.attachments[0]!.color, 'good');
  assert.ok(resolved.attachments[0]!.fields.some((f) => f.title === 'Resolved' && f.value === '2030-01-01T00:10:00.000Z'));
  assert.ok('attachments' in (payloadFor('slack', alert('firing'), 'firing', { receiver: 's' }) as object));
  assert.equal((payloadFor('webhook', alert('firing'), 'firing', { receiver: 's' }) as { version: string }).version, '4');
});
