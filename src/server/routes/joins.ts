// The join protocol, spoken by `marina agent join` on a user's server (src/joinagent), outside the
// API prefix: the agent has no API token. Everything but the CA is authenticated — the join by a
// join token, the rest by the machine credential the join hands out — and each route declares
// which (config.access: { credential }), so the auth hook checks it before the handler runs.
// Tokens and credentials travel only in the Authorization header, which the request log never
// records.
//
//   GET  /join/v1/ca                  Marina's CA (the agent compares its pin before it sends anything)
//   POST /join/v1/machines            join with a token → machine name and the agent's credential
//   POST /join/v1/machine/sync        heartbeat → wait | run (bootstrap, artifacts) | leave
//   POST /join/v1/machine/left        the agent stopped and removed everything Marina started
//   GET  /join/v1/artifacts/{name}    a binary or image of the manifest, by name
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { createReadStream } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { Counter, type Registry } from 'prom-client';
import { ApiError } from '../../api/errors.js';
import type { ArtifactCatalog } from '../../joins/artifacts.js';
import type { JoinService } from '../../joins/service.js';
import { IMPORT_AGENT_PORT, type ImportProvider, type ImportRecord } from '../../providers/import/index.js';
import { bearerToken, type CredentialAccess } from '../auth.js';
import { objectBody } from '../http.js';
import { ArtifactParams, JOIN_PREFIX, JoinAnswer, JoinRequest, SyncAnswer, SyncRequest } from '../join-schemas.js';
import { errorResponses, Status } from '../schemas.js';

export interface JoinRouteOptions {
  joins: JoinService;
  imports: ImportProvider;
  artifacts: ArtifactCatalog;
  /** Marina's CA (PEM); undefined while it serves plain HTTP. */
  caPem: () => string | undefined;
  metrics?: Registry;
}

