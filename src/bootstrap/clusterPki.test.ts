import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { certificateInfo, decodeCertificatesPem, issueCertificate, type IssuedCertificate } from '../pki/index.js';
import {
  beginCaRotation,
  caExpiries,
  finishCaRotation,
  generateClusterPki,
  issueLeaf,
  trustPem,
  withGeneration,
  type ClusterPki,
  loadClusterPkiFromSecretData,
  pkiDataFromSecretData,
  pkiToSecretData,
} from './clusterPki.js';

test('cluster PKI round-trips through Secret data and still signs', async () => {
  const pki = await generateClusterPki({ clusterName: 'demo' });
  const data = pkiToSecretData(pki);
  assert.deepEqual(Object.keys(data).sort(), [
    'ca.crt', 'ca.key', 'etcd-ca.crt', 'etcd-ca.key', 'front-proxy-ca.crt', 'front-proxy-ca.key', 'sa.key', 'sa.pub',
  ]);
  for (const v of Object.values(data)) assert.match(v, /^-----BEGIN /);
  const json = JSON.parse(JSON.stringify(data)) as Record<string, string>;
  const loaded = await loadClusterPkiFromSecretData(json);
  assert.equal(loaded.ca.certPem, pki.ca.certPem);
  assert.equal(loaded.serviceAccount.publicKeyPem, pki.serviceAccount.publicKeyPem);
  assert.ok(certificateInfo(loaded.etcdCa.certPem).isCA);
  assert.equal(certificateInfo(pki.ca.certPem).commonName, 'kubernetes (demo)');
  const leaf = await issueCertificate(loaded.frontProxyCa, { commonName: 'x', usage: 'client' });
  assert.equal(leaf.cert.issuer, pki.frontProxyCa.cert.subject);
  assert.deepEqual(caExpiries(pki).map((c) => c.name), ['ca', 'etcd-ca', 'front-proxy-ca']);
});

test('a PKI secret with a missing or broken entry is rejected by name', async () => {
  const data = pkiToSecretData(await generateClusterPki());
  const { ['etcd-ca.key']: _, ...rest } = data;
  assert.throws(() => pkiDataFromSecretData(rest), /etcd-ca\.key/);
  const other = pkiToSecretData(await generateClusterPki());
  await assert.rejects(loadClusterPkiFromSecretData({ ...data, 'ca.key': other['ca.key']! }), /does not match/);
});

/** Whether a TLS client trusting `clientCa` accepts a server presenting `serverCert`, and the server (trusting `serverCa`) the client's `clientCert`. */
async function handshake(o: { serverCert: IssuedCertificate; serverCa: string; clientCert: IssuedCertificate; clientCa: string }): Promise<{ ok: true } | { ok: false; error: string }> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: o.serverCert.certPem, key: o.serverCert.keyPem, ca: o.serverCa, requestCert: true, rejectUnauthorized: true }, (s) => s.end('hello'));
  server.on('secureConnection', (s) => sockets.add(s));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: o.clientCa, cert: o.clientCert.certPem, key: o.clientCert.keyPem });
      c.once('data', () => resolve({ ok: true }));
      c.once('error', (err) => resolve({ ok: false, error: err.message }));
      // TLS 1.3: a refused client certificate shows up as the server closing without an answer.
      c.once('close', () => resolve({ ok: false, error: 'closed without an answer' }));
    });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
}

test('CA rotation: during phase 1 old-only and new-only parties verify each other; after phase 2 the old CA is refused', async () => {
  const before = await generateClusterPki({ clusterName: 'demo' });
  const server = (pki: ClusterPki) => issueLeaf(pki, 'ca', { commonName: 'kube-apiserver', usage: 'server', dnsNames: ['localhost'] });
  const client = (pki: ClusterPki) => issueLeaf(pki, 'ca', { commonName: 'admin', organizations: ['system:masters'], usage: 'client' });
  const oldTrust = trustPem(before, 'ca');
  const oldServer = await server(before);
  const oldClient = await client(before);

  const phase1 = await beginCaRotation(before, 'op-1', { clusterName: 'demo' });
  assert.equal(phase1.generation, 'op-1');
  assert.notEqual(phase1.ca.certPem, before.ca.certPem, 'a new CA signs');
  assert.match(certificateInfo(phase1.ca.certPem).commonName ?? '', /^kubernetes \(demo\) rotated op-1$/);
  const bundle = trustPem(phase1, 'ca');
  assert.equal(decodeCertificatesPem(bundle).length, 2, 'the trust bundle holds new and old');
  const newServer = await server(phase1);
  const newClient = await client(phase1);
  assert.equal(decodeCertificatesPem(newServer.certPem).length, 2, 'a leaf comes with the cross-signed CA');
  // A kubeconfig downloaded before the rotation (old CA, old client cert) against a new apiserver.
  assert.deepEqual(await handshake({ serverCert: newServer, serverCa: bundle, clientCert: oldClient, clientCa: oldTrust }), { ok: true });
  // A new component against an old one that trusts only the old CA (an etcd peer not rolled yet).
  assert.deepEqual(await handshake({ serverCert: oldServer, serverCa: oldTrust, clientCert: newClient, clientCa: bundle }), { ok: true });
  assert.deepEqual(await handshake({ serverCert: newServer, serverCa: oldTrust, clientCert: newClient, clientCa: bundle }), { ok: true });

  const round = await loadClusterPkiFromSecretData(JSON.parse(JSON.stringify(pkiToSecretData(phase1))) as Record<string, string>);
  assert.deepEqual(round.rotation, phase1.rotation, 'the rotation survives the Secret');
  assert.equal(round.generation, 'op-1');

  const phase2 = finishCaRotation(phase1, 'op-2');
  assert.equal(phase2.rotation, undefined);
  assert.equal(phase2.ca.certPem, phase1.ca.certPem, 'phase 2 keeps the new CAs');
  const newTrust = trustPem(phase2, 'ca');
  const finalServer = await server(phase2);
  const finalClient = await client(phase2);
  // Phase-1 certificates still work with phase-2 parties ...
  assert.deepEqual(await handshake({ serverCert: newServer, serverCa: bundle, clientCert: finalClient, clientCa: newTrust }), { ok: true });
  // ... but the old kubeconfig is refused both ways: its CA does not verify the server, its certificate is not trusted.
  const refused = await handshake({ serverCert: finalServer, serverCa: newTrust, clientCert: oldClient, clientCa: oldTrust });
  assert.equal(refused.ok, false);
  const untrusted = await handshake({ serverCert: finalServer, serverCa: newTrust, clientCert: oldClient, clientCa: newTrust });
  assert.equal(untrusted.ok, false, 'the old client certificate is refused once trust in the old CA ended');
});

test('a leaf rotation keeps the CAs and changes only the generation', async () => {
  const pki = await generateClusterPki();
  const next = withGeneration(pki, 'rotate-1');
  assert.equal(next.ca, pki.ca);
  assert.equal(next.generation, 'rotate-1');
  assert.equal(pkiToSecretData(next).generation, 'rotate-1');
  await assert.rejects(beginCaRotation(await beginCaRotation(pki, 'a'), 'b'), /already in progress/);
});
