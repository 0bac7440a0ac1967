import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  buildKubeconfig,
  certificateInfo,
  certificateNotAfter,
  createCA,
  createServiceAccountKeyPair,
  decodeCertificatePem,
  decodeCertificatesPem,
  exportPrivateKeyPem,
  generateControlPlanePki,
  importPrivateKeyPem,
  issueCertificate,
  loadCA,
  parsePemBlocks,
} from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-pki-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function file(text: string): string {
  const path = join(tmp, `f${n++}.pem`);
  writeFileSync(path, text);
  return path;
}

/** `openssl verify`; returns [ok, output]. */
function opensslVerify(caPem: string, certPem: string, purpose?: 'sslserver' | 'sslclient'): [boolean, string] {
  const args = ['verify', '-CAfile', file(caPem), ...(purpose ? ['-purpose', purpose] : []), file(certPem)];
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return [r.status === 0, `${r.stdout}${r.stderr}`];
}

/** Minimal DER walk: the raw bytes of TBSCertificate's issuer and subject. */
function rawIssuerAndSubject(der: Uint8Array): { issuer: Buffer; subject: Buffer } {
  const tlv = (buf: Uint8Array, off: number) => {
    let len = buf[off + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const nb = len & 0x7f;
      len = 0;
      for (let i = 0; i < nb; i++) len = (len << 8) | buf[off + 2 + i]!;
      hdr = 2 + nb;
    }
    return { tag: buf[off]!, start: off, contentStart: off + hdr, end: off + hdr + len };
  };
  const cert = tlv(der, 0);
  const tbs = tlv(der, cert.contentStart);
  let off = tbs.contentStart;
  const fields = [];
  while (off < tbs.end) {
    const f = tlv(der, off);
    fields.push(f);
    off = f.end;
  }
  // [0] version, serial, signature alg, issuer, validity, subject, ...
  const withVersion = fields[0]!.tag === 0xa0 ? 1 : 0;
  const issuer = fields[2 + withVersion]!;
  const subject = fields[4 + withVersion]!;
  return {
    issuer: Buffer.from(der.slice(issuer.start, issuer.end)),
    subject: Buffer.from(der.slice(subject.start, subject.end)),
  };
}

