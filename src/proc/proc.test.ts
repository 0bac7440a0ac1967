import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCA, issueCertificate } from '../pki/index.js';
import {
  findFreePort,
  findFreePorts,
  httpsRequest,
  isPortListening,
  isProcessAlive,
  isProcessGroupAlive,
  processRssBytes,
  spawnLogged,
  stopProcessGroup,
  tailFile,
  waitForHttps,
  waitForPortClosed,
} from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-proc-'));
const started: number[] = [];
after(async () => {
  for (const pid of started) await stopProcessGroup(pid, { graceMs: 500 }).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('spawnLogged / stopProcessGroup', () => {
  it('runs a process in its own group with output in a log file, and stops the whole group', async () => {
    const logFile = join(tmp, 'logs', 'a.log');
    // the shell starts a grandchild (sleep) in the same process group
    const p = await spawnLogged({
      command: '/bin/sh',
      args: ['-c', 'echo "out $0"; echo err 1>&2; sleep 1000 & echo "child $!"; wait', 'arg0'],
      logFile,
    });
    started.push(p.pid);
    await waitFor(() => /child \d+/.test(tailFile(logFile)));
    const log = readFileSync(logFile, 'utf8');
    assert.match(log, /out arg0/);
    assert.match(log, /err/);
    const grandchild = Number(/child (\d+)/.exec(log)![1]);
    assert.ok(isProcessAlive(p.pid));
    assert.ok(isProcessAlive(grandchild));
    assert.ok(isProcessGroupAlive(p.pid));
    assert.ok((processRssBytes(p.pid) ?? 0) > 0);
    assert.equal(p.exitInfo(), undefined);

    const r = await stopProcessGroup(p.pid, { graceMs: 5000 });
    assert.equal(r.killed, false);
    assert.ok(!isProcessAlive(p.pid));
    assert.ok(!isProcessAlive(grandchild), 'grandchild in the group is gone too');
    const exit = await p.exited;
    assert.equal(exit.signal, 'SIGTERM');
    assert.deepEqual(p.exitInfo(), exit);

    const again = await stopProcessGroup(p.pid);
    assert.equal(again.alreadyGone, true);
  });

  it('escalates to SIGKILL after the grace period', async () => {
    const logFile = join(tmp, 'b.log');
    const p = await spawnLogged({ command: '/bin/sh', args: ['-c', "trap '' TERM; echo ready; while :; do sleep 1; done"], logFile });
    started.push(p.pid);
    await waitFor(() => tailFile(logFile).includes('ready'));
    const r = await stopProcessGroup(p.pid, { graceMs: 300 });
    assert.equal(r.killed, true);
    assert.ok(r.elapsedMs >= 300);
    assert.ok(!isProcessGroupAlive(p.pid));
  });

  it('rejects when the command does not exist', async () => {
    await assert.rejects(spawnLogged({ command: join(tmp, 'nope'), logFile: join(tmp, 'c.log') }), /cannot start/);
  });

  it('refuses to signal group 0/1', async () => {
    await assert.rejects(stopProcessGroup(1), /refusing/);
    await assert.rejects(stopProcessGroup(0), /refusing/);
  });
});

describe('ports', () => {
  it('finds free ports and detects listeners', async () => {
    const host = '127.0.10.7';
    const port = await findFreePort(host);
    assert.ok(port > 0);
    assert.equal(await isPortListening(host, port), false);
    const server = createServer();
    await new Promise<void>((r) => server.listen(port, host, r));
    try {
      assert.equal(await isPortListening(host, port), true);
      assert.equal(await isPortListening('127.0.10.8', port), false, 'other loopback address');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    assert.equal(await waitForPortClosed(host, port, 2000), true);
    const ports = await findFreePorts(host, 3);
    assert.equal(new Set(ports).size, 3);
  });
});

describe('waitForHttps', () => {
  it('polls an mTLS endpoint until it is ready', async () => {
    const ca = await createCA({ commonName: 'proc-test-ca' });
    const host = '127.0.10.9';
    const serverCert = await issueCertificate(ca, { commonName: 'srv', usage: 'server', ipAddresses: [host] });
    const client = await issueCertificate(ca, { commonName: 'cli', usage: 'client' });
    let ready = false;
    const server = createHttpsServer(
      { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        if (req.url === '/readyz' && ready) res.end(`ok`);
        else {
          res.statusCode = 500;
          res.end(`not ready (${peer.subject?.CN})`);
        }
      },
    );
    const port = await findFreePort(host);
    await new Promise<void>((r) => server.listen(port, host, r));
    try {
      const url = `https://${host}:${port}/readyz`;
      const tls = { ca: ca.certPem, cert: client.certPem, key: client.keyPem };
      const first = await httpsRequest(url, tls);
      assert.equal(first.status, 500);
      assert.match(first.body, /not ready \(cli\)/);
      setTimeout(() => (ready = true), 300);
      const res = await waitForHttps(url, { ...tls, timeoutMs: 5000, intervalMs: 50, expectBody: 'ok' });
      assert.equal(res.body, 'ok');
      // without a client certificate the TLS handshake fails -> timeout error mentions the URL
      await assert.rejects(waitForHttps(url, { ca: ca.certPem, timeoutMs: 300, intervalMs: 50 }), /timed out after 300 ms waiting for https/);
      await assert.rejects(waitForHttps(url, { ...tls, timeoutMs: 5000, keepWaiting: () => false, expectBody: 'nope' }), /gave up/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
