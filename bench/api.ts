// API benchmark: create / get / list through HTTP at 1k and 10k objects, and watch fan-out to
// 100 watchers. Runs a real Marina server (SQLite on disk, in a temp dir) in this process and
// talks to it over loopback through the API client (fetch, keep-alive).
//   npm run build && node dist/bench/api.js [--counts 1000,10000] [--watchers 100]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION } from '../src/api/meta.js';
import { MarinaClient } from '../src/client/index.js';
import { startServer } from '../src/server/main.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const counts = (args.get('counts') ?? '1000,10000').split(',').map(Number);
const watcherCount = Number(args.get('watchers') ?? 100);
const watchEvents = Number(args.get('events') ?? 200);
const concurrency = 16;

let client: MarinaClient;

/** One request through the API client; the status and body as the server sent them. */
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const res = await client.call(method, path, { body });
  return { status: res.status, body: res.text };
}

async function parallel(n: number, fn: (i: number) => Promise<void>): Promise<number> {
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
  return performance.now() - start;
}

function secret(project: string, name: string) {
  return { apiVersion: API_VERSION, kind: 'Secret', metadata: { name, project, labels: { bench: 'yes', shard: String(name.length % 4) } }, spec: { type: 'opaque', data: { v: name } } };
}

function report(label: string, n: number, ms: number) {
  console.log(`${label.padEnd(42)} ${String(n).padStart(6)} ops  ${(ms / 1000).toFixed(2).padStart(7)} s  ${Math.round((n / ms) * 1000).toString().padStart(7)} ops/s`);
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'marina-bench-api-'));
  const server = await startServer({ dataDir: dir, listen: '127.0.0.1:0', logger: (await import('pino')).default({ level: 'warn' }) });
  client = new MarinaClient({ server: server.url, token: server.adminToken! });
  try {
    console.log(`Marina API benchmark — node ${process.version}, concurrency ${concurrency}`);
    for (const count of counts) {
      const project = `bench-${count}`;
      const created = await call('POST', `/api/v1alpha1/projects`, { apiVersion: API_VERSION, kind: 'Project', metadata: { name: project }, spec: { members: [] } });
      if (created.status !== 201) throw new Error(created.body);
      const p = `/api/v1alpha1/projects/${project}/secrets`;
      report(`create (${count} objects)`, count, await parallel(count, async (i) => {
        const r = await call('POST', p, secret(project, `s-${i}`));
        if (r.status !== 201) throw new Error(r.body);
      }));
      report(`get (${count} objects in store)`, count, await parallel(count, async (i) => {
        const r = await call('GET', `${p}/s-${(i * 7919) % count}`);
        if (r.status !== 200) throw new Error(r.body);
      }));
      const pages = Math.ceil(count / 500);
      const listStart = performance.now();
      let cont = '';
      let seen = 0;
      for (let i = 0; i < pages; i++) {
        const r = JSON.parse((await call('GET', `${p}?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`)).body);
        seen += r.items.length;
        cont = r.metadata.continue ?? '';
      }
      if (seen !== count) throw new Error(`listed ${seen} of ${count}`);
      report(`list all, pages of 500 (${count} objects)`, pages, performance.now() - listStart);
      const selStart = performance.now();
      const sel = JSON.parse((await call('GET', `${p}?labelSelector=shard%3D1`)).body);
      report(`list with label selector (${sel.items.length} of ${count})`, 1, performance.now() - selStart);
    }

    // Watch fan-out: N watchers on one project; time from the first write until every watcher
    // has seen every event.
    const project = 'bench-watch';
    await call('POST', `/api/v1alpha1/projects`, { apiVersion: API_VERSION, kind: 'Project', metadata: { name: project }, spec: { members: [] } });
    const p = `/api/v1alpha1/projects/${project}/secrets`;
    const fromRevision = (await client.list('Secret', { project, limit: 1 })).metadata.resourceVersion;
    const controllers: AbortController[] = [];
    let doneWatchers = 0;
    let resolveAll!: () => void;
    const allDone = new Promise<void>((r) => (resolveAll = r));
    for (let w = 0; w < watcherCount; w++) {
      const ac = new AbortController();
      controllers.push(ac);
      // Every watcher starts from the revision before the first write, so none misses an event
      // however late its stream opens.
      void (async () => {
        let seen = 0;
        try {
          for await (const ev of client.watch('Secret', { project, resourceVersion: fromRevision, signal: ac.signal })) {
            if (ev.type === 'ADDED' && ++seen >= watchEvents) {
              if (++doneWatchers === watcherCount) resolveAll();
              return;
            }
          }
        } catch {
          /* aborted */
        }
      })();
    }
    const start = performance.now();
    await parallel(watchEvents, async (i) => {
      const r = await call('POST', p, secret(project, `w-${i}`));
      if (r.status !== 201) throw new Error(r.body);
    });
    await allDone;
    const ms = performance.now() - start;
    console.log(`watch fan-out: ${watchEvents} creates seen by all ${watcherCount} watchers in ${(ms / 1000).toFixed(2)} s ` +
      `(${Math.round((watchEvents * watcherCount) / ms * 1000)} deliveries/s)`);
    for (const ac of controllers) ac.abort();
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
