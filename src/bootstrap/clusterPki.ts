// The long-lived key material of one cluster: three certificate authorities (cluster, etcd, front
// proxy) and the service-account signing key pair. Generated once when the cluster is created,
// stored as PEM strings in the Secret `<cluster>-pki` (encrypted at rest by the store) and loaded
// back whenever a machine needs certificates. Every leaf certificate is issued from these, so the
// CAs are the only thing that must survive a Marina restart.
//
// Certificate rotations change the Secret, and with it what every machine is made of:
//   - a leaf rotation only sets a new `generation` (the machines are rolled, each new one with
//     fresh leaf certificates from the same CAs);
//   - a CA rotation (phase 1) puts new CAs in place and keeps the old ones as `rotation`: every
//     trust bundle holds old + new, leaves are issued by the new CA and sent with the new CA
//     cross-signed by the old one, so a component that still trusts only the old CA verifies them
//     (leaf → cross → old), while one that trusts the new CA stops there. Phase 2 drops the old
//     CAs: trust in them ends, and so does every certificate they issued.
import {
  type CertificateAuthority,
  createCA,
  createServiceAccountKeyPair,
  crossSignCA,
  issueCertificate,
  type IssuedCertificate,
  type IssueOptions,
  type KeyAlgorithm,
  loadCA,
} from '../pki/index.js';

/** The three certificate authorities of a cluster. */
export type CaName = 'ca' | 'etcdCa' | 'frontProxyCa';
export const CA_NAMES: readonly CaName[] = ['ca', 'etcdCa', 'frontProxyCa'];

/** What a CA rotation in progress (phase 1) keeps of each replaced CA. */
export interface CaRotation {
  /** The replaced CA's certificate: still trusted until phase 2. */
  previousCertPem: string;
  /** The new CA's certificate signed by the replaced one: sent after every leaf the new CA issues. */
  crossCertPem: string;
}

/** The serializable form: PEM text only. */
export interface ClusterPkiData {
  caCert: string;
  caKey: string;
  etcdCaCert: string;
  etcdCaKey: string;
  frontProxyCaCert: string;
  frontProxyCaKey: string;
  /** PKCS#8 PEM signing service-account tokens. */
  serviceAccountKey: string;
  /** SPKI PEM verifying service-account tokens. */
  serviceAccountPub: string;
  generation?: string;
  rotation?: Record<CaName, CaRotation>;
}

/** The loaded form, ready to issue certificates. */
export interface ClusterPki {
  ca: CertificateAuthority;
  etcdCa: CertificateAuthority;
  frontProxyCa: CertificateAuthority;
  serviceAccount: { privateKeyPem: string; publicKeyPem: string };
  /**
   * Set by every certificate rotation (absent on a cluster never rotated): machines whose
   * certificates were issued under another generation are rolled.
   */
  generation?: string;
  /** Phase 1 of a CA rotation: the replaced CAs, still trusted. */
  rotation?: Record<CaName, CaRotation>;
}

/** Secret data keys, kubeadm's file names. */
const KEYS: Record<Exclude<keyof ClusterPkiData, 'generation' | 'rotation'>, string> = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  etcdCaCert: 'etcd-ca.crt',
  etcdCaKey: 'etcd-ca.key',
  frontProxyCaCert: 'front-proxy-ca.crt',
  frontProxyCaKey: 'front-proxy-ca.key',
  serviceAccountKey: 'sa.key',
  serviceAccountPub: 'sa.pub',
};
const GENERATION_KEY = 'generation';
/** Secret data key prefix of each CA (`<prefix>-previous.crt`, `<prefix>-cross.crt` during a rotation). */
const CA_FILE: Record<CaName, string> = { ca: 'ca', etcdCa: 'etcd-ca', frontProxyCa: 'front-proxy-ca' };

export interface GeneratePkiOptions {
  /** Validity of the CAs in days (default 3650). */
  validityDays?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** Goes into the CA common names, e.g. `kubernetes (prod)`. */
  clusterName?: string;
  /** Appended to the CA common names, so a rotation's new CAs are told apart from the old ones. */
  nameSuffix?: string;
}

