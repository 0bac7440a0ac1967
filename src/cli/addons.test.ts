import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Addon, AddonDefinition } from '../api/addons.js';
import { addonSettled, addonTable, applySet, catalogTable, describeAddon, newestVersion, parseValuesFile } from './addons.js';
import { CliError } from './errors.js';

const def = (addon: string, version: string): AddonDefinition =>
  ({ apiVersion: 'marina.dev/v1alpha1', kind: 'AddonDefinition', metadata: { name: `${addon}-v${version}` }, spec: { addon, version, description: `the ${addon}`, namespace: 'kube-system', manifests: [] } }) as unknown as AddonDefinition;

const addon = (status: Addon['status'], generation = 1): Addon => ({
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Addon',
  metadata: { name: 'demo-coredns', project: 'p', generation, creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { cluster: 'demo', addon: 'coredns', version: '1.12.0', values: { replicas: 3 } },
  status,
});

test('--set reads YAML values into nested keys; malformed ones are usage errors', () => {
  let v = applySet({}, 'replicas=3');
  v = applySet(v, 'output.host=logs.example');
  v = applySet(v, 'output.tls=true');
  v = applySet(v, 'names=[a, b]');
  assert.deepEqual(v, { replicas: 3, output: { host: 'logs.example', tls: true }, names: ['a', 'b'] });
  assert.throws(() => applySet({}, 'novalue'), CliError);
  assert.throws(() => applySet({}, 'a..b=1'), CliError);
  assert.deepEqual(parseValuesFile('replicas: 2\n', 'v.yaml'), { replicas: 2 });
  assert.throws(() => parseValuesFile('- a\n', 'v.yaml'), /must be a mapping/);
});

test('the newest catalog version by semver, or the add-ons that exist', () => {
  assert.equal(newestVersion([def('fb', '3.1.9'), def('fb', '3.10.0'), def('fb', '3.2.4')], 'fb'), '3.10.0');
  assert.throws(() => newestVersion([def('fb', '1.0.0')], 'x'), /available: fb/);
});

test('tables and the description show versions, conditions, drift and objects', () => {
  const now = Date.parse('2026-01-01T00:10:00Z');
  const a = addon({
    observedGeneration: 1,
    appliedVersion: '1.11.0',
    driftCorrections: 2,
    lastDriftCorrection: { at: '2026-01-01T00:05:00Z', objects: ['ConfigMap kube-system/coredns (deleted)'] },
    conditions: [
      { type: 'Applied', status: 'True', reason: 'Applied' },
      { type: 'Healthy', status: 'False', reason: 'RollingOut', message: 'Deployment kube-system/coredns: 1/2 replicas available' },
    ],
    unhealthy: ['Deployment kube-system/coredns: 1/2 replicas available'],
    inventory: [{ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system', name: 'coredns' }],
  });
  const table = addonTable([a], now);
  assert.match(table, /^CLUSTER\s+ADDON\s+VERSION\s+APPLIED\s+HEALTHY\s+DRIFT\s+NAME\s+AGE\n/);
  assert.match(table, /demo\s+coredns\s+1\.11\.0→1\.12\.0\s+True\s+False \(RollingOut\)\s+2\s+demo-coredns\s+10m/);
  const text = describeAddon(a, def('coredns', '1.12.0'), now);
  assert.match(text, /Drift Corrections:\s+2 \(last 2026-01-01T00:05:00Z: ConfigMap kube-system\/coredns \(deleted\)\)/);
  assert.match(text, /Unhealthy:\n  Deployment kube-system\/coredns: 1\/2 replicas available/);
  assert.match(text, /replicas: 3/);
  assert.match(text, /ConfigMap\s+kube-system\s+coredns/);
  assert.match(catalogTable([def('coredns', '1.12.0'), def('fb', '3.1.9'), def('fb', '3.2.4')], { spec: { defaults: [{ addon: 'coredns' }] } } as never), /fb\s+3\.2\.4,3\.1\.9\s+kube-system\s+no/);
});

test('settled: the spec observed, applied at the spec\'s version and healthy', () => {
  const ok = { observedGeneration: 2, appliedVersion: '1.12.0', conditions: [{ type: 'Applied', status: 'True' as const }, { type: 'Healthy', status: 'True' as const }] };
  assert.ok(addonSettled(addon(ok, 2)));
  assert.ok(!addonSettled(addon(ok, 3)), 'a newer spec is not observed yet');
  assert.ok(!addonSettled(addon({ ...ok, appliedVersion: '1.11.0' }, 2)));
});
