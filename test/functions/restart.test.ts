// Durability: a real `marina server` process is SIGKILLed with asynchronous invocations queued and
// running; a new server on the same data directory runs every one of them (none lost).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION } from '../../src/api/meta.js';
import { freePort, startServerProcess, waitUntil, type ServerProcess } from '../support/marina.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-fn-restart-'));
const dataDir = join(tmp, 'data');
const servers: ServerProcess[] = [];
const N = 12;

after(async () => {
  for (const s of servers) await s.stop(10_000);
  rmSync(tmp, { recursive: true, force: true });
});

async function call(server: ServerProcess, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

describe('durable delivery across a SIGKILL', () => {
  it('runs every queued invocation after a restart', async () => {
    const listen = `127.0.0.1:${await freePort()}`;
    const env = { PATH: process.env.PATH, HOME: tmp, MARINA_LOG_LEVEL: 'warn' };
    const first = await startServerProcess({ dataDir, listen, logFile: join(tmp, 'server.log'), env });
    servers.push(first);
    const token = first.bootstrapToken!;
    const fnPath = '/api/v1alpha1/projects/default/functions';
    const created = await call(first, token, 'POST', fnPath, {
      apiVersion: API_VERSION,
      kind: 'Function',
      metadata: { name: 'slow' },
      spec: {
        source: { code: 'export default async (e, ctx) => { await new Promise((r) => setTimeout(r, 200)); return { n: e.n, key: ctx.idempotencyKey }; }' },
        limits: { concurrency: 1, maxInstances: 1 },
      },
    });
    assert.equal(created.status, 201, created.text);
    for (let i = 0; i < N; i++) {
      const r = await call(first, token, 'POST', `${fnPath}/slow/invoke?async=true`, { n: i }, { 'idempotency-key': `k${i}` });
      assert.equal(r.status, 202, r.text);
    }
    const metrics = await (await fetch(`${first.url}/metrics`)).text();
    const queued = Number(/^marina_function_queue_depth\{state="queued"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.ok(queued > 0, `invocations are still queued at the kill:\n${metrics.split('\n').filter((l) => l.includes('queue_depth')).join('\n')}`);
    process.kill(-first.pid, 'SIGKILL');
    await waitUntil('the first server to die', 10_000, async () => (first.running() ? undefined : true), 50);

    const second = await startServerProcess({ dataDir, listen, logFile: join(tmp, 'server.log'), env });
    servers.push(second);
    // Deliveries the dead server had leased run once their lease (15 s) expires.
    const done = await waitUntil(
      `all ${N} invocations to succeed`,
      120_000,
      async () => {
        const r = await call(second, token, 'GET', `${fnPath}/slow/activations?limit=1000`);
        const items = (JSON.parse(r.text) as { items: { outcome: string; idempotencyKey?: string }[] }).items;
        const ok = new Set(items.filter((a) => a.outcome === 'success').map((a) => a.idempotencyKey));
        return ok.size === N ? ok : undefined;
      },
      250,
    );
    for (let i = 0; i < N; i++) assert.ok(done.has(`client:k${i}`), `k${i} ran`);
  });
});
