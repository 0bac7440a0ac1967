// Raw store throughput (no HTTP): create, get, list (page 500) at 1k and 10k objects, and watch
// fan-out (100 watchers x 1,000 events). Uses a real database file (WAL, synchronous=NORMAL).
//   npx tsc -p tsconfig.json && node dist/bench/store.js
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { API_VERSION, type Resource } from '../src/api/meta.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';

const silent = { error: () => {} };

function cluster(i: number, kind = 'Cluster'): Resource {
  const spec =
    kind === 'Secret'
      ? { type: 'marina.dev/pki', data: { 'tls.key': randomBytes(600).toString('base64') } }
      : {
          kubernetesVersion: '1.30.4',
          controlPlane: { replicas: 3, machineClass: 'm.large' },
          network: { podCIDR: '10.244.0.0/16', serviceCIDR: '10.96.0.0/12', plugin: 'cilium' },
          nodePools: [
            { name: 'workers', replicas: 5, machineClass: 'm.xlarge', labels: { role: 'worker' } },
            { name: 'gpu', replicas: 2, machineClass: 'g.large', taints: [{ key: 'gpu', effect: 'NoSchedule' }] },
          ],
          description: 'x'.repeat(400),
        };
  return {
    apiVersion: API_VERSION,
    kind,
    metadata: { name: `c-${String(i).padStart(6, '0')}`, project: `p${i % 10}`, labels: { tier: i % 2 ? 'web' : 'db', env: 'prod' } },
    spec,
  };
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function open(dir: string, name: string): SqliteStore {
  return openSqliteStore({ path: join(dir, `${name}.db`), encryptionKey: randomBytes(32), logger: silent });
}

async function sizes(dir: string, n: number): Promise<string[]> {
  const s = open(dir, `size-${n}`);
  const rows: string[] = [];
  const createMs = await timed(async () => {
    for (let i = 0; i < n; i++) await s.create(cluster(i));
  });
  rows.push(`| create (Cluster, ~1 KB) | ${n.toLocaleString('en-US')} | ${rate(n, createMs)} |`);

  const gets = 20_000;
  const getMs = await timed(async () => {
    for (let i = 0; i < gets; i++) {
      const k = (i * 7919) % n;
      const got = await s.get({ kind: 'Cluster', project: `p${k % 10}`, name: `c-${String(k).padStart(6, '0')}` });
      if (!got) throw new Error('missing');
    }
  });
  rows.push(`| get | ${n.toLocaleString('en-US')} | ${rate(gets, getMs)} |`);

  let pages = 0;
  let items = 0;
  const rounds = n >= 10_000 ? 3 : 20;
  const listMs = await timed(async () => {
    for (let r = 0; r < rounds; r++) {
      let cont: string | undefined;
      do {
        const page = await s.list('Cluster', { limit: 500, continue: cont });
        pages++;
        items += page.items.length;
        cont = page.continue;
      } while (cont);
    }
  });
  rows.push(`| list, page of 500 | ${n.toLocaleString('en-US')} | ${rate(pages, listMs)} pages (${rate(items, listMs)} objects) |`);

  let selPages = 0;
  const selMs = await timed(async () => {
    for (let r = 0; r < rounds; r++) {
      let cont: string | undefined;
      do {
        const page = await s.list('Cluster', { limit: 500, labelSelector: 'tier=web', continue: cont });
        selPages++;
        cont = page.continue;
      } while (cont);
    }
  });
  rows.push(`| list, page of 500, \`tier=web\` (half match) | ${n.toLocaleString('en-US')} | ${rate(selPages, selMs)} pages |`);

  const upd = Math.min(n, 5000);
  const objs = (await s.list('Cluster', { limit: upd })).items;
  const updMs = await timed(async () => {
    for (const o of objs) await s.update({ ...o, spec: { ...(o.spec as object), description: 'y' } });
  });
  rows.push(`| update (spec change) | ${n.toLocaleString('en-US')} | ${rate(upd, updMs)} |`);
  await s.close();
  return rows;
}

async function secrets(dir: string, n: number): Promise<string[]> {
  const s = open(dir, 'secrets');
  const createMs = await timed(async () => {
    for (let i = 0; i < n; i++) await s.create(cluster(i, 'Secret'));
  });
  const getMs = await timed(async () => {
    for (let i = 0; i < n; i++) await s.get({ kind: 'Secret', project: `p${i % 10}`, name: `c-${String(i).padStart(6, '0')}` });
  });
  await s.close();
  return [
    `| create (Secret, AES-256-GCM) | ${n.toLocaleString('en-US')} | ${rate(n, createMs)} |`,
    `| get (Secret, decrypt) | ${n.toLocaleString('en-US')} | ${rate(n, getMs)} |`,
  ];
}

async function fanout(dir: string, watchers: number, events: number): Promise<string[]> {
  const s = open(dir, 'fanout');
  const base = await s.create(cluster(0));
  const received = new Array<number>(watchers).fill(0);
  let done = 0;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  const ws = Array.from({ length: watchers }, (_, w) =>
    s.watch({ kind: 'Cluster' }, () => {
      if (++received[w]! === events && ++done === watchers) resolveAll();
    }),
  );
  const t0 = performance.now();
  let cur = base;
  for (let i = 0; i < events; i++) cur = await s.updateStatus({ ...cur, status: { observedGeneration: i } });
  await all;
  const ms = performance.now() - t0;

  // Same writes without watchers, for the cost of delivery itself.
  for (const w of ws) w.stop();
  const t1 = performance.now();
  for (let i = 0; i < events; i++) cur = await s.updateStatus({ ...cur, status: { observedGeneration: -i } });
  const bare = performance.now() - t1;

  // Resume: one watcher replaying the last 1,000 events from history.
  const from = String(Number(await s.currentRevision()) - events);
  let replayed = 0;
  const replayMs = await timed(async () => {
    await new Promise<void>((resolve) => {
      s.watch({ resourceVersion: from }, () => {
        if (++replayed === events) resolve();
      });
    });
  });
  await s.close();
  return [
    `| watch fan-out: ${watchers} watchers all received ${events.toLocaleString('en-US')} events | ${ms.toFixed(0)} ms (${rate(watchers * events, ms)} deliveries; the same ${events.toLocaleString('en-US')} writes without watchers: ${bare.toFixed(0)} ms) |`,
    `| watch resume: replay ${events.toLocaleString('en-US')} events from history | ${replayMs.toFixed(1)} ms |`,
  ];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'marina-bench-store-'));
  try {
    console.log(`Marina store benchmark — node ${process.version}, ${process.platform}/${process.arch}, file database in ${tmpdir()}`);
    console.log('');
    console.log('| operation | objects in store | throughput |');
    console.log('|---|---:|---:|');
    for (const n of [1_000, 10_000]) for (const row of await sizes(dir, n)) console.log(row);
    for (const row of await secrets(dir, 2_000)) console.log(row);
    console.log('');
    console.log('| scenario | time |');
    console.log('|---|---:|');
    for (const row of await fanout(dir, 100, 1_000)) console.log(row);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
