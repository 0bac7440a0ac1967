// Sandbox escapes fail, and Marina keeps serving while functions misbehave. Real bubblewrap,
// real cgroups (or the rlimit fallback), real processes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { loadOrCreateEncryptionKey } from '../../src/store/sqlite.js';
import { BASE, fnBody, startFnApi, waitFor, type FnApi } from './support.js';

let api: FnApi;
let listener: Server;
let port: number;

const ESCAPE = `
import fs from 'node:fs';
import net from 'node:net';
export default async function (e) {
  const files = {};
  for (const p of e.paths) { try { fs.readFileSync(p); files[p] = 'READ'; } catch (err) { files[p] = err.code; } }
  let signal;
  try { process.kill(e.pid, 'SIGTERM'); signal = 'sent'; } catch (err) { signal = err.code; }
  const connect = await new Promise((res) => {
    const s = net.connect(e.port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); res('connected'); });
    s.on('error', (err) => res(err.code));
  });
  return { files, env: { ...process.env }, signal, connect, uid: process.getuid(), pid: process.pid };
}`;

const FORK_BOMB = `
import { spawn } from 'node:child_process';
export default async function () {
  let started = 0, refused = 0;
  for (let i = 0; i < 300 && refused < 3; i++) {
    await new Promise((res) => {
      try {
        const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
        c.on('spawn', () => { started++; res(); });
        c.on('error', () => { refused++; res(); });
      } catch { refused++; res(); }
    });
  }
  return { started, refused };
}`;

before(async () => {
  api = await startFnApi();
  listener = createServer((s) => s.end());
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  port = (listener.address() as { port: number }).port;
  process.env.MARINA_TEST_SECRET_ENV = 'do-not-leak';
  const deploy = async (name: string, code: string, spec: Record<string, unknown> = {}) => {
    const res = await api.req(api.tokens.member, 'POST', `${BASE}/functions`, fnBody(name, code, spec));
    assert.equal(res.statusCode, 201, res.body);
  };
  await deploy('escape', ESCAPE);
  await deploy('forkbomb', FORK_BOMB, { limits: { timeoutSeconds: 20 } });
  await deploy('loop', 'export default () => { for (;;) {} }', { limits: { timeoutSeconds: 1 } });
  await deploy('hog-buffers', 'const keep = []; export default () => { for (;;) keep.push(Buffer.alloc(1 << 20, 1)); }', { limits: { memoryMiB: 64, timeoutSeconds: 20 } });
  await deploy('hog-heap', 'const keep = []; export default () => { for (;;) keep.push(new Array(1 << 16).fill(Math.random())); }', { limits: { memoryMiB: 64, timeoutSeconds: 20 } });
  await deploy('hello', 'export default (e) => ({ hello: e?.name ?? "world" })');
});
after(async () => {
  delete process.env.MARINA_TEST_SECRET_ENV;
  listener?.close();
  await api?.close();
});

const invoke = async (name: string, event: unknown = {}) => {
  const res = await api.req(api.tokens.member, 'POST', `${BASE}/functions/${name}/invoke`, event);
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as { activation: { outcome: string; error?: string; coldStart: boolean }; result: any };
};

describe('sandbox', () => {
  it("cannot read Marina's database, encryption key or environment, signal Marina, or reach its listener", async () => {
    loadOrCreateEncryptionKey(api.dir);
    const paths = [join(api.dir, 'marina.db'), join(api.dir, 'encryption.key'), `/proc/${process.pid}/environ`, '/etc/passwd', process.cwd()];
    const { activation, result } = await invoke('escape', { paths, pid: process.pid, port });
    assert.equal(activation.outcome, 'success', activation.error);
    for (const p of paths) assert.equal(result.files[p], 'ENOENT', `${p} must not exist in the sandbox`);
    assert.equal(result.env.MARINA_TEST_SECRET_ENV, undefined);
    assert.deepEqual(Object.keys(result.env).filter((k) => k !== 'PWD'), []);
    // Marina's pid does not exist in the sandbox's pid namespace (or belongs to another uid).
    assert.ok(['ESRCH', 'EPERM'].includes(result.signal), `kill gave ${result.signal}`);
    assert.equal(result.connect, 'ECONNREFUSED', 'the sandbox has its own network namespace');
    assert.notEqual(result.uid, 0);
    assert.ok(result.pid < 10, `pid ${result.pid} is from a fresh pid namespace`);
  });

  it('bounds a fork bomb, kills an infinite loop at its deadline and a memory hog at its limit, while Marina keeps serving', async () => {
    let serving = true;
    let helloOk = 0;
    const keepServing = (async () => {
      while (serving) {
        const [h, health] = await Promise.all([invoke('hello', { name: 'x' }), api.app.inject({ url: '/healthz' })]);
        assert.deepEqual(h.result, { hello: 'x' });
        assert.equal(health.statusCode, 200);
        helloOk++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const [bomb, loop, hogBuffers, hogHeap] = await Promise.all([invoke('forkbomb'), invoke('loop'), invoke('hog-buffers'), invoke('hog-heap')]);
    serving = false;
    await keepServing;
    assert.ok(helloOk > 0);

    // The pids limit refuses new tasks long before the host notices (or the instance dies trying).
    if (bomb.activation.outcome === 'success') {
      assert.ok(bomb.result.refused > 0, JSON.stringify(bomb.result));
      assert.ok(bomb.result.started < 64, JSON.stringify(bomb.result));
    } else {
      assert.equal(bomb.activation.outcome, 'crashed', bomb.activation.error);
    }
    assert.equal(loop.activation.outcome, 'timeout', loop.activation.error);
    assert.equal(hogBuffers.activation.outcome, 'oom', hogBuffers.activation.error);
    assert.equal(hogHeap.activation.outcome, 'oom', hogHeap.activation.error);
    // The killed instances are gone; the function works again with a fresh instance.
    await waitFor('the looping instance to be gone', () => api.service.pool!.instancesOf('alpha', 'loop').length === 0);
    const again = await invoke('hello', { name: 'after' });
    assert.deepEqual(again.result, { hello: 'after' });
  });
});
