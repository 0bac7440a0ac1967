// The REST API: Kubernetes-style resource paths per project and kind, JSON or YAML bodies,
// streamed watch, one error shape, authorization on every request and an audit trail of changes.
// Each area is a Fastify plugin under routes/; this file only puts them together.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { ValidationContext } from '../api/registry.js';
import type { FunctionService } from '../functions/service.js';
import type { AuditLog, Store, TokenStore } from '../store/types.js';
import { registerAuth } from './auth.js';
import { registerConsole } from './console.js';
import { API_PREFIX, registerHttp } from './http.js';
import { MembershipIndex } from './membership.js';
import { registerOpenApi } from './openapi.js';
import { auditRoutes } from './routes/audit.js';
import { clusterRoutes, type HealthSource } from './routes/clusters.js';
import { functionTriggerRoutes } from './routes/function-triggers.js';
import { functionRoutes } from './routes/functions.js';
import { miscRoutes } from './routes/misc.js';
import { operationRoutes } from './routes/operations.js';
import { probeRoutes } from './routes/probes.js';
import { resourceRoutes } from './routes/resources.js';
import { tokenRoutes } from './routes/tokens.js';
import { joinTokenRoutes } from './routes/join-tokens.js';
import { joinRoutes } from './routes/joins.js';
import type { JoinService } from '../joins/service.js';
import type { ArtifactCatalog } from '../joins/artifacts.js';
import type { ImportProvider } from '../providers/import/index.js';

const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  store: Store;
  tokens: TokenStore;
  audit: AuditLog;
  validation: ValidationContext;
  metrics?: Registry;
  logger?: Logger | false;
  bodyLimit?: number;
  /** Health reports and series for GET .../clusters/{name}/health. */
  health?: HealthSource;
  /** Directory of the built web console (default dist/console); false serves no console. */
  consoleDir?: string | false;
  /** Serve HTTPS with this key and certificate chain (PEM). */
  https?: { key: string; cert: string };
  /** Join tokens and the join protocol of imported servers. */
  joins?: {
    service: JoinService;
    imports: ImportProvider;
    artifacts: ArtifactCatalog;
    /** Marina's URL and CA pin (undefined: plain HTTP, no joins). */
    target: () => { url: string; caPin: string; caPem: string } | undefined;
  };
  /** The function service (its routes: invoke, activations, dead letters, pipeline runs, events, /fn/...). */
  functions?: FunctionService;
}

export async function buildApp(opts: AppOptions): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const { store, tokens, audit, validation } = opts;
  const membership = await MembershipIndex.start(store);
  const app = Fastify({
    ...(opts.https ? { https: opts.https } : {}),
    ...(opts.logger ? { loggerInstance: opts.logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    return503OnClosing: true,
  });
  registerHttp(app);
  registerAuth(app, { store, tokens, audit, membership });
  await registerOpenApi(app);

  await app.register(probeRoutes, { metrics: opts.metrics });
  await app.register(miscRoutes, { prefix: API_PREFIX, validation });
  await app.register(tokenRoutes, { prefix: API_PREFIX, store, tokens, audit });
  await app.register(auditRoutes, { prefix: API_PREFIX, audit });
  await app.register(clusterRoutes, { prefix: API_PREFIX, store, audit, health: opts.health });
  await app.register(operationRoutes, { prefix: API_PREFIX, store, audit });
  await app.register(resourceRoutes, { prefix: API_PREFIX, store, audit, validation });
  if (opts.joins) {
    const j = opts.joins;
    await app.register(joinTokenRoutes, { prefix: API_PREFIX, joins: j.service, audit, joinTarget: j.target });
    await app.register(joinRoutes, { joins: j.service, imports: j.imports, artifacts: j.artifacts, caPem: () => j.target()?.caPem, metrics: opts.metrics });
  }
  if (opts.functions) {
    await app.register(functionRoutes, { prefix: API_PREFIX, service: opts.functions });
    await app.register(functionTriggerRoutes, { service: opts.functions, store });
  }
  if (opts.consoleDir !== false) await registerConsole(app, opts.consoleDir);

  return {
    app,
    async close() {
      membership.stop();
      await app.close();
    },
  };
}
