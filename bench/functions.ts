// Function service benchmark on a real Marina server (SQLite on disk, real sandboxes), over
// loopback HTTP with keep-alive and a project token:
//   cold start  first call after the function scaled to zero (client round trip, and the time the
//               invocation waited for its instance as the activation records it)
//   warm        HTTP trigger round trip minus the handler's own time (reported by the handler),
//               each call paired with one to a plain Node HTTP server doing the same work in this
//               process, so that both see the same machine (on a shared, loaded machine the tail
//               follows the load); and, independent of the load, the CPU time and context switches
//               per call of Marina and of the function's sandbox (from /proc)
//   throughput  N requests at concurrency C through the HTTP trigger, and the same work in a plain
//               Node HTTP server in this process, one after the other in the same run
//   npm run build && node dist/bench/functions.js [--cold 20] [--warm 1000] [--requests 5000] [--concurrency 50]
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { API_VERSION } from '../src/api/meta.js';
import { startServer } from '../src/server/main.js';
import { load, table } from './support.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const COLD = Number(args.get('cold') ?? 20);
const WARM = Number(args.get('warm') ?? 1000);
const REQUESTS = Number(args.get('requests') ?? 5000);
const CONCURRENCY = Number(args.get('concurrency') ?? 50);

/** The work both servers do per request: 50 SHA-256 over 1 KiB, answered as JSON. */
const WORK = `
const block = Buffer.alloc(1024, 7);
function work(n) {
  let h = '';
  for (let i = 0; i < 50; i++) h = createHash('sha256').update(block).update(h).digest('hex');
  return { n, h };
}`;
const HANDLER = `import { createHash } from 'node:crypto';
${WORK}
export default (e) => {
  const t0 = performance.now();
  const body = work(e.query.n);
  return { statusCode: 200, headers: { 'x-handler-ms': String(performance.now() - t0) }, body };
};`;

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });
let token = '';