describe('certificate authority and leaf certificates', () => {
  it('issues a server+client leaf that openssl verifies, with SANs, groups and notAfter', async () => {
    const ca = await createCA({ commonName: 'marina-test-ca', validityDays: 30 });
    const leaf = await issueCertificate(ca, {
      commonName: 'kubernetes-admin',
      organizations: ['system:masters', 'team-a'],
      dnsNames: ['localhost', 'api.example.test'],
      ipAddresses: ['127.0.10.1', '10.96.0.1', '::1'],
      usage: 'both',
      validityDays: 7,
    });
    assert.deepEqual(opensslVerify(ca.certPem, leaf.certPem)[0], true);
    assert.equal(opensslVerify(ca.certPem, leaf.certPem, 'sslserver')[0], true);
    assert.equal(opensslVerify(ca.certPem, leaf.certPem, 'sslclient')[0], true);

    const info = certificateInfo(leaf.certPem);
    assert.equal(info.commonName, 'kubernetes-admin');
    assert.deepEqual(info.organizations, ['system:masters', 'team-a']);
    assert.deepEqual(info.dnsNames, ['localhost', 'api.example.test']);
    assert.deepEqual(info.ipAddresses, ['127.0.10.1', '10.96.0.1', '::1']);
    assert.deepEqual(info.extendedKeyUsages, ['serverAuth', 'clientAuth']);
    assert.equal(info.isCA, false);

    // notAfter exposed and consistent with what openssl/Node read
    const node = new NodeX509(leaf.certPem);
    assert.equal(new Date(node.validTo).getTime(), leaf.notAfter.getTime());
    assert.equal(certificateNotAfter(leaf.certPem).getTime(), leaf.notAfter.getTime());
    const days = (leaf.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days < 7.1, `validity ${days} days`);
    assert.ok(ca.notAfter.getTime() > leaf.notAfter.getTime());

    // SANs as openssl parses them
    assert.match(node.subjectAltName ?? '', /DNS:api\.example\.test/);
    assert.match(node.subjectAltName ?? '', /IP Address:127\.0\.10\.1/);
    assert.ok(node.checkIssued(new NodeX509(ca.certPem)));
    assert.ok(node.checkPrivateKey(createPrivateKey(leaf.keyPem)));
  });

  it('writes the issuer byte-identical to the CA subject (Go matches them bytewise)', async () => {
    const ca = await createCA({ commonName: 'byte-ca', organizations: ['Marina'] });
    const leaf = await issueCertificate(ca, { commonName: 'x', usage: 'client' });
    const caRaw = rawIssuerAndSubject(parsePemBlocks(ca.certPem)[0]!.der);
    const leafRaw = rawIssuerAndSubject(parsePemBlocks(leaf.certPem)[0]!.der);
    assert.ok(caRaw.issuer.equals(caRaw.subject), 'self-signed CA');
    assert.ok(leafRaw.issuer.equals(caRaw.subject), 'leaf issuer == CA subject');
  });

  it('server-only and client-only usages are enforced by openssl purposes', async () => {
    const ca = await createCA({ commonName: 'purpose-ca' });
    const server = await issueCertificate(ca, { commonName: 's', usage: 'server', dnsNames: ['s.local'] });
    const client = await issueCertificate(ca, { commonName: 'c', usage: 'client' });
    assert.equal(opensslVerify(ca.certPem, server.certPem, 'sslserver')[0], true);
    assert.equal(opensslVerify(ca.certPem, server.certPem, 'sslclient')[0], false);
    assert.equal(opensslVerify(ca.certPem, client.certPem, 'sslclient')[0], true);
    assert.equal(opensslVerify(ca.certPem, client.certPem, 'sslserver')[0], false);
  });

  it('a certificate from another CA does not verify', async () => {
    const ca1 = await createCA({ commonName: 'ca-1' });
    const ca2 = await createCA({ commonName: 'ca-1' });
    const leaf = await issueCertificate(ca2, { commonName: 'x', usage: 'client' });
    assert.equal(opensslVerify(ca1.certPem, leaf.certPem)[0], false);
  });

  it('supports RSA 2048 keys', async () => {
    const ca = await createCA({ commonName: 'rsa-ca', keyAlgorithm: 'rsa-2048' });
    const leaf = await issueCertificate(ca, { commonName: 'rsa-leaf', usage: 'server', ipAddresses: ['127.0.0.1'], keyAlgorithm: 'rsa-2048' });
    assert.equal(opensslVerify(ca.certPem, leaf.certPem, 'sslserver')[0], true);
    assert.equal(createPrivateKey(leaf.keyPem).asymmetricKeyType, 'rsa');
    // an ECDSA leaf under an RSA CA also works
    const ec = await issueCertificate(ca, { commonName: 'ec-leaf', usage: 'client' });
    assert.equal(opensslVerify(ca.certPem, ec.certPem, 'sslclient')[0], true);
  });

  it('caps a leaf at the CA notAfter', async () => {
    const ca = await createCA({ commonName: 'short-ca', validityDays: 2 });
    const leaf = await issueCertificate(ca, { commonName: 'x', usage: 'client', validityDays: 365 });
    assert.equal(leaf.notAfter.getTime(), ca.notAfter.getTime());
  });

  it('rejects bad IP SANs', async () => {
    const ca = await createCA({ commonName: 'ip-ca' });
    await assert.rejects(issueCertificate(ca, { commonName: 'x', usage: 'server', ipAddresses: ['not-an-ip'] }), /not an IP/);
  });
});

