import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { pickAddressBase } from '../../test/support/loopback.js';
import { findFreePort } from '../proc/index.js';
import { LoopbackRelay } from './loopback-relay.js';
import { connectionOwner, parseProcNetTcp } from './socket-owner.js';

const log = pino({ level: 'silent' });

/** A TCP server on host:port that answers every connection with `name` and closes. */
async function nameServer(host: string, port: number, name: string): Promise<Server> {
  const server = createServer((s) => s.on('error', () => undefined).end(name));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host, port }, resolve));
  return server;
}

/** Connects to 127.0.0.1:port and returns what the other end said. */
function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    connect({ host: '127.0.0.1', port })
      .on('data', (d) => (got += d.toString()))
      .on('end', () => resolve(got))
      .on('error', reject);
  });
}

async function eventually(what: string, fn: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: not within 5 s`);
}

describe('socket owner', () => {
  it('parses /proc/net/tcp lines (little-endian addresses, hex ports)', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:2819 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1',
      '   1: 01004D7F:2829 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 100 0 0 10 0',
      'garbage',
    ].join('\n');
    assert.deepEqual(parseProcNetTcp(text), [
      { localAddress: '127.0.0.1', localPort: 10265, remoteAddress: '127.0.0.1', remotePort: 50000, inode: 123456 },
      { localAddress: '127.77.0.1', localPort: 10281, remoteAddress: '0.0.0.0', remotePort: 0, inode: 654321 },
    ]);
  });

  it('finds the process holding the client end of a loopback connection', async () => {
    const server = await nameServer('127.0.0.1', 0, 'x');
    const port = (server.address() as { port: number }).port;
    const client = connect({ host: '127.0.0.1', port });
    await new Promise((r) => client.once('connect', r));
    try {
      const owner = connectionOwner({ address: '127.0.0.1', port: client.localPort! }, { address: '127.0.0.1', port }, (args) => args[0] === process.execPath);
      assert.ok(owner?.some((a) => a.endsWith('loopback-relay.test.js')), `found ${JSON.stringify(owner)}`);
    } finally {
      client.destroy();
      server.close();
    }
  });
});

describe('loopback relay', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'marina-relay-'));
  const servers: Server[] = [];
  const relays: LoopbackRelay[] = [];
  after(async () => {
    for (const r of relays) await r.stop();
    for (const s of servers) s.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('sends a kube-apiserver\'s connection to its own machine, anything else to the relay\'s machine, and hands over when stopped', async () => {
    const prefix = (await pickAddressBase()).slice(0, -3); // e.g. "127.142.0."
    const [machineA, machineB] = [`${prefix}1`, `${prefix}2`];
    const port = await findFreePort('127.0.0.1');
    servers.push(await nameServer(machineA, port, 'A'), await nameServer(machineB, port, 'B'));

    const relayA = new LoopbackRelay({ port, ownAddress: machineA, log, retryMs: 100 });
    const relayB = new LoopbackRelay({ port, ownAddress: machineB, log, retryMs: 100 });
    relays.push(relayA, relayB);
    relayA.start();
    await eventually('relay A listening', async () => relayA.listening);
    relayB.start(); // the port is taken: B keeps trying

    assert.equal(await ask(port), 'A', 'a caller that is no kube-apiserver reaches the relay\'s own machine');

    // A process named kube-apiserver advertising machine B's address, as B's apiserver would be.
    const fake = join(tmp, 'kube-apiserver');
    symlinkSync(process.execPath, fake);
    const probe = `const s=require('net').connect(${port},'127.0.0.1');let d='';s.on('data',c=>d+=c).on('end',()=>{process.stdout.write(d)})`;
    const answer = await new Promise<string>((resolve, reject) => {
      const child = spawn(fake, ['-e', probe, '--', `--advertise-address=${machineB}`], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject).on('exit', () => resolve(out));
    });
    assert.equal(answer, 'B', 'the apiserver of machine B reaches machine B through relay A');
    assert.equal(relayB.listening, false);

    await relayA.stop();
    await eventually('relay B took over', async () => relayB.listening);
    assert.equal(await ask(port), 'B');
  });
});
