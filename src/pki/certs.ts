// Certificate authorities and leaf certificates on @peculiar/x509.
// @peculiar/x509 2.x needs a Reflect metadata polyfill loaded before it (see its README).
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import {
  crypto,
  DEFAULT_KEY_ALGORITHM,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  keyAlgorithmOf,
  type KeyAlgorithm,
  parsePemBlocks,
  signingParams,
  toPem,
} from './keys.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start this long before "now" to tolerate small clock differences. */
const BACKDATE_MS = 5 * 60 * 1000;

export interface CertificateAuthority {
  cert: x509.X509Certificate;
  certPem: string;
  /** PKCS#8 PEM of the CA private key. */
  keyPem: string;
  keys: CryptoKeyPair;
  algorithm: KeyAlgorithm;
  notBefore: Date;
  notAfter: Date;
}

export interface CreateCAOptions {
  commonName: string;
  organizations?: string[];
  /** Validity in days (default 3650). */
  validityDays?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** Start of validity (default now - 5 minutes). */
  notBefore?: Date;
}

export type CertUsage = 'server' | 'client' | 'both';

export interface IssueOptions {
  commonName: string;
  /** Subject O values; Kubernetes maps them to groups (e.g. system:masters). */
  organizations?: string[];
  dnsNames?: string[];
  /** IPv4/IPv6 addresses for the SAN. */
  ipAddresses?: string[];
  usage: CertUsage;
  /** Validity in days (default 365). Ignored when notAfter is given. */
  validityDays?: number;
  notBefore?: Date;
  notAfter?: Date;
  keyAlgorithm?: KeyAlgorithm;
}

