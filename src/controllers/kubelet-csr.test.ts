import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { crypto } from '../pki/keys.js';
import { judgeCsr, requestedNode, SIGNER_CLIENT, SIGNER_SERVING, type CsrObject, type CsrMachine } from './kubelet-csr.js';

async function csr(o: { name: string; san?: { type: 'dns' | 'ip'; value: string }[]; signer: string; username: string; groups?: string[]; usages: string[] }): Promise<CsrObject> {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const req = await x509.Pkcs10CertificateRequestGenerator.create({
    name: o.name,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: o.san ? [new x509.SubjectAlternativeNameExtension(o.san)] : [],
  }, crypto);
  return {
    metadata: { name: 'csr-x' },
    spec: { request: Buffer.from(req.toString('pem')).toString('base64'), signerName: o.signer, username: o.username, groups: o.groups ?? [], usages: o.usages },
  };
}

const m: CsrMachine = { name: 'c1-w-abcde', tokenId: 'abc123', address: '172.30.4.7', settled: true };
const client = (username: string, name = 'O=system:nodes, CN=system:node:c1-w-abcde') =>
  csr({ name, signer: SIGNER_CLIENT, username, usages: ['digital signature', 'client auth'] });
const serving = (san: { type: 'dns' | 'ip'; value: string }[], username = 'system:node:c1-w-abcde') =>
  csr({ name: 'O=system:nodes, CN=system:node:c1-w-abcde', san, signer: SIGNER_SERVING, username, groups: ['system:nodes', 'system:authenticated'], usages: ['digital signature', 'server auth'] });

describe('kubelet CSR judgement', () => {
  it('approves the first client certificate requested with the machine\'s bootstrap token, and its renewal', async () => {
    assert.equal(judgeCsr(await client('system:bootstrap:abc123'), m).action, 'approve');
    assert.equal(judgeCsr(await client('system:node:c1-w-abcde'), m).action, 'approve');
    assert.equal(requestedNode(await client('system:bootstrap:abc123')), 'c1-w-abcde');
  });

  it("denies a client certificate requested with another machine's token", async () => {
    const v = judgeCsr(await client('system:bootstrap:zzz999'), m);
    assert.equal(v.action, 'deny');
  });

  it('denies a node name with extra groups, and ignores other names', async () => {
    assert.equal(judgeCsr(await client('system:bootstrap:abc123', 'O=system:masters, CN=system:node:c1-w-abcde'), m).action, 'deny');
    assert.equal(judgeCsr(await client('system:bootstrap:abc123', 'O=system:nodes, CN=system:node:other'), m).action, 'ignore');
  });

  it("approves a serving certificate for the machine's name and address only", async () => {
    assert.equal(judgeCsr(await serving([{ type: 'dns', value: 'c1-w-abcde' }, { type: 'ip', value: '172.30.4.7' }]), m).action, 'approve');
    assert.equal(judgeCsr(await serving([{ type: 'ip', value: '10.0.0.1' }]), m).action, 'deny');
    assert.equal(judgeCsr(await serving([{ type: 'dns', value: 'kubernetes' }]), m).action, 'deny');
    assert.equal(judgeCsr(await serving([{ type: 'dns', value: 'c1-w-abcde' }], 'system:bootstrap:abc123'), m).action, 'deny');
  });

  it('waits (no denial) while the address is not final: the provider reports it just after the start', async () => {
    const v = judgeCsr(await serving([{ type: 'ip', value: '172.30.4.7' }]), { ...m, address: '127.77.0.9', settled: false });
    assert.equal(v.action, 'ignore');
  });

  it('ignores other signers', async () => {
    const other = await csr({ name: 'CN=system:node:c1-w-abcde, O=system:nodes', signer: 'example.com/custom', username: 'x', usages: [] });
    assert.equal(judgeCsr(other, m).action, 'ignore');
  });
});
