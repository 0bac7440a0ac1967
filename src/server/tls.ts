// `marina server --tls auto`: Marina's own CA and a serving certificate, kept in the data directory
// (`tls/`). The CA is made once; the serving certificate is re-issued from it whenever the names
// the server should answer to change (or it nears its end), so the CA pin that join commands carry
// stays valid.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { certificateInfo, createCA, issueCertificate, loadCA } from '../pki/index.js';
import { caPin } from '../joins/pin.js';

export type TlsMode = 'auto' | 'off';

export interface ServerTls {
  caPem: string;
  certPem: string;
  keyPem: string;
  /** sha256:<hex> of the CA's SubjectPublicKeyInfo. */
  caPin: string;
  caFile: string;
}

/** Whether a listen host is reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** The names a server listening on `host` answers to. */
export function serverNames(host: string, extra: string[] = []): string[] {
  const names = new Set(['localhost', '127.0.0.1', hostname(), ...extra]);
  if (host === '0.0.0.0' || host === '::') {
    for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) if (a.family === 'IPv4') names.add(a.address);
  } else {
    names.add(host);
  }
  return [...names].filter(Boolean);
}

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

export async function loadOrCreateServerTls(dataDir: string, names: string[]): Promise<ServerTls> {
  const dir = join(dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n: string) => join(dir, n);
  let ca;
  if (existsSync(f('ca.crt')) && existsSync(f('ca.key'))) {
    ca = await loadCA(readFileSync(f('ca.crt'), 'utf8'), readFileSync(f('ca.key'), 'utf8'));
  } else {
    ca = await createCA({ commonName: `marina-ca (${hostname()})`, validityDays: 3650 });
    writeFileSync(f('ca.key'), ca.keyPem, { mode: 0o600 });
    writeFileSync(f('ca.crt'), ca.certPem);
  }
  const want = [...new Set(names)].sort();
  let current: { certPem: string; keyPem: string } | undefined;
  if (existsSync(f('server.crt')) && existsSync(f('server.key'))) {
    const certPem = readFileSync(f('server.crt'), 'utf8');
    try {
      const info = certificateInfo(certPem);
      const have = [...info.dnsNames, ...info.ipAddresses];
      const fresh = info.notAfter.getTime() - Date.now() > RENEW_BEFORE_MS && want.every((n) => have.includes(n)) && info.issuer === ca.cert.subject;
      if (fresh) current = { certPem, keyPem: readFileSync(f('server.key'), 'utf8') };
    } catch {
      current = undefined;
    }
  }
  if (!current) {
    const leaf = await issueCertificate(ca, {
      commonName: 'marina',
      dnsNames: want.filter((n) => isIP(n) === 0),
      ipAddresses: want.filter((n) => isIP(n) !== 0),
      usage: 'server',
      validityDays: 365,
    });
    writeFileSync(f('server.key'), leaf.keyPem, { mode: 0o600 });
    writeFileSync(f('server.crt'), leaf.certPem);
    current = { certPem: leaf.certPem, keyPem: leaf.keyPem };
  }
  return { caPem: ca.certPem, certPem: current.certPem, keyPem: current.keyPem, caPin: caPin(ca.certPem), caFile: f('ca.crt') };
}
