// Join tokens: what lets a user's server join one pool of one cluster as a worker. kubeadm's format
// (`[a-z0-9]{6}.[a-z0-9]{16}`: a public id and a secret), a short default lifetime, optionally single
// use, revocable. Marina stores only the SHA-256 of the whole token, in a Secret of the cluster's
// project (`join-token-<id>`, type marina.dev/join-token, labelled with the cluster), so it goes
// with the cluster; the token itself is shown once, in the answer that creates it.
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import { LABEL_CLUSTER, LABEL_JOIN_TOKEN, LABEL_MACHINE, LABEL_POOL, SECRET_TYPE_JOIN_TOKEN } from '../api/wellknown.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface JoinTokenRecord {
  id: string;
  cluster: string;
  pool: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  singleUse: boolean;
  /** Servers joining with it wait for an operator's approval before their Node is admitted. */
  approval: boolean;
  description?: string;
  /** Machines that joined with it, oldest first. */
  usedBy: string[];
  revokedAt?: string;
  /**
   * Set on a token Marina issued for one Machine another provider made (an OpenStack VM's first
   * boot): the server joins *as* that Machine and is handed the bootstrap kept beside the hash.
   */
  machine?: { name: string; uid: string };
}

export type JoinTokenState = 'active' | 'expired' | 'revoked' | 'used';

function randomChars(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

export function generateToken(): { id: string; token: string } {
  const id = randomChars(6);
  return { id, token: `${id}.${randomChars(16)}` };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function secretName(id: string): string {
  return `join-token-${id}`;
}

export function tokenState(r: JoinTokenRecord, now = Date.now()): JoinTokenState {
  if (r.revokedAt) return 'revoked';
  if (r.singleUse && r.usedBy.length > 0) return 'used';
  if (Date.parse(r.expiresAt) <= now) return 'expired';
  return 'active';
}

/** The Secret that stores a token (its hash and what it may do; a machine-bound one also its bootstrap). */
export function tokenSecret(project: string, r: JoinTokenRecord, hash: string, bootstrap?: string): Secret {
  return {
    apiVersion: API_VERSION,
    kind: 'Secret',
    metadata: {
      name: secretName(r.id),
      project,
      labels: { [LABEL_CLUSTER]: r.cluster, [LABEL_POOL]: r.pool, [LABEL_JOIN_TOKEN]: r.id, ...(r.machine ? { [LABEL_MACHINE]: r.machine.name } : {}) },
    },
    spec: { type: SECRET_TYPE_JOIN_TOKEN, data: { sha256: hash, record: JSON.stringify(r), ...(bootstrap ? { bootstrap } : {}) } },
  };
}

export function recordOf(secret: Secret): JoinTokenRecord | undefined {
  if (secret.spec.type !== SECRET_TYPE_JOIN_TOKEN) return undefined;
  try {
    return JSON.parse(secret.spec.data.record ?? '') as JoinTokenRecord;
  } catch {
    return undefined;
  }
}

/** Whether `token` is the one whose SHA-256 the Secret keeps (constant time). */
export function matches(secret: Secret, token: string): boolean {
  const want = Buffer.from(secret.spec.data.sha256 ?? '', 'hex');
  const have = Buffer.from(hashToken(token), 'hex');
  return want.length === have.length && timingSafeEqual(want, have);
}

/** Why a token that matched cannot be used (for the joining server; never says more than it knows). */
export function refusal(r: JoinTokenRecord, now = Date.now()): string | undefined {
  switch (tokenState(r, now)) {
    case 'revoked':
      return `join token ${r.id} was revoked at ${r.revokedAt}`;
    case 'used':
      return `join token ${r.id} was for a single use and is used already (machine ${r.usedBy[0]})`;
    case 'expired':
      return `join token ${r.id} expired at ${r.expiresAt}; create a new one with \`marina cluster join-token create ${r.cluster} --pool ${r.pool}\``;
    default:
      return undefined;
  }
}
