// An API server on an in-memory store for tests: users with roles in two projects, and a token each.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { MarinaClient } from '../../src/client/index.js';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { FunctionService } from '../../src/functions/service.js';
import { buildApp, type AppOptions } from '../../src/server/app.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

export type TestRole = 'viewer' | 'member' | 'operator' | 'admin';
export const ROLES: TestRole[] = ['viewer', 'member', 'operator', 'admin'];

export interface TestApi {
  app: FastifyInstance;
  store: ReturnType<typeof openSqliteStore>;
  /** Tokens by user name: `platform` (platform admin), `<role>` (that role in project "alpha"), `outsider` (admin of "beta"). */
  tokens: Record<string, string>;
  /** The API client signed in as `user` (a key of `tokens`), talking to the app without a socket. */
  client(user: string): MarinaClient;
  close(): Promise<void>;
}

export async function startTestApi(
  opts: {
    bodyLimit?: number;
    historyLimit?: number;
    health?: AppOptions['health'];
    functions?: boolean;
    joins?: (store: ReturnType<typeof openSqliteStore>) => AppOptions['joins'];
  } = {},
): Promise<TestApi> {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32), historyLimit: opts.historyLimit });
  const tokens: Record<string, string> = {};
  const users = ['platform', ...ROLES, 'outsider'];
  for (const name of users) {
    await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name }, spec: { platformAdmin: name === 'platform' } });
    tokens[name] = (await store.tokens.issue({ user: name })).token;
  }
  await store.create(project('alpha', ROLES.map((role) => ({ user: role, role }))));
  await store.create(project('beta', [{ user: 'outsider', role: 'admin' }]));
  // The function service's routes, without warm sandboxes (test/functions runs functions).
  const functions = opts.functions ? await FunctionService.start({ store, dbPath: ':memory:', spares: 0, logger: pino({ level: 'silent' }) }) : undefined;
  const { app, close } = await buildApp({
    store,
    tokens: store.tokens,
    audit: store.audit,
    validation: { kubernetesVersions: ['v1.36.3', 'v1.35.4'] },
    bodyLimit: opts.bodyLimit,
    ...(opts.health ? { health: opts.health } : {}),
    ...(opts.joins ? { joins: opts.joins(store) } : {}),
    ...(functions ? { functions } : {}),
  });
  await app.ready();
  return {
    app,
    store,
    tokens,
    client: (user) => new MarinaClient({ server: 'http://test.invalid', token: tokens[user], fetch: injectFetch(app) }),
    async close() {
      await close();
      await functions?.stop();
      await store.close();
    },
  };
}

/**
 * `fetch` over Fastify's inject: the client's requests reach the routes without a socket. Answers
 * arrive whole, so a watch (which never ends by itself) needs a real listener instead.
 */
export function injectFetch(app: FastifyInstance): typeof fetch {
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const res = await app.inject({
      method: (init.method ?? 'GET') as 'GET',
      url: url.pathname + url.search,
      headers: Object.fromEntries(new Headers(init.headers).entries()),
      ...(init.body !== undefined && init.body !== null ? { payload: init.body as string } : {}),
    });
    const headers = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, String(v));
    return new Response(res.statusCode === 204 ? null : new Uint8Array(res.rawPayload), { status: res.statusCode, headers });
  }) as typeof fetch;
}

function project(name: string, members: { user: string; role: string }[]): Resource {
  return { apiVersion: API_VERSION, kind: 'Project', metadata: { name }, spec: { members } };
}

export function clusterBody(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name },
    spec: {
      nodePools: [
        { name: 'etcd', roles: ['etcd'], replicas: 3 },
        { name: 'controlplane', roles: ['controlplane'], replicas: 1 },
        { name: 'workers', roles: ['worker'], replicas: 2 },
      ],
      ...overrides,
    },
  };
}
