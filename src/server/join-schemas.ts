// HTTP schemas of join tokens (the API people use) and of the join protocol (what the agent on an
// imported server speaks, outside the API prefix): the one source of their validation, their
// OpenAPI components (openapi.ts) and the types both sides use (src/joinagent reads its answers
// with them).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { MAX_TTL_SECONDS } from '../api/join-tokens.js';
import type { MachineBootstrap } from '../providers/contract.js';

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
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.String(),
  expiresAt: Type.String({ format: 'date-time' }),
  singleUse: Type.Boolean(),
  approval: Type.Boolean(),
  description: Type.Optional(Type.String()),
  usedBy: Type.Array(Type.String(), { description: 'machines that joined with it' }),
  revokedAt: Type.Optional(Type.String({ format: 'date-time' })),
  machine: Type.Optional(
    Type.Object(
      { name: Type.String(), uid: Type.String() },
      { description: "set on the tokens Marina makes itself for one machine's first boot (a VM's user data): single use, that machine only" },
    ),
  ),
};

export const JoinTokenInfo = Type.Object(
  { ...tokenFields, state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('used')]) },
  { $id: 'JoinTokenInfo', description: 'a join token without its secret' },
);
export type JoinTokenInfo = Static<typeof JoinTokenInfo>;
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

export type JoinTokenCreated = Static<typeof JoinTokenCreated>;

export const JoinTokenParams = Type.Object({
  project: Type.String({ description: 'the project' }),
  name: Type.String({ description: 'the cluster' }),
  id: Type.String({ pattern: '^[a-z0-9]{6}$', description: 'the token id' }),
});

// ---------- the join protocol (the agent on an imported server) ----------

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `(${OCTET}\\.){3}${OCTET}`;

/** Where the join protocol lives, outside the API prefix (the agent has no API token). */
export const JOIN_PREFIX = '/join/v1';

