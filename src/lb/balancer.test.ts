import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { createCA, issueCertificate } from '../pki/index.js';
import { findFreePort } from '../proc/index.js';
import { TcpBalancer } from './balancer.js';

// Two HTTPS "apiservers" that answer /readyz and name themselves on every other path.
let servers: Server[] = [];
let addresses: string[] = [];
const ready = new Map<string, boolean>();

before(async () => {
  const ca = await createCA({ commonName: 'test-ca' });
  const leaf = await issueCertificate(ca, { commonName: 'backend', ipAddresses: ['127.0.0.1'], usage: 'server' });
  for (const name of ['a', 'b']) {
    const port = await findFreePort('127.0.0.1');
    const address = `127.0.0.1:${port}`;
    ready.set(address, true);
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      const ok = ready.get(address);
      const [code, body] = req.url === '/readyz' ? [ok ? 200 : 500, ok ? 'ok' : 'not ready'] : [200, name];
      res.writeHead(code, { 'content-length': Buffer.byteLength(body) }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    servers.push(server);
    addresses.push(address);
  }
});
after(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

function fetchThrough(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      socket.write('GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('end', () => resolve(data.split('\r\n\r\n')[1] ?? ''));
    socket.on('error', reject);
  });
}

describe('TcpBalancer', () => {
  it('spreads connections over healthy backends and skips unhealthy ones', async () => {
    const port = await findFreePort('127.0.0.1');
    const lb = new TcpBalancer({ host: '127.0.0.1', port, backends: addresses, healthIntervalMs: 100 });
    await lb.start();
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await fetchThrough(port));
      assert.deepEqual([...seen].sort(), ['a', 'b']);

      ready.set(addresses[0]!, false);
      while (lb.healthyBackends().length !== 1) await new Promise((r) => setTimeout(r, 50));
      const after = new Set<string>();
      for (let i = 0; i < 4; i++) after.add(await fetchThrough(port));
      assert.deepEqual([...after], ['b']);
    } finally {
      ready.set(addresses[0]!, true);
      await lb.stop();
    }
  });

  it('fails over when a backend refuses connections, and follows backend changes', async () => {
    const port = await findFreePort('127.0.0.1');
    const dead = `127.0.0.1:${await findFreePort('127.0.0.1')}`;
    const lb = new TcpBalancer({ host: '127.0.0.1', port, backends: [dead], healthIntervalMs: 100 });
    await lb.start();
    try {
      lb.setBackends([dead, addresses[1]!]);
      for (let i = 0; i < 3; i++) assert.equal(await fetchThrough(port), 'b');
      assert.deepEqual(lb.healthyBackends(), [addresses[1]]);
    } finally {
      await lb.stop();
    }
  });
});
