// HTTP schemas of join tokens (the API people use) and of the join protocol (what agents on
// imported servers speak, outside the API prefix). Registered as OpenAPI components by openapi.ts.
import { Type, type Static } from '@sinclair/typebox';
import { MAX_TTL_SECONDS } from '../joins/tokens.js';

export const CreateJoinTokenRequest = Type.Object(
  {
    pool: Type.String({ minLength: 1, maxLength: 63, description: 'the pool (provider import) servers join' }),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS, description: 'lifetime (default 3600)' })),
    singleUse: Type.Optional(Type.Boolean({ description: 'refused after one server joined with it' })),
    approval: Type.Optional(Type.Boolean({ description: "servers that join with it wait for an operator's approval (marina cluster approve)" })),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { $id: 'CreateJoinTokenRequest', additionalProperties: false },
);
export type CreateJoinTokenRequest = Static<typeof CreateJoinTokenRequest>;

const tokenFields = {
  id: Type.String({ description: 'the public part of the token' }),
  cluster: Type.String(),
  pool: Type.String(),
  createdAt: Type.String(),
  createdBy: Type.String(),
  expiresAt: Type.String(),
  singleUse: Type.Boolean(),
  approval: Type.Boolean(),
  description: Type.Optional(Type.String()),
  usedBy: Type.Array(Type.String(), { description: 'machines that joined with it' }),
  revokedAt: Type.Optional(Type.String()),
};

export const JoinTokenInfo = Type.Object(
  { ...tokenFields, state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('used')]) },
  { $id: 'JoinTokenInfo', description: 'a join token without its secret' },
);
export const JoinTokenList = Type.Object({ items: Type.Array(Type.Ref(JoinTokenInfo.$id!)) }, { $id: 'JoinTokenList' });

export const JoinTokenCreated = Type.Object(
  {
    ...tokenFields,
    token: Type.String({ description: 'the token; shown only in this answer' }),
    caPin: Type.String({ description: "sha256:<hex> of Marina's CA SubjectPublicKeyInfo" }),
    url: Type.String({ description: "Marina's URL for the joining server" }),
    command: Type.String({ description: 'the one command line to run on the server' }),
  },
  { $id: 'JoinTokenCreated' },
);

export const JoinTokenParams = Type.Object({
  project: Type.String({ minLength: 1 }),
  name: Type.String({ minLength: 1, description: 'the cluster' }),
  id: Type.String({ pattern: '^[a-z0-9]{6}$', description: 'the token id' }),
});

// ---------- the join protocol (agents) ----------

export const JoinRequest = Type.Object(
  {
    hostname: Type.String({ minLength: 1, maxLength: 253 }),
    address: Type.String({ minLength: 7, maxLength: 45, description: "the server's node IP" }),
  },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

export const SyncRequest = Type.Object(
  { health: Type.Optional(Type.Object({ ok: Type.Boolean(), message: Type.String({ maxLength: 4096 }) })) },
  { additionalProperties: false },
);
export type SyncRequest = Static<typeof SyncRequest>;

export const JOIN_COMPONENTS = [CreateJoinTokenRequest, JoinTokenInfo, JoinTokenList, JoinTokenCreated];
