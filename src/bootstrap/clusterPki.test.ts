import { test } from 'node:test';
import assert from 'node:assert/strict';
import { certificateInfo, issueCertificate } from '../pki/index.js';
import {
  caExpiries,
  generateClusterPki,
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
