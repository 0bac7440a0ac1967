// The long-lived key material of one cluster: three certificate authorities (cluster, etcd, front
// proxy) and the service-account signing key pair. Generated once when the cluster is created,
// stored as PEM strings in the Secret `<cluster>-pki` (encrypted at rest by the store) and loaded
// back whenever a machine needs certificates. Every leaf certificate is issued from these, so the
// CAs are the only thing that must survive a Marina restart.
import {
  type CertificateAuthority,
  createCA,
  createServiceAccountKeyPair,
  type KeyAlgorithm,
  loadCA,
} from '../pki/index.js';

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
}

/** The loaded form, ready to issue certificates. */
export interface ClusterPki {
  ca: CertificateAuthority;
  etcdCa: CertificateAuthority;
  frontProxyCa: CertificateAuthority;
  serviceAccount: { privateKeyPem: string; publicKeyPem: string };
}

/** Secret data keys, kubeadm's file names. */
const KEYS: Record<keyof ClusterPkiData, string> = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  etcdCaCert: 'etcd-ca.crt',
  etcdCaKey: 'etcd-ca.key',
  frontProxyCaCert: 'front-proxy-ca.crt',
  frontProxyCaKey: 'front-proxy-ca.key',
  serviceAccountKey: 'sa.key',
  serviceAccountPub: 'sa.pub',
};

export interface GeneratePkiOptions {
  /** Validity of the CAs in days (default 3650). */
  validityDays?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** Goes into the CA common names, e.g. `kubernetes (prod)`. */
  clusterName?: string;
}

/** Creates fresh CAs and a service-account key pair. */
export async function generateClusterPki(options: GeneratePkiOptions = {}): Promise<ClusterPki> {
  const suffix = options.clusterName ? ` (${options.clusterName})` : '';
  const common = { validityDays: options.validityDays ?? 3650, keyAlgorithm: options.keyAlgorithm };
  const [ca, etcdCa, frontProxyCa, sa] = await Promise.all([
    createCA({ commonName: `kubernetes${suffix}`, ...common }),
    createCA({ commonName: `etcd-ca${suffix}`, ...common }),
    createCA({ commonName: `front-proxy-ca${suffix}`, ...common }),
    createServiceAccountKeyPair(options.keyAlgorithm),
  ]);
  return { ca, etcdCa, frontProxyCa, serviceAccount: { privateKeyPem: sa.privateKeyPem, publicKeyPem: sa.publicKeyPem } };
}

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
  };
}

/** Secret `spec.data` (file-name keys → PEM). */
export function pkiToSecretData(pki: ClusterPki): Record<string, string> {
  const data = serializeClusterPki(pki);
  const out: Record<string, string> = {};
  for (const [field, key] of Object.entries(KEYS) as [keyof ClusterPkiData, string][]) out[key] = data[field];
  return out;
}

/** Reads the PEM strings back from Secret `spec.data`; throws naming the first missing key. */
export function pkiDataFromSecretData(data: Record<string, string> | undefined): ClusterPkiData {
  const out = {} as ClusterPkiData;
  for (const [field, key] of Object.entries(KEYS) as [keyof ClusterPkiData, string][]) {
    const v = data?.[key];
    if (typeof v !== 'string' || !v.includes('-----BEGIN')) throw new Error(`PKI secret has no PEM under ${JSON.stringify(key)}`);
    out[field] = v;
  }
  return out;
}

/** Parses and checks (key matches certificate) the serialized PKI. */
export async function loadClusterPki(data: ClusterPkiData): Promise<ClusterPki> {
  const [ca, etcdCa, frontProxyCa] = await Promise.all([
    loadCA(data.caCert, data.caKey),
    loadCA(data.etcdCaCert, data.etcdCaKey),
    loadCA(data.frontProxyCaCert, data.frontProxyCaKey),
  ]);
  return { ca, etcdCa, frontProxyCa, serviceAccount: { privateKeyPem: data.serviceAccountKey, publicKeyPem: data.serviceAccountPub } };
}

/** `loadClusterPki(pkiDataFromSecretData(data))`. */
export async function loadClusterPkiFromSecretData(data: Record<string, string> | undefined): Promise<ClusterPki> {
  return loadClusterPki(pkiDataFromSecretData(data));
}

/** name + notAfter of each CA, for Cluster.status.certificates. */
export function caExpiries(pki: ClusterPki): { name: string; notAfter: string }[] {
  return [
    { name: 'ca', notAfter: pki.ca.notAfter.toISOString() },
    { name: 'etcd-ca', notAfter: pki.etcdCa.notAfter.toISOString() },
    { name: 'front-proxy-ca', notAfter: pki.frontProxyCa.notAfter.toISOString() },
  ];
}
