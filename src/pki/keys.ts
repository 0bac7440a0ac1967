// Key pairs and PEM encoding (PKCS#8 private keys, SPKI public keys) on Node's WebCrypto.
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';

/** The WebCrypto implementation used by the whole PKI library. */
export const crypto = webcrypto as unknown as Crypto;

/**
 * Key algorithms. ECDSA P-256 is the default: etcd, every Kubernetes component and kubectl accept it
 * for TLS, and kube-apiserver accepts it for service-account tokens (ES256); it is ~100x faster to
 * generate than RSA 2048.
 */
export type KeyAlgorithm = 'ecdsa-p256' | 'rsa-2048';

export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = 'ecdsa-p256';

/** WebCrypto parameters for generating/importing a key of the given algorithm. */
export function keyParams(algorithm: KeyAlgorithm): RsaHashedKeyGenParams | EcKeyGenParams {
  switch (algorithm) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'rsa-2048':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      };
  }
}

/** Signature algorithm parameters for certificates signed with a key of the given algorithm. */
export function signingParams(algorithm: KeyAlgorithm): Algorithm | EcdsaParams {
  return algorithm === 'ecdsa-p256' ? ({ name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams) : { name: 'RSASSA-PKCS1-v1_5' };
}

/** Which KeyAlgorithm a WebCrypto key uses. */
export function keyAlgorithmOf(key: CryptoKey): KeyAlgorithm {
  const alg = key.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (alg.name === 'ECDSA' && alg.namedCurve === 'P-256') return 'ecdsa-p256';
  if (alg.name === 'RSASSA-PKCS1-v1_5' && alg.modulusLength === 2048) return 'rsa-2048';
  throw new Error(`unsupported key algorithm ${JSON.stringify(alg)}`);
}

/** A new extractable key pair. */
export async function generateKeyPair(algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(keyParams(algorithm), true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PEM armor of DER bytes. */
export function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every PEM block of a text: label and DER bytes. */
export function parsePemBlocks(pem: string): { label: string; der: Uint8Array<ArrayBuffer> }[] {
  const out: { label: string; der: Uint8Array<ArrayBuffer> }[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(pem); m; m = re.exec(pem)) {
    out.push({ label: m[1]!, der: new Uint8Array(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64')) });
  }
  return out;
}

/** PKCS#8 PEM ("PRIVATE KEY") of a private key. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** SPKI PEM ("PUBLIC KEY") of a public key. */
export async function exportPublicKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await crypto.subtle.exportKey('spki', key), 'PUBLIC KEY');
}

/**
 * Imports a private key PEM (PKCS#8 "PRIVATE KEY", or the legacy "EC PRIVATE KEY" / "RSA PRIVATE
 * KEY") and derives its public key. Both are extractable.
 */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKeyPair & { algorithm: KeyAlgorithm }> {
  const keyObject = createPrivateKey(pem);
  let algorithm: KeyAlgorithm;
  if (keyObject.asymmetricKeyType === 'ec' && keyObject.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    algorithm = 'ecdsa-p256';
  } else if (keyObject.asymmetricKeyType === 'rsa' && keyObject.asymmetricKeyDetails?.modulusLength === 2048) {
    algorithm = 'rsa-2048';
  } else {
    throw new Error(
      `unsupported private key: ${keyObject.asymmetricKeyType} ${JSON.stringify(keyObject.asymmetricKeyDetails)}`,
    );
  }
  const params = keyParams(algorithm);
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(keyObject).export({ type: 'spki', format: 'der' });
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, params, true, ['sign']);
  const publicKey = await crypto.subtle.importKey('spki', spki, params, true, ['verify']);
  return { privateKey, publicKey, algorithm };
}

/** A service-account signing key pair as PEM (private: PKCS#8, public: SPKI). */
export interface ServiceAccountKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  algorithm: KeyAlgorithm;
}

/**
 * Key pair for kube-apiserver's --service-account-signing-key-file (private) and
 * --service-account-key-file / kube-controller-manager's --service-account-private-key-file.
 */
export async function createServiceAccountKeyPair(
  algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM,
): Promise<ServiceAccountKeyPair> {
  const keys = await generateKeyPair(algorithm);
  return {
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
    publicKeyPem: await exportPublicKeyPem(keys.publicKey),
    algorithm,
  };
}
