// The join protocol, spoken by `marina agent join` on a user's server (outside the API prefix: the
// agent has no API token). Everything but the CA is authenticated: the join by a join token, the
// rest by the credential the join hands out. Tokens and credentials travel only in the
// Authorization header, which the request log never records.
//
//   GET  /join/v1/ca                  Marina's CA (the agent compares its pin before it sends anything)
//   POST /join/v1/machines            join with a token → machine name and the agent's credential
//   POST /join/v1/machine/sync        heartbeat → wait | run (bootstrap, artifacts) | leave
//   POST /join/v1/machine/left        the agent stopped and removed everything Marina started
//   GET  /join/v1/artifacts/:name     a binary or image of the manifest, by name
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { createReadStream } from 'node:fs';
import { Counter, type Registry } from 'prom-client';
import { ApiError } from '../../api/errors.js';
import { schemaErrors } from '../../api/validate.js';
import type { ArtifactCatalog } from '../../joins/artifacts.js';
import type { JoinService } from '../../joins/service.js';
import { IMPORT_AGENT_PORT, type ImportProvider, type ImportRecord } from '../../providers/import/index.js';
import { JoinRequest, SyncRequest } from '../join-schemas.js';

export const JOIN_PREFIX = '/join/v1';

export interface JoinRouteOptions {
  joins: JoinService;
  imports: ImportProvider;
  artifacts: ArtifactCatalog;
  /** Marina's CA (PEM); undefined while it serves plain HTTP. */
  caPem: () => string | undefined;
  metrics?: Registry;
}

function bearer(req: FastifyRequest): string {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) throw ApiError.unauthorized('missing bearer token');
  return m[1]!;
}

function body<T>(schema: Parameters<typeof schemaErrors>[0], value: unknown): T {
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) throw ApiError.badRequest('request body must be a JSON object');
  const causes = schemaErrors(schema, value);
  if (causes.length > 0) throw ApiError.invalid(causes);
  return value as T;
}

export const joinRoutes: FastifyPluginAsync<JoinRouteOptions> = async (app, { joins, imports, artifacts, caPem, metrics }) => {
  const attempts = new Counter({
    name: 'marina_join_requests_total',
    help: 'Join requests of servers with a join token, by outcome (joined, refused).',
    labelNames: ['outcome'],
    registers: metrics ? [metrics] : [],
  });
  const hide = { hide: true };
  const machineOf = (req: FastifyRequest): ImportRecord => {
    const r = imports.authenticate(bearer(req));
    if (!r) throw ApiError.unauthorized('unknown machine credential');
    return r;
  };

  app.get(`${JOIN_PREFIX}/ca`, { schema: hide, config: { access: 'public' } }, async (_req, reply) => {
    const pem = caPem();
    if (!pem) throw new ApiError(404, 'NotFound', 'Marina serves plain HTTP and has no CA; start it with --tls auto');
    void reply.type('application/x-pem-file');
    return pem;
  });

  app.post(`${JOIN_PREFIX}/machines`, { schema: hide, config: { access: 'public' } }, async (req, reply) => {
    try {
      const facts = body<JoinRequest>(JoinRequest, req.body);
      const joined = await joins.join(bearer(req), facts);
      attempts.inc({ outcome: 'joined' });
      req.log.info({ machine: joined.machine, cluster: joined.cluster, pool: joined.pool, hostname: facts.hostname }, 'server joined');
      void reply.code(201);
      return { ...joined, agentPort: IMPORT_AGENT_PORT };
    } catch (err) {
      attempts.inc({ outcome: 'refused' });
      throw err;
    }
  });

  app.post(`${JOIN_PREFIX}/machine/sync`, { schema: hide, config: { access: 'public' } }, async (req) => {
    const record = machineOf(req);
    const sync = body<SyncRequest>(SyncRequest, req.body ?? {});
    const action = imports.sync(record, sync.health, record.state === 'joined' ? await joins.waitingMessage(record) : 'starting');
    if (action.action !== 'run') return action;
    return { ...action, artifacts: await artifacts.manifest(action.bootstrap.kubernetesVersion) };
  });

  app.post(`${JOIN_PREFIX}/machine/left`, { schema: hide, config: { access: 'public' } }, async (req) => {
    const record = machineOf(req);
    imports.confirmLeft(record);
    req.log.info({ machine: record.name, hostname: record.hostname }, 'imported server left its cluster');
    return { kind: 'Status', code: 200, reason: 'OK', message: `machine ${record.name} left cluster ${record.cluster}` };
  });

  app.get<{ Params: { name: string } }>(`${JOIN_PREFIX}/artifacts/:name`, { schema: hide, config: { access: 'public' } }, async (req, reply) => {
    const record = machineOf(req);
    const version = record.bootstrap?.kubernetesVersion;
    if (!version || record.state !== 'started') throw new ApiError(409, 'Conflict', `machine ${record.name} has nothing to download yet`);
    const file = artifacts.files(version).get(req.params.name);
    if (!file) throw new ApiError(404, 'NotFound', `no artifact ${JSON.stringify(req.params.name)}`);
    void reply.type('application/octet-stream');
    return reply.send(createReadStream(file.path));
  });
};
