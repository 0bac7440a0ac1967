// The machine agent's day-2 control endpoints over HTTP: the token is required, hold and release
// work by name and survive in held.json, a restore is refused while etcd runs and when the
// snapshot arrives with another checksum. (The full restore with etcdutl runs in test/e2e/day2.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MachineAgent } from '../../src/agent/agent.js';
import { findFreePort } from '../../src/proc/index.js';

describe('agent control endpoints', () => {
  let dir = '';
  let agent: MachineAgent | undefined;
  let base = '';
  const token = randomBytes(32).toString('hex');
  const call = (method: string, path: string, body?: string | Uint8Array, auth = token) =>
    fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: body as BodyInit } : {}) });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marina-agent-control-'));
    const port = await findFreePort('127.0.0.1');
    base = `http://127.0.0.1:${port}`;
    agent = new MachineAgent(
      {
        machine: 'm1',
        nodeName: 'm1',
        address: '127.0.0.1',
        dataDir: dir,
        agentPort: port,
        processes: [
          { name: 'etcd', command: '/bin/sleep', args: ['1000'] },
          { name: 'kube-apiserver', command: '/bin/sleep', args: ['1000'] },
        ],
        control: { token, etcdDataDir: join(dir, 'etcd'), etcdutl: '/bin/false' },
      },
      { log: pino({ level: 'silent' }) },
    );
    await agent.start();
  });
  after(async () => {
    await agent?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses calls without the token', async () => {
    const r = await call('POST', '/v1/services/hold', JSON.stringify({ names: ['etcd'] }), 'x'.repeat(64));
    assert.equal(r.status, 401);
    assert.equal((await (await fetch(`${base}/healthz`)).json() as { ok: boolean }).ok, true, 'nothing was held');
  });

  it('refuses a restore while etcd runs', async () => {
    const r = await call('PUT', `/v1/etcd/restore?id=r1&name=m1&initialCluster=m1=https://127.0.0.1:2380&peerURL=https://127.0.0.1:2380&token=t&sha256=${'0'.repeat(64)}`, 'x');
    assert.equal(r.status, 409);
    assert.match(((await r.json()) as { error: string }).error, /etcd is running: hold it first/);
  });

  it('holds and releases by name; held.json records it', async () => {
    const bad = await call('POST', '/v1/services/hold', JSON.stringify({ names: ['kubelet'] }));
    assert.equal(bad.status, 400);
    const held = await call('POST', '/v1/services/hold', JSON.stringify({ names: ['kube-apiserver', 'etcd'] }));
    assert.equal(held.status, 200);
    assert.deepEqual(((await held.json()) as { held: string[] }).held, ['etcd', 'kube-apiserver']);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'held.json'), 'utf8')), ['etcd', 'kube-apiserver']);
    assert.equal((await fetch(`${base}/healthz`)).status, 503, 'a machine with held services is not healthy');
  });

  it('refuses a snapshot whose checksum does not match', async () => {
    const body = randomBytes(1000);
    const wrong = createHash('sha256').update('other').digest('hex');
    const r = await call('PUT', `/v1/etcd/restore?id=r1&name=m1&initialCluster=m1=https://127.0.0.1:2380&peerURL=https://127.0.0.1:2380&token=t&sha256=${wrong}`, body);
    assert.equal(r.status, 422);
    assert.match(((await r.json()) as { error: string }).error, /arrived with SHA-256 \w+, expected/);
    const right = createHash('sha256').update(body).digest('hex');
    const failing = await call('PUT', `/v1/etcd/restore?id=r2&name=m1&initialCluster=m1=https://127.0.0.1:2380&peerURL=https://127.0.0.1:2380&token=t&sha256=${right}`, body);
    assert.equal(failing.status, 422, 'etcdutl (here /bin/false) failing is reported');
    assert.match(((await failing.json()) as { error: string }).error, /etcdutl snapshot restore failed/);
  });

  it('releases', async () => {
    const r = await call('POST', '/v1/services/release', JSON.stringify({ names: ['etcd', 'kube-apiserver'] }));
    assert.equal(r.status, 200);
    assert.deepEqual(((await r.json()) as { held: string[] }).held, []);
  });
});
