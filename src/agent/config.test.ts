import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfigError, isLabelKey, loadAgentConfig, validateAgentConfig } from './config.js';

const valid = () => ({
  machine: 'c1-worker-0',
  nodeName: 'c1-worker-0',
  address: '127.0.10.3',
  dataDir: '/var/lib/marina/machines/c1-worker-0',
  agentPort: 7070,
  roles: ['worker'],
  processes: [
    {
      name: 'etcd',
      command: '/opt/bin/etcd',
      args: ['--name=e0'],
      env: { GOMAXPROCS: '1' },
      readyUrl: 'https://127.0.10.3:2379/health',
      tls: { ca: '/pki/ca.crt', cert: '/pki/c.crt', key: '/pki/c.key' },
    },
  ],
  kubelet: {
    kubeconfigPath: '/pki/kubelet.kubeconfig',
    labels: { 'marina.dev/pool': 'workers', 'node-role.kubernetes.io/worker': '' },
    taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }],
    capacity: { cpu: '4', memory: '8Gi', pods: '110' },
    kubeletVersion: 'v1.36.3',
    podCIDR: '10.244.1.0/24',
  },
});

function problems(raw: unknown): string[] {
  try {
    validateAgentConfig(raw);
  } catch (err) {
    assert.ok(err instanceof AgentConfigError);
    return err.problems;
  }
  return [];
}

test('a complete config validates and comes back typed', () => {
  const c = validateAgentConfig(valid());
  assert.equal(c.kubelet?.capacity.pods, '110');
  assert.equal(c.processes[0]?.tls?.ca, '/pki/ca.crt');
  assert.deepEqual(problems({ ...valid(), processes: [], kubelet: undefined }), []);
  assert.deepEqual(validateAgentConfig({ ...valid(), loopbackRelayPorts: [10257, 10259] }).loopbackRelayPorts, [10257, 10259]);
});

test('every problem is reported with its field path', () => {
  const bad = valid() as Record<string, unknown>;
  bad.address = 'localhost';
  bad.agentPort = 70000;
  bad.dataDir = 'relative/dir';
  bad.extra = 1;
  bad.loopbackRelayPorts = [10257, 10257];
  const p0 = (bad.processes as Record<string, unknown>[])[0]!;
  p0.readyUrl = 'ftp://x';
  p0.command = 'etcd';
  (bad.processes as unknown[]).push({ name: 'etcd', command: '/x', args: 'no' });
  const k = bad.kubelet as Record<string, unknown>;
  k.capacity = { cpu: 'lots', memory: '8Gi', pods: '1.5' };
  k.taints = [{ key: 'a', effect: 'Sometimes' }];
  k.labels = { 'bad key!': 'x', ok: 'not ok value!' };
  k.podCIDR = '10.244.1.1/24';
  const got = problems(bad);
  const expect = [
    'extra: unknown field',
    'address: must be an IP address',
    'dataDir: must be an absolute path',
    'agentPort: must be an integer from 1 to 65535',
    'loopbackRelayPorts: must be an array of distinct port numbers',
    'processes[0].command: must be an absolute path',
    'processes[0].readyUrl: must be an http:// or https:// URL',
    'processes[1].name: duplicate process name "etcd"',
    'processes[1].args: must be an array of strings',
    'kubelet.labels["bad key!"]: invalid label key',
    'kubelet.labels["ok"]: invalid label value',
    'kubelet.taints[0].effect: must be NoSchedule, PreferNoSchedule or NoExecute',
    'kubelet.capacity.cpu: must be a Kubernetes quantity',
    'kubelet.capacity.pods: must be a whole number',
    'kubelet.podCIDR: 10.244.1.1/24 has host bits set',
  ];
  for (const e of expect) assert.ok(got.some((g) => g.startsWith(e)), `missing problem ${JSON.stringify(e)} in:\n${got.join('\n')}`);
});

test('missing required fields and wrong root types', () => {
  assert.deepEqual(problems(null), ['<root>: must be a JSON object']);
  const got = problems({});
  for (const f of ['machine', 'nodeName', 'address', 'dataDir']) assert.ok(got.some((g) => g.startsWith(`${f}:`)), f);
  assert.ok(got.includes('agentPort: must be an integer from 1 to 65535'));
  assert.ok(got.includes('processes: must be an array (may be empty)'));
  assert.ok(problems({ ...valid(), processes: [{ name: 'agent', command: '/x', args: [] }] }).some((g) => g.includes('reserved')));
});

test('isLabelKey follows Kubernetes label key rules', () => {
  for (const k of ['app', 'node-role.kubernetes.io/worker', 'marina.dev/pool', 'a.b/c_d.e-f']) assert.ok(isLabelKey(k), k);
  for (const k of ['', '-a', 'a/', 'UPPER.dev/x', `${'x'.repeat(64)}`, 'a/b/c!']) assert.ok(!isLabelKey(k), k);
});

test('loadAgentConfig names the file in its errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'agentcfg-'));
  try {
    const path = join(dir, 'agent.json');
    await writeFile(path, '{ not json');
    await assert.rejects(loadAgentConfig(path), (e: Error) => e instanceof AgentConfigError && e.message.includes(path) && /not valid JSON/.test(e.message));
    await writeFile(path, JSON.stringify(valid()));
    assert.equal((await loadAgentConfig(path)).machine, 'c1-worker-0');
    await assert.rejects(loadAgentConfig(join(dir, 'missing.json')), /cannot read/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
