// Join tokens and the join itself, on top of the store and the import provider. The REST routes
// (src/server/routes/join-tokens.ts for people, routes/joins.ts for agents) are thin shells
// around this.
import { getCondition } from '../api/conditions.js';
import { ApiError } from '../api/errors.js';
import type { Cluster, Machine, NodePool, Secret } from '../api/kinds.js';
import { API_VERSION, isDeleting } from '../api/meta.js';
import {
  ANNOTATION_APPROVAL,
  ANNOTATION_HOSTNAME,
  ANNOTATION_JOIN_TOKEN,
  LABEL_CLUSTER,
  LABEL_JOIN_TOKEN,
  LABEL_MACHINE,
  LABEL_NODEPOOL,
  LABEL_POOL,
  MachineCondition,
} from '../api/wellknown.js';
import { DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, TOKEN_PATTERN } from '../api/join-tokens.js';
import { machineName } from '../controllers/common.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import type { MachineBootstrap, MachineRef } from '../providers/contract.js';
import type { ImportProvider, ImportRecord } from '../providers/import/index.js';
import {
  generateToken,
  hashToken,
  matches,
  recordOf,
  refusal,
  secretName,
  tokenSecret,
  tokenState,
  type JoinTokenRecord,
  type JoinTokenState,
} from './tokens.js';


export interface CreateTokenRequest {
  pool: string;
  ttlSeconds?: number;
  singleUse?: boolean;
  approval?: boolean;
  description?: string;
}

/** A machine-bound token lives this long: a server may wait for a hypervisor, an image download, a slow first boot. */
export const MACHINE_TOKEN_TTL_SECONDS = 24 * 3600;

export interface JoinTokenInfo extends JoinTokenRecord {
  state: JoinTokenState;
}

/** What a server reports about itself when it joins. */
export interface ServerFacts {
  hostname: string;
  address: string;
}

export interface JoinResult {
  project: string;
  cluster: string;
  pool: string;
  machine: string;
  /** The agent's credential from now on (shown once). */
  credential: string;
  approvalRequired: boolean;
}

export class JoinService {
  private readonly clusters;
  private readonly nodePools;
  private readonly machines;
  private readonly secrets;

  constructor(
    store: Store,
    private readonly imports: ImportProvider,
  ) {
    this.clusters = typed(store, 'Cluster');
    this.nodePools = typed(store, 'NodePool');
    this.machines = typed(store, 'Machine');
    this.secrets = typed(store, 'Secret');
  }

  // ---------------------------------------------------------------- tokens (people)

