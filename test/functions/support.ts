// A Marina API with the function service on a temporary SQLite file (the queue lives beside the
// objects, as in production) and the real bubblewrap sandbox.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { FunctionService, type FunctionServiceOptions } from '../../src/functions/service.js';
import { buildApp } from '../../src/server/app.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

export const BASE = `/api/v1alpha1/projects/alpha`;

export interface FnApi {
  app: FastifyInstance;
  store: ReturnType<typeof openSqliteStore>;
  service: FunctionService;
  metrics: Registry;
  dir: string;
  /** member of alpha, viewer of alpha, admin of beta (no role in alpha). */
  tokens: { member: string; viewer: string; outsider: string };
  req(token: string | undefined, method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<{ statusCode: number; json(): any; body: string; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startFnApi(opts: Partial<FunctionServiceOptions> = {}): Promise<FnApi> {
  const dir = mkdtempSync(join(tmpdir(), 'marina-fn-test-'));
  const dbPath = join(dir, 'marina.db');
  const store = openSqliteStore({ path: dbPath, encryptionKey: randomBytes(32) });
  const tokens = { member: '', viewer: '', outsider: '' };
  for (const name of Object.keys(tokens) as (keyof typeof tokens)[]) {
    await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name }, spec: {} });
    tokens[name] = (await store.tokens.issue({ user: name })).token;
  }
  await store.create(project('alpha', [{ user: 'member', role: 'member' }, { user: 'viewer', role: 'viewer' }]));
  await store.create(project('beta', [{ user: 'outsider', role: 'admin' }]));
  const metrics = new Registry();
  const service = await FunctionService.start({ store, dbPath, metrics, spares: 1, dispatcher: { pollMs: 100, leaseMs: 3000 }, cronTickMs: 200, logger: pino({ level: 'silent' }), ...opts });
  const { app, close } = await buildApp({
    store,
    tokens: store.tokens,
    audit: store.audit,
    validation: { kubernetesVersions: ['v1.36.3'] },
    metrics,
    consoleDir: false,
    functions: service,
  });
  await app.ready();
  return {
    app,
    store,
    service,
    metrics,
    dir,
    tokens,
    async req(token, method, url, body, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
      const res = await app.inject({ method: method as 'GET', url, headers: h, payload: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });
      return res as never;
    },
    async close() {
      await close();
      await service.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function project(name: string, members: { user: string; role: string }[]): Resource {
  return { apiVersion: API_VERSION, kind: 'Project', metadata: { name }, spec: { members } };
}

export function fnBody(name: string, code: string, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: 'Function', metadata: { name }, spec: { source: { code }, ...spec } };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
