// The pin of a CA, kubeadm style: `sha256:<hex of the SHA-256 of the CA certificate's DER
// SubjectPublicKeyInfo>`. A joining server compares it with the CA it was shown before it sends
// any credential (kubeadm's discovery-token-ca-cert-hash; k3s checks a CA hash likewise).
import { createHash, X509Certificate } from 'node:crypto';

export function caPin(caPem: string): string {
  const spki = new X509Certificate(caPem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** `sha256:` followed by 64 hex digits (upper case accepted). */
export function isPin(s: string): boolean {
  return /^sha256:[0-9a-fA-F]{64}$/.test(s);
}

export function pinsEqual(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