  async createToken(project: string, clusterName: string, req: CreateTokenRequest, user: string): Promise<{ record: JoinTokenRecord; token: string }> {
    const cluster = await this.cluster(project, clusterName);
    const template = cluster.spec.nodePools.find((p) => p.name === req.pool);
    if (!template) throw ApiError.invalidField('pool', `cluster ${clusterName} has no pool ${JSON.stringify(req.pool)}; pools: ${cluster.spec.nodePools.map((p) => p.name).join(', ')}`);
    if ((template.provider ?? cluster.spec.provider ?? 'local') !== 'import') {
      throw ApiError.invalidField('pool', `pool ${req.pool} is not for imported servers; add a pool with provider: import (roles [worker])`);
    }
    const ttl = req.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) throw ApiError.invalidField('ttlSeconds', `must be 1..${MAX_TTL_SECONDS} seconds`);
    const { id, token } = generateToken();
    const now = Date.now();
    const record: JoinTokenRecord = {
      id,
      cluster: clusterName,
      pool: req.pool,
      createdAt: new Date(now).toISOString(),
      createdBy: user,
      expiresAt: new Date(now + ttl * 1000).toISOString(),
      singleUse: req.singleUse === true,
      approval: req.approval === true,
      ...(req.description ? { description: req.description } : {}),
      usedBy: [],
    };
    await this.secrets.create(tokenSecret(project, record, hashToken(token)));
    return { record, token };
  }

  async listTokens(project: string, clusterName: string): Promise<JoinTokenInfo[]> {
    await this.cluster(project, clusterName);
    const secrets = await this.secrets.list({ project, labelSelector: `${LABEL_JOIN_TOKEN},${LABEL_CLUSTER}=${clusterName}` });
    return secrets
      .map(recordOf)
      .filter((r): r is JoinTokenRecord => r !== undefined)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map((r) => ({ ...r, state: tokenState(r) }));
  }

  /** Revoked tokens are kept (a server that tries one is told it was revoked) until the cluster goes. */
  async revokeToken(project: string, clusterName: string, id: string): Promise<JoinTokenRecord> {
    for (;;) {
      const secret = await this.secrets.get(project, secretName(id));
      const record = secret ? recordOf(secret) : undefined;
      if (!secret || !record || record.cluster !== clusterName) throw new ApiError(404, 'NotFound', `join token ${JSON.stringify(id)} not found in cluster ${clusterName}`);
      if (record.revokedAt) return record;
      const next = { ...record, revokedAt: new Date().toISOString() };
      try {
        await this.secrets.update({ ...secret, spec: { ...secret.spec, data: { ...secret.spec.data, record: JSON.stringify(next) } } });
        return next;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 409)) throw err;
      }
    }
  }

  // ---------------------------------------------------------------- machine-bound tokens (providers)

  /**
   * A single-use token that lets a server join as Machine `ref` (a VM a provider boots for it) and
   * hands it `bootstrap`; an earlier unused token of the machine is deleted.
   */
  async issueMachineToken(ref: MachineRef, bootstrap: MachineBootstrap, issuer: string): Promise<string> {
    const machine = await this.machines.get(ref.project, ref.name);
    if (!machine || machine.metadata.uid !== ref.uid || isDeleting(machine)) throw ApiError.notFound('Machine', ref.name);
    await this.revokeMachineTokens(ref);
    const { id, token } = generateToken();
    const now = Date.now();
    const record: JoinTokenRecord = {
      id,
      cluster: ref.cluster,
      pool: machine.spec.pool,
      createdAt: new Date(now).toISOString(),
      createdBy: issuer,
      expiresAt: new Date(now + MACHINE_TOKEN_TTL_SECONDS * 1000).toISOString(),
      singleUse: true,
      approval: false,
      description: `first boot of machine ${ref.name}`,
      usedBy: [],
      machine: { name: ref.name, uid: ref.uid },
    };
    await this.secrets.create(tokenSecret(ref.project, record, hashToken(token), JSON.stringify(bootstrap)));
    return token;
  }

  /** Deletes the machine's tokens (used or not): its server is gone or gets a new one. */
  async revokeMachineTokens(ref: MachineRef): Promise<void> {
    const secrets = await this.secrets.list({ project: ref.project, labelSelector: `${LABEL_JOIN_TOKEN},${LABEL_MACHINE}=${ref.name}` });
    for (const s of secrets) {
      if (recordOf(s)?.machine?.uid === ref.uid) await this.secrets.deleteIfExists(ref.project, s.metadata.name);
    }
  }

  // ---------------------------------------------------------------- the join (agents)

  /**
   * A server joins with a token: the token is checked and claimed, a Machine of provider `import`
   * is created in the token's pool, and the import provider records the server.
   */
  async join(token: string, facts: ServerFacts): Promise<JoinResult> {
    for (;;) {
      const { secret, record } = await this.checkToken(token);
      const project = secret.metadata.project ?? '';
      if (record.machine) {
        const joined = await this.joinAsMachine(project, secret, record, record.machine, facts);
        if (joined) return joined;
        continue;
      }
      const cluster = await this.cluster(project, record.cluster);
      const pool = await this.nodePool(project, record.cluster, record.pool);
      const joined = await this.poolMachines(project, pool);
      if (joined.length >= pool.spec.replicas) {
        throw new ApiError(409, 'Conflict', `pool ${record.pool} of cluster ${record.cluster} is full (${joined.length}/${pool.spec.replicas} servers); raise its replicas to let more servers join`);
      }
      const name = machineName(record.cluster, record.pool);
      // Claim the token first (resourceVersion precondition): two servers racing for a single-use
      // token cannot both win.
      const claimed = { ...record, usedBy: [...record.usedBy, name] };
      try {
        await this.secrets.update({ ...secret, spec: { ...secret.spec, data: { ...secret.spec.data, record: JSON.stringify(claimed) } } });
      } catch (err) {
        if (err instanceof ApiError && err.code === 409) continue;
        throw err;
      }
      const machine = await this.machines.create(this.machineFor(project, cluster, pool, name, record, facts));
      const credential = this.imports.register(
        { project, cluster: record.cluster, name, uid: machine.metadata.uid ?? '' },
        { address: facts.address, hostname: facts.hostname },
      );
      return { project, cluster: record.cluster, pool: record.pool, machine: name, credential, approvalRequired: record.approval };
    }
  }

  /**
   * A server joins as the Machine its token is bound to: no Machine is created; the token is
   * claimed (and its bootstrap moves from the Secret to the agent's record), the agent is told to
   * run the bootstrap at once. Undefined when another claim won the race (try again).
   */
  private async joinAsMachine(project: string, secret: Secret, record: JoinTokenRecord, bound: { name: string; uid: string }, facts: ServerFacts): Promise<JoinResult | undefined> {
    const machine = await this.machines.get(project, bound.name);
    if (!machine || machine.metadata.uid !== bound.uid || isDeleting(machine)) {
      throw new ApiError(409, 'Conflict', `machine ${bound.name}, which join token ${record.id} was issued for, no longer exists`);
    }
    const raw = secret.spec.data.bootstrap;
    if (!raw) throw new ApiError(409, 'Conflict', `join token ${record.id} carries no bootstrap for machine ${bound.name}`);
    const { bootstrap: _handedOver, ...data } = secret.spec.data;
    try {
      await this.secrets.update({ ...secret, spec: { ...secret.spec, data: { ...data, record: JSON.stringify({ ...record, usedBy: [bound.name] }) } } });
    } catch (err) {
      if (err instanceof ApiError && err.code === 409) return undefined;
      throw err;
    }
    const credential = this.imports.register(
      { project, cluster: record.cluster, name: bound.name, uid: bound.uid },
      { address: facts.address, hostname: facts.hostname },
      { provider: machine.spec.provider, bootstrap: JSON.parse(raw) as MachineBootstrap },
    );
    return { project, cluster: record.cluster, pool: record.pool, machine: bound.name, credential, approvalRequired: false };
  }

  /**
   * The token's Secret and record when `token` may be used to join now; otherwise a 401 that says
   * why (expired, revoked, used) — or, for a token that does not match, nothing more.
   */
  async checkToken(token: string): Promise<{ secret: Secret; record: JoinTokenRecord }> {
    const m = TOKEN_PATTERN.exec(token);
    if (!m) throw ApiError.unauthorized('not a join token (expected the form abcdef.0123456789abcdef)');
    const id = m[1]!;
    const candidates = await this.secrets.list({ labelSelector: `${LABEL_JOIN_TOKEN}=${id}` });
    const secret = candidates.find((s) => s.metadata.name === secretName(id) && matches(s, token));
    const record = secret ? recordOf(secret) : undefined;
    if (!secret || !record) throw ApiError.unauthorized('join token is not valid');
    const why = refusal(record);
    if (why) throw ApiError.unauthorized(why);
    return { secret, record };
  }

  /** Why an imported machine is not started yet, in words for the server's operator. */
  async waitingMessage(r: ImportRecord): Promise<string> {
    const machine = await this.machines.get(r.project, r.name);
    if (!machine) return `machine ${r.name} no longer exists`;
    const c = getCondition(machine.status?.conditions, MachineCondition.Bootstrapped);
    return c && c.status !== 'True' ? `${c.reason}: ${c.message}` : `machine ${r.name} is ${machine.status?.phase ?? 'Pending'}`;
  }

  // ----------------------------------------------------------------

  private machineFor(project: string, cluster: Cluster, pool: NodePool, name: string, token: JoinTokenRecord, facts: ServerFacts): Machine {
    const spec: Machine['spec'] = {
      cluster: cluster.metadata.name,
      pool: token.pool,
      roles: ['worker'],
      provider: 'import',
      kubernetesVersion: pool.spec.kubernetesVersion,
      runtime: { ...(pool.spec.runtime ?? {}), type: 'containerd' },
    };
    if (pool.spec.labels && Object.keys(pool.spec.labels).length > 0) spec.labels = pool.spec.labels;
    if (pool.spec.taints && pool.spec.taints.length > 0) spec.taints = pool.spec.taints;
    if (pool.spec.healing?.drainTimeoutSeconds !== undefined) spec.drainTimeoutSeconds = pool.spec.healing.drainTimeoutSeconds;
    return {
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: {
        name,
        project,
        labels: { [LABEL_CLUSTER]: cluster.metadata.name, [LABEL_POOL]: token.pool, [LABEL_NODEPOOL]: pool.metadata.name },
        annotations: {
          [ANNOTATION_HOSTNAME]: facts.hostname,
          [ANNOTATION_JOIN_TOKEN]: token.id,
          ...(token.approval ? { [ANNOTATION_APPROVAL]: 'required' } : {}),
        },
      },
      spec,
      status: { phase: 'Pending' },
    };
  }

  private async cluster(project: string, name: string): Promise<Cluster> {
    const c = await this.clusters.get(project, name);
    if (!c || isDeleting(c)) throw ApiError.notFound('Cluster', name);
    return c;
  }

  private async nodePool(project: string, cluster: string, pool: string): Promise<NodePool> {
    const pools = await this.nodePools.list({ project, labelSelector: `${LABEL_CLUSTER}=${cluster},${LABEL_POOL}=${pool}` });
    const p = pools.find((x) => !isDeleting(x));
    if (!p) throw new ApiError(409, 'Conflict', `pool ${pool} of cluster ${cluster} does not exist (yet)`);
    return p;
  }

  private async poolMachines(project: string, pool: NodePool): Promise<Machine[]> {
    const machines = await this.machines.list({ project, labelSelector: `${LABEL_NODEPOOL}=${pool.metadata.name}` });
    return machines.filter((m) => !isDeleting(m));
  }
}
