// `marina alerts` and `marina channel` against an API on 127.0.0.1 (no controllers: alerts are seeded).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { startTestApi, type TestApi } from '../support/api.js';

const BIN = join(fileURLToPath(new URL('../../../', import.meta.url)), 'bin', 'marina.js');
let api: TestApi;
let url = '';
let tmp = '';

function marina(user: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, HOME: tmp, MARINA_CONFIG: join(tmp, 'config.yaml'), MARINA_URL: url, MARINA_TOKEN: api.tokens[user], MARINA_PROJECT: 'alpha' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function alert(name: string, rule: string, state: 'firing' | 'resolved', startsAt: string, extra: Record<string, unknown> = {}): Resource {
  return {
    apiVersion: API_VERSION,
    kind: 'Alert',
    metadata: { name, project: 'alpha' },
    spec: { rule, severity: 'warning', cluster: 'demo', labels: {}, annotations: { summary: `${rule} summary` } },
    status: { state, startsAt, ...(state === 'resolved' ? { endsAt: new Date().toISOString() } : {}), ...extra },
  };
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'marina-alerts-cli-'));
  api = await startTestApi();
  url = await api.app.listen({ host: '127.0.0.1', port: 0 });
  const old = new Date(Date.now() - 3_600_000).toISOString();
  await api.store.create(alert('node-down-1', 'NodeConditionUnhealthy', 'firing', old));
  await api.store.create(alert('slow-1', 'ClusterProvisioningSlow', 'resolved', old));
  await api.store.create(alert('held-1', 'HealingHeldBack', 'firing', new Date().toISOString()));
});

after(async () => {
  await api?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('marina alerts / channel', () => {
  it('lists alerts, firing first, with the documented columns', async () => {
    const r = await marina('viewer', ['alerts']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.deepEqual(lines[0]!.split(/\s{2,}/), ['NAME', 'CLUSTER', 'RULE', 'SEVERITY', 'STATE', 'STARTED', 'ENDED', 'SUMMARY']);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/)[0]), ['held-1', 'node-down-1', 'slow-1']);
    assert.match(lines[2]!, /node-down-1\s+demo\s+NodeConditionUnhealthy\s+warning\s+firing\s+6\dm ago\s+-\s+NodeConditionUnhealthy summary/);
    assert.match(lines[3]!, /resolved\s+6\dm ago\s+\d+s ago/);
  });

  it('filters by state and prints JSON', async () => {
    const r = await marina('viewer', ['alerts', '--state', 'resolved', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).items.map((a: Resource) => a.metadata.name), ['slow-1']);
    assert.equal((await marina('viewer', ['alerts', '--state', 'bogus'])).code, 2);
    const none = await marina('viewer', ['alerts', '--rule', 'CertificateNearExpiry']);
    assert.equal(none.code, 0);
    assert.match(none.stderr, /No alerts found in project alpha/);
  });

  it('creates, lists and deletes channels; bad input exits 5 naming the field', async () => {
    const created = await marina('admin', ['channel', 'create', 'oncall', '--type', 'slack', '--url', 'https://hooks.slack.com/services/T/B/SECRET', '--rule', 'HealingHeldBack', '--min-severity', 'warning']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /notificationchannel\/oncall created in project alpha/);
    const stored = (await api.store.get({ kind: 'NotificationChannel', project: 'alpha', name: 'oncall' }))!;
    assert.deepEqual(stored.spec, { type: 'slack', url: 'https://hooks.slack.com/services/T/B/SECRET', rules: ['HealingHeldBack'], minSeverity: 'warning' });

    const bad = await marina('admin', ['channel', 'create', 'broken', '--type', 'webhook', '--url', 'ftp://x/y']);
    assert.equal(bad.code, 5, bad.stdout);
    assert.match(bad.stderr, /spec\.url: must be an http or https URL/);
    assert.equal((await marina('admin', ['channel', 'create', 'x', '--url', 'http://a'])).code, 2, '--type is required');
    assert.equal((await marina('member', ['channel', 'create', 'y', '--type', 'webhook', '--url', 'http://a'])).code, 6, 'admins only');

    const list = await marina('member', ['channel', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME\s+TYPE\s+ENDPOINT\s+RULES\s+MIN-SEVERITY\s+RESOLVED\s+DELIVERED\s+FAILED\s+AGE/);
    assert.match(list.stdout, /oncall\s+slack\s+https:\/\/hooks\.slack\.com\/\.\.\.\s+HealingHeldBack\s+warning\s+yes\s+0\s+0/);
    assert.doesNotMatch(list.stdout, /SECRET/, 'the table does not show the URL path');

    const del = await marina('admin', ['channel', 'delete', 'oncall']);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /notificationchannel\/oncall deleted/);
    assert.equal((await marina('admin', ['get', 'channels', '-o', 'name'])).stdout, '');
  });
});