export const JoinRequest = Type.Object(
  {
    hostname: Type.String({ minLength: 1, maxLength: 253 }),
    address: Type.String({ pattern: `^${IPV4}$`, description: "the server's node IPv4 address (where the cluster reaches its kubelet)" }),
  },
  { $id: 'JoinRequest', additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

export const JoinAnswer = Type.Object(
  {
    project: Type.String(),
    cluster: Type.String(),
    pool: Type.String(),
    machine: Type.String({ description: 'the Machine the server is from now on' }),
    credential: Type.String({ description: "the agent's credential for every later call (shown only here)" }),
    approvalRequired: Type.Boolean({ description: 'the machine waits for `marina cluster approve`' }),
    agentPort: Type.Integer({ description: 'the port the agent serves /healthz, /facts and /metrics on' }),
  },
  { $id: 'JoinAnswer' },
);
export type JoinAnswer = Static<typeof JoinAnswer>;

const NodeHealth = Type.Object({ ok: Type.Boolean(), message: Type.String({ maxLength: 4096 }) }, { additionalProperties: false });

export const SyncRequest = Type.Object({ health: Type.Optional(NodeHealth) }, { $id: 'SyncRequest', additionalProperties: false });
export type SyncRequest = Static<typeof SyncRequest>;

const Taint = Type.Object({ key: Type.String(), value: Type.Optional(Type.String()), effect: Type.String() });

/**
 * What a joined server is handed to run: the provider contract's MachineBootstrap — a worker's
 * node (an imported server), or a VM's services and node (a machine another provider booted).
 */
const JoinBootstrap = Type.Object(
  {
    kubernetesVersion: Type.String(),
    roles: Type.Array(Type.String()),
    files: Type.Array(Type.Object({ path: Type.String(), content: Type.String(), mode: Type.Integer() }), { description: "certificates and the CA, relative to the agent's data directory" }),
    services: Type.Array(
      Type.Object({
        name: Type.String(),
        binary: Type.String({ description: 'an artifact of the manifest' }),
        args: Type.Array(Type.String(), { description: '{root} stands for the directory the files are written to' }),
        readyUrl: Type.Optional(Type.String()),
      }),
      { description: 'started in order, each after the previous answered its readyUrl' },
    ),
    kubelet: Type.Optional(
      Type.Object(
        {
          nodeName: Type.String(),
          kubeconfig: Type.String(),
          labels: Type.Record(Type.String(), Type.String()),
          taints: Type.Array(Taint),
          capacity: Type.Object({ cpu: Type.String(), memory: Type.String(), pods: Type.String() }),
          kubeletVersion: Type.String(),
          clusterDNS: Type.Optional(Type.Array(Type.String())),
          clusterDomain: Type.Optional(Type.String()),
        },
        { description: 'a virtual kubelet (runtime virtual)' },
      ),
    ),
    node: Type.Optional(
      Type.Object(
        {
          nodeName: Type.String(),
          apiServerURL: Type.String(),
          caFile: Type.String(),
          bootstrapToken: Type.String({ description: "the kubelet's TLS bootstrap token" }),
          kubeProxyCertFile: Type.String(),
          kubeProxyKeyFile: Type.String(),
          clusterCIDR: Type.String(),
          clusterDNS: Type.String(),
          clusterDomain: Type.String(),
          labels: Type.Record(Type.String(), Type.String()),
          taints: Type.Array(Taint),
          maxPods: Type.Integer(),
        },
        { description: 'a real kubelet with containerd' },
      ),
    ),
    probeTls: Type.Optional(Type.Object({ ca: Type.String(), cert: Type.String(), key: Type.String() }, { description: "client credentials (file paths) to check services' readyUrl" })),
    loopbackPorts: Type.Optional(Type.Array(Type.Integer(), { description: 'service ports also relayed on 127.0.0.1' })),
  },
  { $id: 'JoinBootstrap' },
);
// The schema and the provider contract describe the same object: this fails to compile when they drift.
const bootstrapAgrees: [Static<typeof JoinBootstrap>, MachineBootstrap] extends [MachineBootstrap, Static<typeof JoinBootstrap>] ? true : never = true;
void bootstrapAgrees;

export const Artifact = Type.Object(
  {
    name: Type.String({ description: 'kubelet, kube-proxy, containerd, ctr, containerd-shim-runc-v2, runc, cni-<plugin>, image-<name>, or a service binary (etcd, kube-apiserver, ...)' }),
    kind: Type.Union([Type.Literal('binary'), Type.Literal('cni'), Type.Literal('image')]),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 0 }),
    ref: Type.Optional(Type.String({ description: 'images: the reference it is imported under' })),
    sandbox: Type.Optional(Type.Boolean({ description: "the pause image: containerd's sandbox image" })),
  },
  { $id: 'Artifact' },
);

export const SyncAnswer = Type.Union(
  [
    Type.Object({ action: Type.Literal('wait'), message: Type.String({ description: 'what the machine waits for' }) }),
    Type.Object({
      action: Type.Literal('run'),
      bootstrap: Type.Ref(JoinBootstrap.$id!),
      apiServer: Type.Optional(
        Type.Object(
          { url: Type.String(), tlsServerName: Type.Optional(Type.String({ description: 'a name in the apiserver certificate when the URL host is not' })) },
          { description: "how the node reaches the cluster's API (set when the bootstrap has a node)" },
        ),
      ),
      artifacts: Type.Array(Type.Ref(Artifact.$id!), { description: 'download each from /join/v1/artifacts/{name} and check its size and SHA-256' }),
    }),
    Type.Object({ action: Type.Literal('leave'), message: Type.String() }),
  ],
  { $id: 'SyncAnswer', description: 'what the agent does until its next sync' },
);
/** The schema's type, with the bootstrap as the provider contract types it. */
export type SyncAnswer =
  | { action: 'wait'; message: string }
  | { action: 'run'; bootstrap: MachineBootstrap; apiServer?: { url: string; tlsServerName?: string }; artifacts: Static<typeof Artifact>[] }
  | { action: 'leave'; message: string };

export const ArtifactParams = Type.Object({ name: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{0,62}$', description: 'an artifact of the manifest' }) });

export const JOIN_COMPONENTS: TSchema[] = [CreateJoinTokenRequest, JoinTokenInfo, JoinTokenList, JoinTokenCreated, JoinRequest, JoinAnswer, SyncRequest, JoinBootstrap, Artifact, SyncAnswer];
