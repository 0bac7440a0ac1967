import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createCA } from '../pki/index.js';
import { caPin, isPin, pinsEqual } from './pin.js';
import { TOKEN_PATTERN } from '../api/join-tokens.js';
import { generateToken, refusal, tokenState, type JoinTokenRecord } from './tokens.js';
import { bootstrapTokenFor } from '../bootstrap/bootstrap-token.js';

describe('CA pin', () => {
  it("is sha256 of the CA's SubjectPublicKeyInfo, like kubeadm's discovery-token-ca-cert-hash", async () => {
    const ca = await createCA({ commonName: 'pin-test' });
    const spki = new X509Certificate(ca.certPem).publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(caPin(ca.certPem), `sha256:${createHash('sha256').update(spki).digest('hex')}`);
    assert.ok(isPin(caPin(ca.certPem)));
    assert.ok(pinsEqual(caPin(ca.certPem), caPin(ca.certPem).toUpperCase().replace('SHA256', 'sha256')));
    assert.notEqual(caPin((await createCA({ commonName: 'other' })).certPem), caPin(ca.certPem));
  });
});

describe('join tokens', () => {
  const record = (o: Partial<JoinTokenRecord> = {}): JoinTokenRecord => ({
    id: 'abc123',
    cluster: 'c',
    pool: 'byo',
    createdAt: new Date().toISOString(),
    createdBy: 'u',
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    singleUse: false,
    approval: false,
    usedBy: [],
    ...o,
  });

  it("have kubeadm's format and a fresh secret each time", () => {
    const a = generateToken();
    const b = generateToken();
    assert.match(a.token, TOKEN_PATTERN);
    assert.equal(a.token.slice(0, 6), a.id);
    assert.notEqual(a.token, b.token);
  });

  it('are active, expired, revoked or used, and say why they are refused', () => {
    assert.equal(tokenState(record()), 'active');
    assert.equal(refusal(record()), undefined);
    assert.equal(tokenState(record({ expiresAt: new Date(Date.now() - 1).toISOString() })), 'expired');
    assert.equal(tokenState(record({ revokedAt: new Date().toISOString() })), 'revoked');
    assert.equal(tokenState(record({ singleUse: true, usedBy: ['m1'] })), 'used');
    assert.equal(tokenState(record({ singleUse: false, usedBy: ['m1', 'm2'] })), 'active');
    assert.match(refusal(record({ singleUse: true, usedBy: ['m1'] }))!, /single use .* \(machine m1\)/);
  });
});

describe('kubelet bootstrap tokens', () => {
  it('are derived per machine from the cluster CA key: stable, distinct, in the bootstrap-token format', () => {
    const a = bootstrapTokenFor('key-1', 'uid-1');
    assert.deepEqual(bootstrapTokenFor('key-1', 'uid-1'), a);
    assert.notEqual(bootstrapTokenFor('key-1', 'uid-2').token, a.token);
    assert.notEqual(bootstrapTokenFor('key-2', 'uid-1').token, a.token);
    assert.match(a.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  });
});