export interface IssuedCertificate {
  cert: x509.X509Certificate;
  certPem: string;
  /** PKCS#8 PEM of the leaf private key. */
  keyPem: string;
  keys: CryptoKeyPair;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** Random positive 128-bit serial (hex, high bit clear, never zero). */
export function randomSerialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

function subjectName(commonName: string, organizations: string[] = []): x509.JsonName {
  // One RDN per attribute, O before CN (the order openssl and kubeadm use).
  return [...organizations.map((o) => ({ O: [o] })), { CN: [commonName] }];
}

/** Creates a self-signed CA (basicConstraints CA:TRUE critical, keyCertSign|cRLSign). */
export async function createCA(options: CreateCAOptions): Promise<CertificateAuthority> {
  const algorithm = options.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM;
  const keys = await generateKeyPair(algorithm);
  const notBefore = options.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const notAfter = new Date(notBefore.getTime() + BACKDATE_MS + (options.validityDays ?? 3650) * DAY_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: subjectName(options.commonName, options.organizations),
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: signingParams(algorithm),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return {
    cert,
    certPem: encodeCertificatePem(cert),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    keys,
    algorithm,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** Loads a CA from its certificate and private key PEM. */
export async function loadCA(certPem: string, keyPem: string): Promise<CertificateAuthority> {
  const cert = decodeCertificatePem(certPem);
  const { privateKey, publicKey, algorithm } = await importPrivateKeyPem(keyPem);
  const certKey = Buffer.from(cert.publicKey.rawData);
  const ownKey = Buffer.from(await crypto.subtle.exportKey('spki', publicKey));
  if (!certKey.equals(ownKey)) throw new Error('CA private key does not match the CA certificate');
  return {
    cert,
    certPem: encodeCertificatePem(cert),
    keyPem,
    keys: { privateKey, publicKey },
    algorithm,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** Issues a leaf certificate signed by the CA, with a fresh key pair. */
export async function issueCertificate(ca: CertificateAuthority, options: IssueOptions): Promise<IssuedCertificate> {
  const algorithm = options.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM;
  const keys = await generateKeyPair(algorithm);
  const notBefore = options.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  let notAfter = options.notAfter ?? new Date(notBefore.getTime() + BACKDATE_MS + (options.validityDays ?? 365) * DAY_MS);
  if (notAfter > ca.notAfter) notAfter = ca.notAfter; // never outlive the issuer

  const usages = new Set<string>();
  if (options.usage === 'server' || options.usage === 'both') usages.add(x509.ExtendedKeyUsage.serverAuth);
  if (options.usage === 'client' || options.usage === 'both') usages.add(x509.ExtendedKeyUsage.clientAuth);
  let keyUsage = x509.KeyUsageFlags.digitalSignature;
  if (algorithm === 'rsa-2048') keyUsage |= x509.KeyUsageFlags.keyEncipherment;

  const sans: x509.JsonGeneralName[] = [];
  for (const dns of options.dnsNames ?? []) sans.push({ type: 'dns', value: dns });
  for (const ip of options.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
    sans.push({ type: 'ip', value: ip });
  }

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(keyUsage, true),
    new x509.ExtendedKeyUsageExtension([...usages], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey, false, crypto),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));

  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: subjectName(options.commonName, options.organizations),
      // The issuer must be byte-identical to the CA's subject (Go matches RawIssuer to RawSubject).
      issuer: ca.cert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: ca.keys.privateKey,
      signingAlgorithm: signingParams(keyAlgorithmOf(ca.keys.privateKey)),
      extensions,
    },
    crypto,
  );
  return {
    cert,
    certPem: encodeCertificatePem(cert),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    keys,
    serialNumber: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/**
 * The certificate of `successor` (same subject, same key) signed by `predecessor`: a cross-signed
 * intermediate. Sent after a leaf of `successor`, it lets anyone who trusts only `predecessor`
 * verify that leaf (leaf → cross → predecessor), while those who trust `successor` itself stop at
 * it. A CA rotation hands it out while both are in use.
 */
export async function crossSignCA(successor: CertificateAuthority, predecessor: CertificateAuthority): Promise<string> {
  const notAfter = successor.notAfter < predecessor.notAfter ? successor.notAfter : predecessor.notAfter;
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: successor.cert.subjectName,
      issuer: predecessor.cert.subjectName,
      notBefore: successor.notBefore,
      notAfter,
      publicKey: successor.keys.publicKey,
      signingKey: predecessor.keys.privateKey,
      signingAlgorithm: signingParams(keyAlgorithmOf(predecessor.keys.privateKey)),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(successor.keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(predecessor.keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return encodeCertificatePem(cert);
}

/** PEM ("CERTIFICATE") of a certificate. */
export function encodeCertificatePem(cert: x509.X509Certificate): string {
  return toPem(cert.rawData, 'CERTIFICATE');
}

/** Every certificate of a PEM bundle, in order. */
export function decodeCertificatesPem(pem: string): x509.X509Certificate[] {
  return parsePemBlocks(pem)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => new x509.X509Certificate(b.der));
}

/** The first certificate of a PEM text; throws if there is none. */
export function decodeCertificatePem(pem: string): x509.X509Certificate {
  const first = decodeCertificatesPem(pem)[0];
  if (!first) throw new Error('no CERTIFICATE block in PEM');
  return first;
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  commonName: string | undefined;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  serialNumber: string;
  isCA: boolean;
  extendedKeyUsages: ('serverAuth' | 'clientAuth' | string)[];
  notBefore: Date;
  notAfter: Date;
}

const EKU_NAMES: Record<string, string> = {
  [x509.ExtendedKeyUsage.serverAuth]: 'serverAuth',
  [x509.ExtendedKeyUsage.clientAuth]: 'clientAuth',
};

/** Parsed facts about a certificate (PEM text or parsed certificate). */
export function certificateInfo(input: string | x509.X509Certificate): CertificateInfo {
  const cert = typeof input === 'string' ? decodeCertificatePem(input) : input;
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    commonName: cert.subjectName.getField('CN')[0],
    organizations: cert.subjectName.getField('O'),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    serialNumber: cert.serialNumber,
    isCA: bc?.ca ?? false,
    extendedKeyUsages: Array.from(eku?.usages ?? [], (u) => EKU_NAMES[String(u)] ?? String(u)),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

/** notAfter of a certificate PEM (first certificate). */
export function certificateNotAfter(pem: string): Date {
  return decodeCertificatePem(pem).notAfter;
}
