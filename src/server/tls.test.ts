import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateInfo } from '../pki/index.js';
import { caPin } from '../joins/pin.js';
import { isLoopbackHost, loadOrCreateServerTls } from './tls.js';

describe('marina server --tls auto', () => {
  const dir = mkdtempSync(join(tmpdir(), 'marina-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a CA and a serving certificate for the names, keeps the CA key private', async () => {
    const t = await loadOrCreateServerTls(dir, ['127.0.0.1', 'localhost', '10.1.2.3']);
    const info = certificateInfo(t.certPem);
    assert.deepEqual(info.ipAddresses.sort(), ['10.1.2.3', '127.0.0.1']);
    assert.deepEqual(info.dnsNames, ['localhost']);
    assert.equal(t.caPin, caPin(readFileSync(join(dir, 'tls', 'ca.crt'), 'utf8')));
    assert.equal(statSync(join(dir, 'tls', 'ca.key')).mode & 0o777, 0o600);
  });

  it('re-issues the serving certificate for new names from the same CA: the pin stays', async () => {
    const before = await loadOrCreateServerTls(dir, ['127.0.0.1']);
    const after = await loadOrCreateServerTls(dir, ['127.0.0.1', '10.9.9.9']);
    assert.equal(after.caPin, before.caPin);
    assert.ok(certificateInfo(after.certPem).ipAddresses.includes('10.9.9.9'));
    assert.equal((await loadOrCreateServerTls(dir, ['10.9.9.9'])).certPem, after.certPem, 'no re-issue when the names are covered');
  });

  it('tells loopback hosts from others', () => {
    assert.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('::1') && isLoopbackHost('localhost'));
    assert.ok(!isLoopbackHost('0.0.0.0') && !isLoopbackHost('10.1.2.3'));
  });
});