export const joinRoutes: FastifyPluginAsync<JoinRouteOptions> = async (app, { joins, imports, artifacts, caPem, metrics }) => {
  const attempts = new Counter({
    name: 'marina_join_requests_total',
    help: 'Join requests of servers with a join token, by outcome (joined, refused).',
    labelNames: ['outcome'],
    registers: metrics ? [metrics] : [],
  });
  const tags = ['Join'];

  const joinToken: CredentialAccess = {
    credential: 'joinToken',
    verify: async (token) => {
      try {
        await joins.checkToken(token);
      } catch (err) {
        attempts.inc({ outcome: 'refused' });
        throw err;
      }
    },
  };
  // The record of the machine whose credential authenticated the request.
  const machines = new WeakMap<FastifyRequest, ImportRecord>();
  const machineCredential: CredentialAccess = {
    credential: 'machineCredential',
    verify: (credential, req) => {
      const r = imports.authenticate(credential);
      if (!r) throw ApiError.unauthorized('unknown machine credential');
      machines.set(req, r);
    },
  };
  const machineOf = (req: FastifyRequest): ImportRecord => machines.get(req)!;

  app.get(`${JOIN_PREFIX}/ca`, {
    schema: {
      operationId: 'readJoinCA',
      summary: "Marina's CA certificate: a joining server compares its pin with the join command's before it sends anything",
      tags,
      security: [],
      response: {
        200: { description: "Marina's CA (PEM)", content: { 'application/x-pem-file': { schema: Type.String() } } },
        ...errorResponses(404),
      },
    },
    config: { access: 'public' },
    handler: async (_req, reply) => {
      const pem = caPem();
      if (!pem) throw new ApiError(404, 'NotFound', 'Marina serves plain HTTP and has no CA; start it with --tls auto');
      return reply.type('application/x-pem-file').send(pem);
    },
  });

  app.post(`${JOIN_PREFIX}/machines`, {
    schema: {
      operationId: 'joinServer',
      summary: 'Join a server to the pool of the join token: it becomes a Machine of provider import',
      tags,
      security: [{ joinToken: [] }],
      body: { content: { 'application/json': { schema: Type.Ref(JoinRequest.$id!) } } },
      response: {
        201: Type.Ref(JoinAnswer.$id!, { description: 'joined: the machine and the credential of its agent (shown only here)' }),
        ...errorResponses(400, 401, 404, 409, 413, 415, 422),
      },
    },
    config: { access: joinToken },
    handler: async (req, reply) => {
      try {
        const facts = objectBody<JoinRequest>(JoinRequest, req.body, '{"hostname": "gpu-1", "address": "10.0.0.7"}');
        const joined = await joins.join(bearerToken(req)!, facts);
        attempts.inc({ outcome: 'joined' });
        req.log.info({ machine: joined.machine, cluster: joined.cluster, pool: joined.pool, hostname: facts.hostname }, 'server joined');
        return reply.code(201).send({ ...joined, agentPort: IMPORT_AGENT_PORT });
      } catch (err) {
        attempts.inc({ outcome: 'refused' });
        throw err;
      }
    },
  });

  app.post(`${JOIN_PREFIX}/machine/sync`, {
    schema: {
      operationId: 'syncImportedMachine',
      summary: "An imported server's heartbeat (with its node's health): the answer says what to do until the next one",
      tags,
      security: [{ machineCredential: [] }],
      body: { content: { 'application/json': { schema: Type.Ref(SyncRequest.$id!) } } },
      response: { 200: Type.Ref(SyncAnswer.$id!, { description: 'wait, run or leave' }), ...errorResponses(400, 401, 413, 415, 422) },
    },
    config: { access: machineCredential },
    handler: async (req): Promise<SyncAnswer> => {
      const record = machineOf(req);
      const sync = objectBody<SyncRequest>(SyncRequest, req.body);
      const action = imports.sync(record, sync.health, record.state === 'joined' ? await joins.waitingMessage(record) : 'starting');
      if (action.action !== 'run') return action;
      return { ...action, artifacts: await artifacts.manifest(action.bootstrap) };
    },
  });

  app.post(`${JOIN_PREFIX}/machine/left`, {
    schema: {
      operationId: 'confirmImportedMachineLeft',
      summary: 'The agent stopped and removed everything Marina started on the server; the Machine may go',
      tags,
      security: [{ machineCredential: [] }],
      response: { 200: Type.Ref(Status.$id!, { description: 'recorded' }), ...errorResponses(401) },
    },
    config: { access: machineCredential },
    handler: async (req) => {
      const record = machineOf(req);
      imports.confirmLeft(record);
      req.log.info({ machine: record.name, hostname: record.hostname }, 'imported server left its cluster');
      return { kind: 'Status', code: 200, reason: 'OK', message: `machine ${record.name} left cluster ${record.cluster}` };
    },
  });

  app.get<{ Params: { name: string } }>(`${JOIN_PREFIX}/artifacts/:name`, {
    schema: {
      operationId: 'downloadJoinArtifact',
      summary: "A binary or image archive of the run answer's manifest (check its size and SHA-256 before use)",
      tags,
      security: [{ machineCredential: [] }],
      params: ArtifactParams,
      response: {
        200: { description: 'the file', content: { 'application/octet-stream': { schema: Type.String({ format: 'binary' }) } } },
        ...errorResponses(400, 401, 404, 409),
      },
    },
    config: { access: machineCredential },
    handler: async (req, reply) => {
      const record = machineOf(req);
      const bootstrap = record.bootstrap;
      if (!bootstrap || record.state !== 'started') throw new ApiError(409, 'Conflict', `machine ${record.name} has nothing to download yet`);
      const file = artifacts.files(bootstrap).get(req.params.name);
      if (!file) throw new ApiError(404, 'NotFound', `no artifact ${JSON.stringify(req.params.name)}`);
      return reply.type('application/octet-stream').send(createReadStream(file.path));
    },
  });
};
