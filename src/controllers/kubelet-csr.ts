// Which kubelet certificate signing requests Marina approves. Kubernetes leaves the kubelet-serving
// signer to the cluster operator and Marina does not grant kube-controller-manager's automatic
// approval, so every kubelet certificate of a real worker passes these checks:
//
//   client (kubernetes.io/kube-apiserver-client-kubelet)  requester system:bootstrap:<the machine's
//     token id> (first certificate) or system:node:<machine> (renewal); subject exactly
//     CN=system:node:<machine>, O=system:nodes; no alternative names; client usages only.
//   serving (kubernetes.io/kubelet-serving)  requester system:node:<machine> in group system:nodes;
//     the same subject; DNS names only the machine's name, IP addresses only the Machine's address;
//     server usages only.
//
// Anything else that claims to be a Marina machine's Node is denied with the reason; CSRs of other
// signers or other names are none of Marina's business and stay untouched.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { bootstrapUser } from '../bootstrap/bootstrap-token.js';
import type { CertificateSigningRequest } from '../kube/objects.js';

export const SIGNER_CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';
export const SIGNER_SERVING = 'kubernetes.io/kubelet-serving';

/** The parts of a CertificateSigningRequest the judgement reads. */
export type CsrObject = Pick<CertificateSigningRequest, 'metadata' | 'spec' | 'status'>;

/** The Marina machine a CSR is judged against. */
export interface CsrMachine {
  name: string;
  /** Its node address (serving certificates may name only it); undefined while unknown. */
  address?: string;
  /**
   * The address is final (the machine runs). Before, a mismatch only waits: the provider reports
   * a real worker's node address just after starting it.
   */
  settled: boolean;
  /** Its bootstrap token id. */
  tokenId: string;
}

export type Verdict = { action: 'approve'; message: string } | { action: 'deny'; reason: string; message: string } | { action: 'ignore' };

const CLIENT_USAGES = new Set(['client auth', 'digital signature', 'key encipherment']);
const SERVING_USAGES = new Set(['server auth', 'digital signature', 'key encipherment']);

export function isPending(csr: CsrObject): boolean {
  return !(csr.status?.conditions ?? []).some((c) => c.type === 'Approved' || c.type === 'Denied' || c.type === 'Failed');
}

/** The node name a CSR asks a certificate for (`system:node:<name>` in the subject's CN). */
export function requestedNode(csr: CsrObject): string | undefined {
  try {
    const cn = parseRequest(csr).subjectName.getField('CN')[0];
    return cn?.startsWith('system:node:') ? cn.slice('system:node:'.length) : undefined;
  } catch {
    return undefined;
  }
}

function parseRequest(csr: CsrObject): x509.Pkcs10CertificateRequest {
  return new x509.Pkcs10CertificateRequest(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
}

export function judgeCsr(csr: CsrObject, machine: CsrMachine): Verdict {
  const signer = csr.spec.signerName;
  if (signer !== SIGNER_CLIENT && signer !== SIGNER_SERVING) return { action: 'ignore' };
  let req: x509.Pkcs10CertificateRequest;
  try {
    req = parseRequest(csr);
  } catch (err) {
    return { action: 'deny', reason: 'MalformedRequest', message: `cannot parse the request: ${(err as Error).message}` };
  }
  const cns = req.subjectName.getField('CN');
  const orgs = req.subjectName.getField('O');
  const nodeUser = `system:node:${machine.name}`;
  if (cns.length !== 1 || cns[0] !== nodeUser) return { action: 'ignore' };
  const deny = (message: string): Verdict => ({ action: 'deny', reason: 'NotThisMachine', message: `Marina machine ${machine.name}: ${message}` });
  if (orgs.length !== 1 || orgs[0] !== 'system:nodes') return deny(`subject must be O=system:nodes, got ${JSON.stringify(orgs)}`);
  const otherSubject = req.subjectName.toJSON().flatMap((rdn) => Object.keys(rdn)).filter((k) => k !== 'CN' && k !== 'O');
  if (otherSubject.length > 0) return deny(`unexpected subject fields ${otherSubject.join(', ')}`);
  const sanExt = req.extensions.find((e) => e.type === '2.5.29.17');
  const names = sanExt ? new x509.SubjectAlternativeNameExtension(sanExt.rawData).names.toJSON() : [];
  const usages = csr.spec.usages ?? [];
  const user = csr.spec.username ?? '';

  if (signer === SIGNER_CLIENT) {
    if (user !== bootstrapUser(machine.tokenId) && user !== nodeUser) return deny(`requested by ${user}, not by its bootstrap token or itself`);
    if (names.length > 0) return deny('client certificates carry no alternative names');
    const bad = usages.filter((u) => !CLIENT_USAGES.has(u));
    if (bad.length > 0 || !usages.includes('client auth')) return deny(`usages ${JSON.stringify(usages)} are not a kubelet client's`);
    return { action: 'approve', message: `Marina: kubelet client certificate of machine ${machine.name} (requested by ${user})` };
  }

  if (user !== nodeUser || !(csr.spec.groups ?? []).includes('system:nodes')) return deny(`serving certificate requested by ${user}, not by the node itself`);
  for (const n of names) {
    if (n.type === 'dns' && n.value !== machine.name) return deny(`DNS name ${n.value} is not the machine's name`);
    if (n.type === 'ip' && n.value !== machine.address) {
      return machine.settled ? deny(`IP address ${n.value} is not the machine's address ${machine.address ?? '(none)'}`) : { action: 'ignore' };
    }
    if (n.type !== 'dns' && n.type !== 'ip') return deny(`alternative name of type ${n.type} is not allowed`);
  }
  const bad = usages.filter((u) => !SERVING_USAGES.has(u));
  if (bad.length > 0 || !usages.includes('server auth')) return deny(`usages ${JSON.stringify(usages)} are not a kubelet server's`);
  return { action: 'approve', message: `Marina: kubelet serving certificate of machine ${machine.name} for ${names.map((n) => n.value).join(', ')}` };
}
