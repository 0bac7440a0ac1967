// Serves the web console (console/, built by `npm run build` into dist/console) from the API's own
// origin: `/` redirects to `/console/`, files under `/console/` are the build's, and any other
// `/console/...` path is the single-page app's index.html (client-side routes). The API, /healthz,
// /metrics and /openapi are untouched, and unknown /api paths keep answering the API's 404 Status.
// Without a build the server still starts, and `/` says how to build the console.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../api/errors.js';

export const CONSOLE_PATH = '/console/';

/** dist/src/server/console.js → dist/console */
export function defaultConsoleDir(): string {
  return fileURLToPath(new URL('../../console/', import.meta.url));
}

/** Registers the console's routes; answers whether a built console was found in `dir`. */
export async function registerConsole(app: FastifyInstance, dir: string = defaultConsoleDir()): Promise<boolean> {
  const index = join(dir, 'index.html');
  if (!existsSync(index)) {
    const page =
      '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Marina</title></head><body>' +
      '<h1>Marina</h1><p>The web console is not built (no <code>' + escapeHtml(index) + '</code>). ' +
      'Run <code>npm run build</code> and restart the server. The API is available under <code>/api/v1alpha1</code>.</p></body></html>';
    const notBuilt = async (_req: unknown, reply: import('fastify').FastifyReply) => reply.code(503).type('text/html; charset=utf-8').send(page);
    app.get('/', notBuilt);
    app.get('/console', notBuilt);
    app.get('/console/*', notBuilt);
    return false;
  }

  app.get('/', async (_req, reply) => reply.redirect(CONSOLE_PATH, 302));
  app.get('/console', async (_req, reply) => reply.redirect(CONSOLE_PATH, 301));
  await app.register(
    async (scope) => {
      await scope.register(fastifyStatic, {
        root: dir,
        prefix: '/',
        index: ['index.html'],
        cacheControl: false,
        setHeaders: (res, path) => {
          // Vite names assets by content hash: they never change. index.html must be re-read.
          res.setHeader('cache-control', path.includes(`${'/'}assets${'/'}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
        },
      });
      // Client-side routes (/console/projects/p/clusters/x) get the app; missing assets stay 404.
      scope.setNotFoundHandler(async (req, reply) => {
        const path = req.url.split('?')[0] ?? '';
        if ((req.method === 'GET' || req.method === 'HEAD') && !/\.[A-Za-z0-9]+$/.test(path)) {
          void reply.header('cache-control', 'no-cache');
          return reply.type('text/html; charset=utf-8').sendFile('index.html');
        }
        return reply.code(404).type('application/json').send(new ApiError(404, 'NotFound', `no console file at ${path}`).toStatus());
      });
    },
    { prefix: '/console' },
  );
  return true;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
