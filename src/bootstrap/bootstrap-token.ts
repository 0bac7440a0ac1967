// Kubelet TLS bootstrap tokens (kubeadm's format `[a-z0-9]{6}.[a-z0-9]{16}`). Marina derives each
// machine's token from the cluster CA key and the Machine's uid, so the bootstrap data (built
// before the machine starts) and node admission (which creates the `bootstrap-token-<id>` Secret in
// the cluster and approves the CSR of `system:bootstrap:<id>`, src/controllers/node-admission.ts)
// agree on it without storing it anywhere. Whoever holds the CA key can mint certificates anyway.
import { createHmac } from 'node:crypto';
import { LABEL_MACHINE } from '../api/wellknown.js';
import type { Secret } from '../kube/objects.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** `<id>.<secret>`: what the kubelet presents as a bearer token. */
  token: string;
}

function chars(key: string, label: string, uid: string, n: number): string {
  const digest = createHmac('sha256', key).update(`${label}\0${uid}`).digest();
  let out = '';
  for (let i = 0; i < n; i++) out += ALPHABET[digest[i]! % ALPHABET.length];
  return out;
}

/** The bootstrap token of the machine with this uid (deterministic per cluster CA). */
export function bootstrapTokenFor(caKeyPem: string, machineUid: string): BootstrapToken {
  const id = chars(caKeyPem, 'marina-bootstrap-token-id', machineUid, 6);
  const secret = chars(caKeyPem, 'marina-bootstrap-token-secret', machineUid, 16);
  return { id, secret, token: `${id}.${secret}` };
}

/** The user name the apiserver gives a request authenticated with the token. */
export function bootstrapUser(id: string): string {
  return `system:bootstrap:${id}`;
}

const BOOTSTRAP_TOKEN_SECRET_TYPE = 'bootstrap.kubernetes.io/token';
/** Bootstrap tokens are Secrets in kube-system named after their id (the apiserver's convention). */
export const BOOTSTRAP_TOKEN_NAMESPACE = 'kube-system';

export function bootstrapTokenSecretName(id: string): string {
  return `bootstrap-token-${id}`;
}

/** The Secret that makes the token valid (kube-system/bootstrap-token-<id>) until `expiration`. */
export function bootstrapTokenSecret(t: BootstrapToken, opts: { expiration: Date; machine: string }): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: BOOTSTRAP_TOKEN_SECRET_TYPE,
    metadata: { name: bootstrapTokenSecretName(t.id), namespace: BOOTSTRAP_TOKEN_NAMESPACE, labels: { [LABEL_MACHINE]: opts.machine } },
    // `data`, not `stringData`: the Secret is written with server-side apply, which merges data.
    data: base64Values({
      'token-id': t.id,
      'token-secret': t.secret,
      expiration: opts.expiration.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      'usage-bootstrap-authentication': 'true',
      description: `kubelet TLS bootstrap of Marina machine ${opts.machine}`,
    }),
  };
}

function base64Values(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
}

/** When the token Secret `s` expires; 0 when it says nothing. */
export function bootstrapTokenExpiry(s: Secret): number {
  const raw = s.data?.expiration;
  return raw ? Date.parse(Buffer.from(raw, 'base64').toString('utf8')) || 0 : 0;
}
