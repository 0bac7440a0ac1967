// An API server on an in-memory store with add-on admission wired as the server wires it: the
// shipped catalog loaded, users `platform` (platform admin) and `viewer`/`member`/`admin` of project
// "alpha", a token each.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { API_VERSION } from '../../src/api/meta.js';
import { openAddons, type Addons } from '../../src/addons/index.js';
import { buildApp } from '../../src/server/app.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

export const BASE = '/api/v1alpha1';

export interface AddonApi {
  app: FastifyInstance;
  store: ReturnType<typeof openSqliteStore>;
  addons: Addons;
  tokens: Record<string, string>;
  req(user: string, method: string, url: string, body?: unknown): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

export async function startAddonApi(): Promise<AddonApi> {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  const tokens: Record<string, string> = {};
  for (const name of ['platform', 'viewer', 'member', 'admin']) {
    await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name }, spec: { platformAdmin: name === 'platform' } });
    tokens[name] = (await store.tokens.issue({ user: name })).token;
  }
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Project',
    metadata: { name: 'alpha' },
    spec: { members: ['viewer', 'member', 'admin'].map((r) => ({ user: r, role: r })) },
  });
  const validation = { kubernetesVersions: ['v1.36.3'] };
  const { default: pino } = await import('pino');
  const addons = await openAddons({ store, logger: pino({ level: 'silent' }), validation });
  const { app, close } = await buildApp({ store, tokens: store.tokens, audit: store.audit, validation: { ...validation, addons: addons.admission }, consoleDir: false });
  await app.ready();
  return {
    app,
    store,
    addons,
    tokens,
    async req(user, method, url, body) {
      const res = await app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${tokens[user]}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        payload: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.statusCode, json: res.body ? res.json() : undefined };
    },
    async close() {
      await close();
      await addons.stop();
      await store.close();
    },
  };
}

export function addonBody(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: 'Addon', metadata: { name }, spec };
}

export function definitionBody(addon: string, version: string, manifests: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: 'AddonDefinition',
    metadata: { name: `${addon}-v${version.replace(/\./g, '-')}` },
    spec: { addon, version, description: 'test', namespace: 'kube-system', manifests: [{ file: 'm.yaml', content: manifests }], ...more },
  };
}