function call(url: string, method = 'GET', body?: unknown, auth = true): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined>; ms: number }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const t0 = performance.now();
    const req = request(url, {
      method,
      agent,
      headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers, ms: performance.now() - t0 }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const f = (ms: number) => ms.toFixed(2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function deploy(base: string, name: string, limits: Record<string, unknown>) {
  const r = await call(`${base}/api/v1alpha1/projects/default/functions`, 'POST', {
    apiVersion: API_VERSION,
    kind: 'Function',
    metadata: { name },
    spec: { source: { code: HANDLER }, limits },
  });
  if (r.status !== 201) throw new Error(`deploy ${name}: ${r.status} ${r.body}`);
}

async function instances(base: string, name: string): Promise<number> {
  const text = (await call(`${base}/metrics`, 'GET', undefined, false)).body;
  const m = new RegExp(`^marina_function_instances\\{project="default",function="${name}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** CPU time (ms) and voluntary/involuntary context switches of a process, all its threads. */
function procUsage(pid: number): { cpuMs: number; voluntary: number; involuntary: number } {
  const out = { cpuMs: 0, voluntary: 0, involuntary: 0 };
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8').split(') ')[1]!.split(' ');
      out.cpuMs += (Number(stat[11]) + Number(stat[12])) * 10; // utime + stime in clock ticks (100 Hz)
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      out.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    }
  } catch {
    /* gone */
  }
  return out;
}

/** The function's sandbox processes (the Node runners below this process), by /proc ancestry. */
function runnerPids(): number[] {
  const parent = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
  const out: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const pid = Number(entry);
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('/runner/runner.mjs')) continue;
      for (let p = parent(pid), i = 0; p > 1 && i < 16; p = parent(p), i++) if (p === process.pid) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

const sumUsage = (pids: number[]) =>
  pids.map(procUsage).reduce((a, b) => ({ cpuMs: a.cpuMs + b.cpuMs, voluntary: a.voluntary + b.voluntary, involuntary: a.involuntary + b.involuntary }), { cpuMs: 0, voluntary: 0, involuntary: 0 });

async function drive(url: string, n: number, c: number): Promise<{ seconds: number; lat: number[]; failed: number }> {
  let next = 0;
  let failed = 0;
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next < n) {
        const i = next++;
        const r = await call(`${url}?n=${i}`);
        if (r.status !== 200) failed++;
        lat.push(r.ms);
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, lat, failed };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'marina-bench-fn-'));
  const server = await startServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', controllers: false, logger: pino({ level: 'warn' }) });
  token = server.adminToken!;
  const base = server.url;
  try {
    console.log(`# function service benchmark — load before: ${load()}`);
    await deploy(base, 'cold', { idleSeconds: 1 });
    await deploy(base, 'warm', {});
    await sleep(1000); // the warm pool fills

    // Cold starts: wait until the function scaled to zero (and the pool refilled), then call.
    const coldRt: number[] = [];
    const coldWait: number[] = [];
    for (let i = 0; i < COLD; i++) {
      while ((await instances(base, 'cold')) > 0) await sleep(100);
      await sleep(300);
      const r = await call(`${base}/fn/default/cold?n=${i}`);
      if (r.status !== 200 || r.headers['x-marina-cold-start'] !== 'true') throw new Error(`cold call ${i}: ${r.status} cold=${r.headers['x-marina-cold-start']} ${r.body}`);
      coldRt.push(r.ms);
      const act = JSON.parse((await call(`${base}/api/v1alpha1/projects/default/activations/${r.headers['x-marina-activation-id']}`)).body) as { coldStartMs: number };
      coldWait.push(act.coldStartMs);
    }

    // The plain server: the same work in this process (the warm reference and the throughput baseline).
    const work = new Function('createHash', `${WORK}; return work;`)(createHash) as (n: unknown) => unknown;
    const plain = createServer((req, res) => {
      const n = new URL(req.url ?? '/', 'http://x').searchParams.get('n');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(work(n)));
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const plainUrl = `http://127.0.0.1:${(plain.address() as { port: number }).port}/`;

    // Warm overhead: sequential calls to a warm instance, each paired with a plain call.
    for (let i = 0; i < 50; i++) await call(`${base}/fn/default/warm?n=${i}`);
    const overhead: number[] = [];
    const handler: number[] = [];
    const plainRt: number[] = [];
    const runners = runnerPids();
    const before = { marina: procUsage(process.pid), runners: sumUsage(runners) };
    for (let i = 0; i < WARM; i++) {
      const r = await call(`${base}/fn/default/warm?n=${i}`);
      const h = Number(r.headers['x-handler-ms']);
      handler.push(h);
      overhead.push(r.ms - h);
      plainRt.push((await call(`${plainUrl}?n=${i}`, 'GET', undefined, false)).ms);
    }
    const after = { marina: procUsage(process.pid), runners: sumUsage(runners) };
    const per = (a: number, b: number) => ((b - a) / WARM).toFixed(2);

    // Throughput, function first, then the plain server with the same work.
    const fn = await drive(`${base}/fn/default/warm`, REQUESTS, CONCURRENCY);
    const scaledTo = await instances(base, 'warm');
    const pl = await drive(plainUrl, REQUESTS, CONCURRENCY);
    plain.close();

    console.log(`\n## cold start (first call after scale to zero), ${COLD} samples`);
    table(['figure', 'p50 ms', 'p99 ms', 'max ms'], [
      ['HTTP round trip', f(pct(coldRt, 50)), f(pct(coldRt, 99)), f(Math.max(...coldRt))],
      ['waiting for the instance (activation coldStartMs)', f(pct(coldWait, 50)), f(pct(coldWait, 99)), f(Math.max(...coldWait))],
    ]);
    console.log(`\n## warm overhead (round trip minus handler time), ${WARM} sequential calls, each paired with a plain call`);
    table(['figure', 'p50 ms', 'p99 ms'], [
      ['overhead', f(pct(overhead, 50)), f(pct(overhead, 99))],
      ['handler time', f(pct(handler, 50)), f(pct(handler, 99))],
      ['plain Node HTTP round trip, same work, same moments (reference)', f(pct(plainRt, 50)), f(pct(plainRt, 99))],
    ]);
    console.log(`\nper warm call (both servers and the client share this process): ${per(before.marina.cpuMs, after.marina.cpuMs)} ms CPU, ` +
      `${per(before.marina.voluntary, after.marina.voluntary)} voluntary / ${per(before.marina.involuntary, after.marina.involuntary)} involuntary context switches; ` +
      `the sandbox (${runners.length} runners): ${per(before.runners.cpuMs, after.runners.cpuMs)} ms CPU, ` +
      `${per(before.runners.voluntary, after.runners.voluntary)} voluntary / ${per(before.runners.involuntary, after.runners.involuntary)} involuntary context switches`);
    console.log(`\n## throughput, ${REQUESTS} requests at concurrency ${CONCURRENCY}`);
    table(['server', 'req/s', 'p50 ms', 'p99 ms', 'failed'], [
      [`function via HTTP trigger (scaled to ${scaledTo} instances)`, (REQUESTS / fn.seconds).toFixed(0), f(pct(fn.lat, 50)), f(pct(fn.lat, 99)), String(fn.failed)],
      ['plain Node HTTP server, same work', (REQUESTS / pl.seconds).toFixed(0), f(pct(pl.lat, 50)), f(pct(pl.lat, 99)), String(pl.failed)],
    ]);
    console.log(`\nload after: ${load()}`);
  } finally {
    agent.destroy();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