describe('PEM encoding', () => {
  it('round-trips certificates, bundles and PKCS#8 keys; reloads a CA', async () => {
    const ca = await createCA({ commonName: 'pem-ca' });
    assert.match(ca.certPem, /^-----BEGIN CERTIFICATE-----\n/);
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const again = decodeCertificatePem(ca.certPem);
    assert.equal(again.serialNumber, ca.cert.serialNumber);
    const leaf = await issueCertificate(ca, { commonName: 'l', usage: 'client' });
    assert.equal(decodeCertificatesPem(leaf.certPem + ca.certPem).length, 2);
    assert.throws(() => decodeCertificatePem('nothing'), /no CERTIFICATE/);

    // openssl can read the key, and it is PKCS#8
    const out = execFileSync('openssl', ['pkey', '-in', file(leaf.keyPem), '-noout', '-text'], { encoding: 'utf8' });
    assert.match(out, /Private-Key: \(256 bit/);

    const loaded = await loadCA(ca.certPem, ca.keyPem);
    const leaf2 = await issueCertificate(loaded, { commonName: 'from-loaded', usage: 'client' });
    assert.equal(opensslVerify(ca.certPem, leaf2.certPem)[0], true);

    // legacy SEC1 "EC PRIVATE KEY" input is accepted too
    const sec1 = createPrivateKey(ca.keyPem).export({ type: 'sec1', format: 'pem' }).toString();
    const imported = await importPrivateKeyPem(sec1);
    assert.equal(imported.algorithm, 'ecdsa-p256');
    assert.equal(await exportPrivateKeyPem(imported.privateKey), ca.keyPem);

    const other = await createCA({ commonName: 'other' });
    await assert.rejects(loadCA(ca.certPem, other.keyPem), /does not match/);
  });
});

describe('service-account key pair', () => {
  it('produces a PKCS#8 private key and an SPKI public key that verify each other', async () => {
    const sa = await createServiceAccountKeyPair();
    assert.match(sa.privateKeyPem, /BEGIN PRIVATE KEY/);
    assert.match(sa.publicKeyPem, /BEGIN PUBLIC KEY/);
    const data = Buffer.from('header.payload');
    const sig = sign('sha256', data, createPrivateKey(sa.privateKeyPem));
    assert.ok(verify('sha256', data, createPublicKey(sa.publicKeyPem), sig));
  });
});

describe('kubeconfig', () => {
  it('builds a kubeconfig with embedded CA and client credentials', async () => {
    const ca = await createCA({ commonName: 'kc-ca' });
    const admin = await issueCertificate(ca, { commonName: 'admin', organizations: ['system:masters'], usage: 'client' });
    const yaml = buildKubeconfig({
      server: 'https://127.0.10.1:6443',
      caPem: ca.certPem,
      userName: 'admin',
      clientCertPem: admin.certPem,
      clientKeyPem: admin.keyPem,
      clusterName: 'c1',
      namespace: 'team-a',
    });
    const kc = parseYaml(yaml) as {
      apiVersion: string;
      kind: string;
      clusters: { name: string; cluster: { server: string; 'certificate-authority-data': string } }[];
      users: { name: string; user: Record<string, string> }[];
      contexts: { name: string; context: { cluster: string; user: string; namespace: string } }[];
      'current-context': string;
    };
    assert.equal(kc.apiVersion, 'v1');
    assert.equal(kc.kind, 'Config');
    assert.equal(kc.clusters[0]!.cluster.server, 'https://127.0.10.1:6443');
    assert.equal(Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString(), ca.certPem);
    assert.equal(Buffer.from(kc.users[0]!.user['client-certificate-data']!, 'base64').toString(), admin.certPem);
    assert.equal(Buffer.from(kc.users[0]!.user['client-key-data']!, 'base64').toString(), admin.keyPem);
    assert.equal(kc['current-context'], 'admin@c1');
    assert.deepEqual(kc.contexts[0]!.context, { cluster: 'c1', user: 'admin', namespace: 'team-a' });
    assert.throws(() => buildKubeconfig({ server: '127.0.0.1', caPem: '', userName: 'x' }), /URL/);
    assert.throws(
      () => buildKubeconfig({ server: 'https://x', caPem: '', userName: 'x', clientCertPem: 'c' }),
      /go together/,
    );
  });
});

describe('control-plane PKI', () => {
  it('writes every file with mode 0600 and chains that openssl verifies', async () => {
    const dir = join(tmp, 'cp');
    const pki = await generateControlPlanePki({ dir, apiServerHost: '127.0.10.1', apiServerPort: 6443, apiServerExtraSANs: ['api.example.test'] });
    const f = pki.files;
    for (const path of Object.values(f)) assert.equal(statSync(path).mode & 0o777, 0o600, path);
    const read = (p: string) => readFileSync(p, 'utf8');
    assert.equal(opensslVerify(read(f.caCert), read(f.apiServerCert), 'sslserver')[0], true);
    assert.equal(opensslVerify(read(f.etcdCaCert), read(f.etcdServerCert), 'sslserver')[0], true);
    assert.equal(opensslVerify(read(f.etcdCaCert), read(f.etcdPeerCert), 'sslclient')[0], true);
    assert.equal(opensslVerify(read(f.etcdCaCert), read(f.apiServerEtcdClientCert), 'sslclient')[0], true);
    assert.equal(opensslVerify(read(f.frontProxyCaCert), read(f.frontProxyClientCert), 'sslclient')[0], true);
    assert.equal(opensslVerify(read(f.caCert), read(f.etcdServerCert))[0], false, 'etcd has its own CA');
    const api = certificateInfo(read(f.apiServerCert));
    assert.ok(api.dnsNames.includes('kubernetes.default.svc'));
    assert.ok(api.dnsNames.includes('api.example.test'));
    assert.deepEqual(api.ipAddresses.sort(), ['10.96.0.1', '127.0.0.1', '127.0.10.1']);
    assert.equal(pki.apiServerURL, 'https://127.0.10.1:6443');
    const kc = parseYaml(read(f.schedulerKubeconfig)) as { users: { user: Record<string, string> }[] };
    const schedCert = Buffer.from(kc.users[0]!.user['client-certificate-data']!, 'base64').toString();
    assert.equal(certificateInfo(schedCert).commonName, 'system:kube-scheduler');
    assert.deepEqual(certificateInfo(pki.admin.certPem).organizations, ['system:masters']);
    assert.ok(pki.notAfter.getTime() <= pki.admin.notAfter.getTime());
  });
});