async function generateCAs(options: GeneratePkiOptions): Promise<Record<CaName, CertificateAuthority>> {
  const suffix = `${options.clusterName ? ` (${options.clusterName})` : ''}${options.nameSuffix ? ` ${options.nameSuffix}` : ''}`;
  const common = { validityDays: options.validityDays ?? 3650, keyAlgorithm: options.keyAlgorithm };
  const [ca, etcdCa, frontProxyCa] = await Promise.all([
    createCA({ commonName: `kubernetes${suffix}`, ...common }),
    createCA({ commonName: `etcd-ca${suffix}`, ...common }),
    createCA({ commonName: `front-proxy-ca${suffix}`, ...common }),
  ]);
  return { ca, etcdCa, frontProxyCa };
}

/** Creates fresh CAs and a service-account key pair. */
export async function generateClusterPki(options: GeneratePkiOptions = {}): Promise<ClusterPki> {
  const [cas, sa] = await Promise.all([generateCAs(options), createServiceAccountKeyPair(options.keyAlgorithm)]);
  return { ...cas, serviceAccount: { privateKeyPem: sa.privateKeyPem, publicKeyPem: sa.publicKeyPem } };
}

// ---------- rotations ----------

/** Leaf rotation: same CAs, a new generation (every machine is rolled onto fresh leaves). */
export function withGeneration(pki: ClusterPki, generation: string): ClusterPki {
  return { ...pki, generation };
}

/**
 * CA rotation, phase 1: new CAs sign from now on, the old ones stay trusted, each new CA is
 * cross-signed by the old one. The service-account key stays (tokens are not certificates).
 */
export async function beginCaRotation(pki: ClusterPki, generation: string, options: Omit<GeneratePkiOptions, 'nameSuffix'> = {}): Promise<ClusterPki> {
  if (pki.rotation) throw new Error('a CA rotation is already in progress (its old CAs are still trusted)');
  const stamp = generation.replace(/[^A-Za-z0-9-]/g, '').slice(-24);
  const next = await generateCAs({ ...options, nameSuffix: `rotated ${stamp}` });
  const rotation = {} as Record<CaName, CaRotation>;
  for (const name of CA_NAMES) rotation[name] = { previousCertPem: pki[name].certPem, crossCertPem: await crossSignCA(next[name], pki[name]) };
  return { ...next, serviceAccount: pki.serviceAccount, generation, rotation };
}

/** CA rotation, phase 2: trust in the old CAs ends. */
export function finishCaRotation(pki: ClusterPki, generation: string): ClusterPki {
  const { rotation: _done, ...rest } = pki;
  return { ...rest, generation };
}

// ---------- what machines and clients are given ----------

/** The PEM bundle that verifies certificates of CA `name`: the CA, plus the one it replaces during a rotation. */
export function trustPem(pki: ClusterPki, name: CaName): string {
  const previous = pki.rotation?.[name].previousCertPem;
  return previous ? `${pki[name].certPem.trimEnd()}\n${previous.trimEnd()}\n` : pki[name].certPem;
}

/**
 * A leaf certificate from CA `name`; during a rotation its PEM carries the cross-signed CA after
 * the leaf (a chain), so those who trust only the old CA verify it too.
 */
export async function issueLeaf(pki: ClusterPki, name: CaName, options: IssueOptions): Promise<IssuedCertificate> {
  const leaf = await issueCertificate(pki[name], options);
  const cross = pki.rotation?.[name].crossCertPem;
  return cross ? { ...leaf, certPem: `${leaf.certPem.trimEnd()}\n${cross.trimEnd()}\n` } : leaf;
}

// ---------- the Secret ----------

