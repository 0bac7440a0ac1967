import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { isProcessAlive } from '../proc/spawn.js';
import { findFreePort } from '../proc/net.js';
import { ProcessSupervisor } from './supervisor.js';
import https from 'node:https';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createCA, issueCertificate } from '../pki/index.js';

const log = pino({ level: 'silent' });

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('processes start in order, each after the previous is ready; output goes to <logDir>/<name>.log', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sup-'));
  const port = await findFreePort('127.0.0.1');
  // "web" only starts listening after 400 ms; "after" must not start before that.
  const server = `setTimeout(() => require('http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1', () => console.log('listening')), 400)`;
  const sup = new ProcessSupervisor(
    [
      { name: 'web', command: process.execPath, args: ['-e', server], readyUrl: `http://127.0.0.1:${port}/` },
      { name: 'after', command: '/bin/sh', args: ['-c', 'echo "after started at $(date +%s%N)"; exec sleep 1000'] },
    ],
    { logDir: join(dir, 'logs'), log, probeIntervalMs: 50 },
  );
  const t0 = Date.now();
  const pids: number[] = [];
  try {
    await sup.start();
    assert.ok(Date.now() - t0 >= 400, 'waited for readiness');
    const ps = sup.processes();
    assert.deepEqual(ps.map((p) => [p.name, p.state, p.ready]), [
      ['web', 'running', true],
      ['after', 'running', true],
    ]);
    pids.push(...ps.map((p) => p.pid!));
    assert.ok(sup.allRunning());
    await new Promise((r) => setTimeout(r, 100));
    assert.match(await readFile(join(dir, 'logs', 'web.log'), 'utf8'), /listening/);
    assert.match(await readFile(join(dir, 'logs', 'after.log'), 'utf8'), /after started/);
  } finally {
    await sup.stop();
    await rm(dir, { recursive: true, force: true });
  }
  assert.deepEqual(sup.processes().map((p) => p.state), ['stopped', 'stopped']);
  for (const pid of pids) assert.ok(!isProcessAlive(pid), `pid ${pid} left behind`);
});

test('a crashing process is restarted with backoff and its restarts counted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sup-'));
  const sup = new ProcessSupervisor([{ name: 'flaky', command: '/bin/sh', args: ['-c', 'echo run; exit 3'] }], {
    logDir: dir,
    log,
    backoff: { initialMs: 50, maxMs: 200 },
  });
  try {
    void sup.start();
    await until(() => (sup.processes()[0]?.restarts ?? 0) >= 3, 5000, 'three restarts');
    const p = sup.processes()[0]!;
    assert.equal(p.lastExit?.code, 3);
    const lines = (await readFile(join(dir, 'flaky.log'), 'utf8')).trim().split('\n');
    assert.ok(lines.length >= 3);
  } finally {
    await sup.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const restarts = sup.processes()[0]!.restarts;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sup.processes()[0]!.restarts, restarts, 'no restart after stop');
});

test('a missing binary is reported and retried, never crashing the supervisor', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sup-'));
  const sup = new ProcessSupervisor([{ name: 'ghost', command: '/nonexistent/bin', args: [] }], { logDir: dir, log, backoff: { initialMs: 30, maxMs: 60 } });
  try {
    void sup.start();
    await until(() => (sup.processes()[0]?.restarts ?? 0) >= 2, 3000, 'retries');
    assert.match(sup.processes()[0]!.lastError ?? '', /ENOENT/);
    assert.ok(!sup.allRunning());
  } finally {
    await sup.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('stop sends SIGKILL to a process that ignores SIGTERM after the grace period', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sup-'));
  const sup = new ProcessSupervisor(
    [{ name: 'stubborn', command: '/bin/sh', args: ['-c', "trap '' TERM; echo ready; while :; do sleep 0.05; done"] }],
    { logDir: dir, log, stopGraceMs: 300 },
  );
  try {
    await sup.start();
    await new Promise((r) => setTimeout(r, 100)); // let the shell install its trap
    const pid = sup.processes()[0]!.pid!;
    const t0 = Date.now();
    await sup.stop();
    assert.ok(Date.now() - t0 >= 300);
    assert.equal(sup.processes()[0]!.lastExit?.signal, 'SIGKILL');
    assert.ok(!isProcessAlive(pid));
  } finally {
    await sup.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('https readiness probes use the configured CA and client certificate (mTLS, like etcd /health)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sup-'));
  const ca = await createCA({ commonName: 'ca' });
  const srv = await issueCertificate(ca, { commonName: 'etcd', usage: 'server', ipAddresses: ['127.0.0.1'] });
  const client = await issueCertificate(ca, { commonName: 'probe', usage: 'client' });
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'c.crt'), client.certPem);
  await writeFile(join(dir, 'c.key'), client.keyPem);
  let calls = 0;
  const server = https.createServer({ cert: srv.certPem, key: srv.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (_req, res) => {
    calls++;
    res.writeHead(calls < 3 ? 503 : 200);
    res.end(calls < 3 ? 'not yet' : '{"health":"true"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const sup = new ProcessSupervisor(
    [
      {
        name: 'etcd',
        command: '/bin/sh',
        args: ['-c', 'exec sleep 1000'],
        readyUrl: `https://127.0.0.1:${port}/health`,
        tls: { ca: join(dir, 'ca.crt'), cert: join(dir, 'c.crt'), key: join(dir, 'c.key') },
      },
    ],
    { logDir: dir, log, probeIntervalMs: 20 },
  );
  try {
    await sup.start();
    assert.equal(calls, 3, 'polled until 200');
    assert.equal(sup.processes()[0]!.ready, true);
  } finally {
    await sup.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});

test('held processes stop (last first), are not restarted, stay down from the start, and come back when released', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sup-hold-'));
  const specs = [
    { name: 'etcd', command: '/bin/sleep', args: ['1000'] },
    { name: 'kube-apiserver', command: '/bin/sleep', args: ['1000'] },
  ];
  const sup = new ProcessSupervisor(specs, { logDir: join(dir, 'logs'), log, backoff: { initialMs: 20 } });
  try {
    await sup.start();
    const before = sup.processes().map((p) => p.pid!);
    await assert.rejects(sup.hold(['nope']), /no process named nope/);
    await sup.hold(['etcd', 'kube-apiserver']);
    assert.deepEqual(sup.processes().map((p) => p.state), ['held', 'held']);
    assert.deepEqual(sup.heldNames(), ['etcd', 'kube-apiserver']);
    for (const pid of before) assert.ok(!isProcessAlive(pid), `pid ${pid} stopped`);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(sup.processes().map((p) => p.state), ['held', 'held'], 'not restarted');
    assert.ok(!sup.allRunning());
    sup.release(['etcd']);
    await until(() => sup.processes()[0]!.state === 'running', 2000, 'etcd released');
    assert.equal(sup.processes()[1]!.state, 'held');
  } finally {
    await sup.stop();
  }
  // An agent restarted while a restore holds etcd: it starts everything but the held process.
  const again = new ProcessSupervisor(specs, { logDir: join(dir, 'logs'), log, held: ['etcd'] });
  try {
    await again.start();
    assert.deepEqual(again.processes().map((p) => p.state), ['held', 'running']);
  } finally {
    await again.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