export function serializeClusterPki(pki: ClusterPki): ClusterPkiData {
  return {
    caCert: pki.ca.certPem,
    caKey: pki.ca.keyPem,
    etcdCaCert: pki.etcdCa.certPem,
    etcdCaKey: pki.etcdCa.keyPem,
    frontProxyCaCert: pki.frontProxyCa.certPem,
    frontProxyCaKey: pki.frontProxyCa.keyPem,
    serviceAccountKey: pki.serviceAccount.privateKeyPem,
    serviceAccountPub: pki.serviceAccount.publicKeyPem,
    ...(pki.generation ? { generation: pki.generation } : {}),
    ...(pki.rotation ? { rotation: pki.rotation } : {}),
  };
}

/** Secret `spec.data` (file-name keys → PEM). */
export function pkiToSecretData(pki: ClusterPki): Record<string, string> {
  const data = serializeClusterPki(pki);
  const out: Record<string, string> = {};
  for (const [field, key] of Object.entries(KEYS) as [keyof typeof KEYS, string][]) out[key] = data[field];
  if (data.generation) out[GENERATION_KEY] = data.generation;
  for (const name of CA_NAMES) {
    const r = data.rotation?.[name];
    if (!r) continue;
    out[`${CA_FILE[name]}-previous.crt`] = r.previousCertPem;
    out[`${CA_FILE[name]}-cross.crt`] = r.crossCertPem;
  }
  return out;
}

/** Reads the PEM strings back from Secret `spec.data`; throws naming the first missing key. */
export function pkiDataFromSecretData(data: Record<string, string> | undefined): ClusterPkiData {
  const out = {} as ClusterPkiData;
  for (const [field, key] of Object.entries(KEYS) as [keyof typeof KEYS, string][]) {
    const v = data?.[key];
    if (typeof v !== 'string' || !v.includes('-----BEGIN')) throw new Error(`PKI secret has no PEM under ${JSON.stringify(key)}`);
    out[field] = v;
  }
  const generation = data?.[GENERATION_KEY];
  if (generation) out.generation = generation;
  const rotation = {} as Record<CaName, CaRotation>;
  for (const name of CA_NAMES) {
    const previousCertPem = data?.[`${CA_FILE[name]}-previous.crt`];
    const crossCertPem = data?.[`${CA_FILE[name]}-cross.crt`];
    if (previousCertPem && crossCertPem) rotation[name] = { previousCertPem, crossCertPem };
  }
  const found = Object.keys(rotation).length;
  if (found > 0 && found < CA_NAMES.length) throw new Error('PKI secret holds a CA rotation for only some of its CAs');
  if (found > 0) out.rotation = rotation;
  return out;
}

/** Parses and checks (key matches certificate) the serialized PKI. */
export async function loadClusterPki(data: ClusterPkiData): Promise<ClusterPki> {
  const [ca, etcdCa, frontProxyCa] = await Promise.all([
    loadCA(data.caCert, data.caKey),
    loadCA(data.etcdCaCert, data.etcdCaKey),
    loadCA(data.frontProxyCaCert, data.frontProxyCaKey),
  ]);
  return {
    ca,
    etcdCa,
    frontProxyCa,
    serviceAccount: { privateKeyPem: data.serviceAccountKey, publicKeyPem: data.serviceAccountPub },
    ...(data.generation ? { generation: data.generation } : {}),
    ...(data.rotation ? { rotation: data.rotation } : {}),
  };
}

/** `loadClusterPki(pkiDataFromSecretData(data))`. */
export async function loadClusterPkiFromSecretData(data: Record<string, string> | undefined): Promise<ClusterPki> {
  return loadClusterPki(pkiDataFromSecretData(data));
}

/** name + notBefore/notAfter of each CA (and of the CAs a rotation replaces), for Cluster.status.certificates. */
export function caExpiries(pki: ClusterPki): { name: string; notAfter: string; notBefore: string }[] {
  const of = (name: string, ca: CertificateAuthority) => ({ name, notAfter: ca.notAfter.toISOString(), notBefore: ca.notBefore.toISOString() });
  return [of('ca', pki.ca), of('etcd-ca', pki.etcdCa), of('front-proxy-ca', pki.frontProxyCa)];
}
