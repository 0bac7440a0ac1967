// Round trip: a real `marina server` child process and the real `marina` binary against it.
// The server runs in its own process group and is stopped by group in after(), even on failure.
// It runs with --no-controllers: these tests assert API behaviour, and the progress test plays the
// controllers' part itself (it skips if real controllers answer anyway).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli → repo root
const BIN = join(ROOT, 'bin', 'marina.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp = '';
let server: ChildProcess | undefined;
let serverLog = '';
let url = '';
let adminToken = '';

/** Environment for CLI runs: only what the CLI needs, so the developer's own config never leaks in. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: tmp, MARINA_CONFIG: join(tmp, 'config.yaml'), ...extra };
}

function marina(args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number; onStdout?: (stdout: string) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(stdout);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`marina ${args.join(' ')} did not finish in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs and asserts the exit code, showing the output when it differs. */
async function ok(args: string[], opts: Parameters<typeof marina>[1] = {}, want = 0): Promise<Result> {
  const r = await marina(args, opts);
  assert.equal(r.code, want, `marina ${args.join(' ')} exited ${r.code}, wanted ${want}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** A CLI process that keeps running (watch); lines arrive in `lines`. */
function startLongRunning(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { out: '', err: '' };
  child.stdout.on('data', (d: Buffer) => (state.out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (state.err += d.toString()));
  const waitFor = async (pred: (out: string) => boolean, what: string, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!pred(state.out)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`watch never showed ${what}\nstdout: ${state.out}\nstderr: ${state.err}`);
      await sleep(50);
    }
  };
  return { child, state, waitFor };
}


async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

const MULTI_DOC = `apiVersion: marina.dev/v1alpha1
kind: Secret
metadata:
  name: creds
spec:
  type: opaque
  data:
    password: hunter2
---
apiVersion: marina.dev/v1alpha1
kind: Cluster
metadata:
  name: web
  labels:
    env: dev
spec:
  provider: sim
  nodePools:
    - name: etcd
      roles: [etcd]
      replicas: 1
    - name: controlplane
      roles: [controlplane]
      replicas: 1
    - name: workers
      roles: [worker]
      replicas: 2
`;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'marina-cli-'));
  // API only: these tests are about the CLI and the API; provisioning has its own tests. The
  // progress test plays the controllers' part itself.
  server = spawn(process.execPath, [BIN, 'server', '--data-dir', join(tmp, 'data'), '--listen', '127.0.0.1:0', '--no-controllers'], {
    detached: true, // own process group: after() kills the whole group
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MARINA_LOG_LEVEL: 'warn', HOME: tmp },
  });
  server.stdout!.on('data', (d: Buffer) => (serverLog += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (serverLog += d.toString()));
  const end = Date.now() + 30_000;
  for (;;) {
    const m = /Marina listening on (http:\/\/\S+)/.exec(serverLog);
    if (m) {
      url = m[1]!;
      break;
    }
    if (server.exitCode !== null || Date.now() > end) throw new Error(`the server did not start:\n${serverLog}`);
    await sleep(50);
  }
  const fromLog = /bootstrap admin token: (\S+)/.exec(serverLog)?.[1];
  adminToken = fromLog ?? readFileSync(join(tmp, 'data', 'admin-token'), 'utf8').trim();
});

after(async () => {
  if (server?.pid !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const timedOut = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
    if (timedOut) {
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('marina CLI against a real server', { timeout: 240_000 }, () => {
  let aliceToken = '';
  let controllersActive = false;

  it('explains an unreachable server with its URL', async () => {
    const port = await freePort();
    const r = await ok(['get', 'clusters', '-p', 'x', '--server', `http://127.0.0.1:${port}`, '--token', 'x'], {}, 1);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(r.stderr, /marina server/);
  });

  it('login checks the token, then stores it with mode 0600', async () => {
    const bad = await ok(['login', url, '--token', 'mrn_bogus'], {}, 6);
    assert.match(bad.stderr, /error: .*token/i);
    const r = await ok(['login', url, '--token', adminToken, '--context', 'test']);
    assert.match(r.stdout, /as admin \(platform admin\)/);
    const path = join(tmp, 'config.yaml');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const cfg = parseYaml(readFileSync(path, 'utf8'));
    assert.equal(cfg['current-context'], 'test');
    assert.equal(cfg.contexts[0].server, url);
    const me = JSON.parse((await ok(['whoami', '-o', 'json'])).stdout);
    assert.equal(me.user, 'admin');
    assert.equal(me.platformAdmin, true);
    assert.ok(Array.isArray(me.projects));
  });

  it('creates projects and users; a second create is a conflict (exit 4)', async () => {
    assert.equal((await ok(['project', 'create', 'demo', '--member', 'alice=viewer'])).stdout, 'project/demo created\n');
    const again = await ok(['project', 'create', 'demo'], {}, 4);
    assert.match(again.stderr, /already exists/);
    await ok(['project', 'create', 'other']);
    await ok(['user', 'create', 'alice']);
    const issued = JSON.parse((await ok(['token', 'create', '--user', 'alice', '--description', 'cli test', '-o', 'json'])).stdout);
    assert.match(issued.token, /^mrn_/);
    aliceToken = issued.token;
    await ok(['config', 'set-context', '--project', 'demo']);
  });

  it('apply -f creates a multi-document file, then reports unchanged and configured', async () => {
    const file = join(tmp, 'objs.yaml');
    writeFileSync(file, MULTI_DOC);
    const first = await ok(['apply', '-f', file, '-p', 'demo']);
    assert.equal(first.stdout, 'secret/creds created\ncluster/web created\n');
    const second = await ok(['apply', '-f', file, '-p', 'demo']);
    assert.equal(second.stdout, 'secret/creds unchanged\ncluster/web unchanged\n');
    const third = await ok(['apply', '-f', '-', '-p', 'demo'], { input: MULTI_DOC.replace('replicas: 2', 'replicas: 3') });
    assert.equal(third.stdout, 'secret/creds unchanged\ncluster/web configured\n');
    const web = await api('GET', '/api/v1alpha1/projects/demo/clusters/web');
    const pools = (web.json as { spec: { nodePools: { name: string; replicas: number }[] } }).spec.nodePools;
    assert.equal(pools.find((p) => p.name === 'workers')!.replicas, 3);
    // Whether controllers are running decides which progress tests make sense.
    await sleep(1500);
    const again = (await api('GET', '/api/v1alpha1/projects/demo/clusters/web')).json as { status?: unknown; metadata: { finalizers?: string[] } };
    controllersActive = again.status !== undefined || (again.metadata.finalizers ?? []).length > 0;
  });

  it('get prints table, json, yaml and name output', async () => {
    const table = (await ok(['get', 'clusters'])).stdout.trimEnd().split('\n');
    assert.deepEqual(table[0]!.split(/\s+/), ['NAME', 'VERSION', 'PHASE', 'ENDPOINT', 'POOLS', 'AGE']);
    assert.match(table[1]!, /^web\s/);
    assert.match(table[1]!, /\/5\s/);

    const one = JSON.parse((await ok(['get', 'cluster', 'web', '-o', 'json'])).stdout);
    assert.equal(one.kind, 'Cluster');
    assert.equal(one.metadata.project, 'demo');
    assert.deepEqual(one.metadata.labels, { env: 'dev' });
    const list = JSON.parse((await ok(['get', 'cl', '-p', 'demo', '-o', 'json'])).stdout);
    assert.equal(list.kind, 'ClusterList');
    assert.deepEqual(list.items.map((i: { metadata: { name: string } }) => i.metadata.name), ['web']);
    const y = parseYaml((await ok(['get', 'secret/creds', '-o', 'yaml'])).stdout);
    assert.equal(y.kind, 'Secret');
    assert.equal(y.spec.type, 'opaque');
    assert.equal((await ok(['get', 'clusters', '-o', 'name'])).stdout, 'cluster/web\n');
    const all = (await ok(['get', 'clusters', '-A'])).stdout;
    assert.match(all, /^PROJECT\s+NAME/);
    assert.match(all, /\ndemo\s+web\s/);
    const projects = (await ok(['get', 'projects', '-o', 'name'])).stdout.trim().split('\n');
    assert.ok(projects.includes('project/demo') && projects.includes('project/other'), projects.join(' '));
    const empty = await ok(['get', 'machines', '-p', 'other']);
    assert.equal(empty.stdout, '');
    assert.match(empty.stderr, /No machines found in project other/);
  });

  it('get follows list pages transparently', async () => {
    for (const n of ['a', 'b', 'c']) await ok(['apply', '-f', '-'], { input: `kind: Secret\nmetadata: {name: page-${n}}\nspec: {type: t, data: {}}\n` });
    const names = (await ok(['get', 'secrets', '--chunk-size', '1', '-o', 'name'])).stdout.trim().split('\n');
    assert.deepEqual(names.sort(), ['secret/creds', 'secret/page-a', 'secret/page-b', 'secret/page-c']);
    await ok(['delete', 'secret', 'page-a', 'page-b', 'page-c']);
  });

  it('describe shows metadata, pools and conditions', async () => {
    const d = (await ok(['describe', 'cluster', 'web'])).stdout;
    for (const re of [/^Name:\s+web$/m, /^Project:\s+demo$/m, /^Labels:\s+env=dev$/m, /Node Pools:/, /workers\s+worker\s+3/, /^Conditions:$/m]) assert.match(d, re);
    const s = (await ok(['describe', 'secret', 'creds'])).stdout;
    assert.match(s, /password: 7 bytes/);
    assert.doesNotMatch(s, /hunter2/);
  });

  it('watch streams a change made by another command', async () => {
    const w = startLongRunning(['watch', 'clusters', '-p', 'demo', '--initial', '-o', 'json']);
    try {
      await w.waitFor((o) => o.includes('"ADDED"'), 'the initial ADDED event');
      const scaled = await ok(['cluster', 'scale', 'web', '--pool', 'workers', '--replicas', '4']);
      assert.match(scaled.stdout, /cluster\/web scaled \(pool workers: 3 → 4\)/);
      await w.waitFor((o) => o.split('\n').some((l) => l.includes('"MODIFIED"') && l.includes('"replicas":4')), 'the scale');
      const events = w.state.out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } });
      assert.ok(events.every((e) => e.object.metadata.name === 'web'));
    } finally {
      w.child.kill('SIGTERM');
    }
    const table = startLongRunning(['get', 'clusters', '-w']);
    try {
      await table.waitFor((o) => /^ADDED\s+web\s/m.test(o), 'a table row');
      assert.match(table.state.out, /^EVENT\s+NAME\s+VERSION\s+PHASE/);
    } finally {
      table.child.kill('SIGTERM');
    }
  });

  it('an even etcd count is invalid input (exit 5) naming the field', async () => {
    const r = await ok(['cluster', 'create', 'bad', '--etcd', '2', '--no-wait'], {}, 5);
    assert.match(r.stderr, /error: Cluster "bad" is invalid: spec\.nodePools\[0\]\.replicas: .*odd/);
    const v = await ok(['cluster', 'create', 'bad', '--etcd', '1', '--version', 'v0.0.1', '--no-wait'], {}, 5);
    assert.match(v.stderr, /spec\.kubernetesVersion/);
    const f = join(tmp, 'broken.yaml');
    writeFileSync(f, 'kind: Cluster\nmetadata: {name: x}\nspec: {nodePools: [{name: a, roles: [etcd], replicas: 1, color: red}]}\n');
    const u = await ok(['apply', '-f', f], {}, 5);
    assert.match(u.stderr, /Cluster "x" is invalid/);
    assert.match(u.stderr, /spec\.nodePools\[0\]/);
  });

  it('not found is exit 3', async () => {
    for (const args of [['get', 'cluster', 'nope'], ['describe', 'cluster', 'nope'], ['delete', 'cluster', 'nope'], ['cluster', 'scale', 'nope', '--pool', 'workers', '--replicas', '1'], ['get', 'clusters', '-p', 'no-such-project', 'x']]) {
      const r = await ok(args, {}, 3);
      assert.match(r.stderr, /not found/, args.join(' '));
    }
    const pool = await ok(['cluster', 'scale', 'web', '--pool', 'gpu', '--replicas', '1'], {}, 3);
    assert.match(pool.stderr, /no pool "gpu"; pools: etcd, controlplane, workers/);
  });

  it('unauthorized and forbidden are exit 6; env overrides the config', async () => {
    const bogus = await ok(['get', 'clusters', '--token', 'mrn_bogus'], {}, 6);
    assert.match(bogus.stderr, /invalid, revoked or expired/);
    const asAlice = { MARINA_URL: url, MARINA_TOKEN: aliceToken };
    const me = JSON.parse((await ok(['whoami', '-o', 'json'], { env: asAlice })).stdout);
    assert.deepEqual(me.projects, [{ name: 'demo', role: 'viewer' }]);
    // A viewer may read (her only project is the default) but not create.
    assert.equal((await ok(['get', 'clusters', '-o', 'name'], { env: asAlice })).stdout, 'cluster/web\n');
    const denied = await ok(['cluster', 'create', 'mine', '--no-wait'], { env: asAlice }, 6);
    assert.match(denied.stderr, /may not create Cluster/);
    // Another project is invisible to her: not found, not forbidden.
    await ok(['get', 'clusters', '-p', 'other'], { env: asAlice }, 3);
  });

  it('usage errors are exit 2', async () => {
    await ok(['get'], {}, 2);
    await ok(['get', 'pods'], {}, 2);
    await ok(['cluster', 'create', 'x', '--etcd', 'three'], {}, 2);
    await ok(['frobnicate'], {}, 2);
    assert.match((await ok(['--help'])).stdout, /Exit codes:/);
  });

  it('cluster create --wait prints progress and ends on Ready, Failed or timeout', async (t) => {
    if (controllersActive) {
      t.skip('real controllers are running; they, not this test, drive the status');
      return;
    }
    const base = '/api/v1alpha1/projects/demo';
    const setStatus = async (path: string, status: unknown) => {
      const cur = (await api('GET', base + path)).json as Record<string, unknown>;
      const r = await api('PUT', `${base}${path}/status`, { ...cur, status });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    };
    const waitExists = async (path: string) => {
      while ((await api('GET', base + path)).status !== 200) await sleep(50);
    };
    const now = () => new Date().toISOString();

    // Play the controller while the CLI waits; each step once the CLI printed the previous one (its
    // watches of clusters and machines are separate streams: a Ready cluster ends the wait at once).
    let printed = '';
    const waiters: { re: RegExp; resolve: () => void }[] = [];
    const onStdout = (stdout: string) => {
      printed = stdout;
      for (const w of waiters.filter((x) => x.re.test(printed))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    };
    const create = marina(['cluster', 'create', 'prog', '--etcd', '1', '--controlplanes', '1', '--workers', '0', '--timeout', '60s'], { onStdout });
    const printedLine = (re: RegExp) =>
      re.test(printed)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ re, resolve })),
            create.then((r) => {
              throw new Error(`the CLI ended (${r.code}) before printing ${re}:\n${r.stdout}${r.stderr}`);
            }),
          ]);
    await waitExists('/clusters/prog');
    await setStatus('/clusters/prog', { phase: 'Provisioning', observedGeneration: 1, conditions: [{ type: 'EtcdReady', status: 'False', reason: 'Creating', lastTransitionTime: now() }] });
    await printedLine(/EtcdReady=False \(Creating\)/);
    const machine = { apiVersion: 'marina.dev/v1alpha1', kind: 'Machine', metadata: { name: 'prog-etcd-x2k1' }, spec: { cluster: 'prog', pool: 'etcd', roles: ['etcd'], provider: 'sim', kubernetesVersion: 'v1.36.3' } };
    assert.equal((await api('POST', `${base}/machines`, machine)).status, 201);
    await printedLine(/machine prog-etcd-x2k1 created/);
    await setStatus('/machines/prog-etcd-x2k1', { phase: 'Running', address: '127.0.10.1', nodeName: 'prog-etcd-x2k1', nodeReady: true });
    await printedLine(/machine prog-etcd-x2k1 Running/);
    await setStatus('/clusters/prog', {
      phase: 'Ready',
      observedGeneration: 1,
      endpoint: 'https://127.0.10.2:6443',
      pools: [{ name: 'etcd', replicas: 1, readyReplicas: 1 }, { name: 'controlplane', replicas: 1, readyReplicas: 1 }, { name: 'workers', replicas: 0, readyReplicas: 0 }],
      conditions: [{ type: 'EtcdReady', status: 'True', reason: 'QuorumHealthy', lastTransitionTime: now() }],
    });
    const r = await create;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    for (const re of [/^\[\d+\.\ds\] cluster prog Provisioning$/, /cluster prog EtcdReady=False \(Creating\)/, /machine prog-etcd-x2k1 created \(pool etcd/, /machine prog-etcd-x2k1 Running \(127\.0\.10\.1\)/, /cluster prog Ready$/, /EtcdReady=True \(QuorumHealthy\)/, /^cluster "prog" is Ready/]) {
      assert.ok(lines.some((l) => re.test(l)), `no line matching ${re}:\n${r.stdout}`);
    }

    const failing = marina(['cluster', 'create', 'doomed', '--etcd', '1', '--workers', '0', '--timeout', '60s']);
    await waitExists('/clusters/doomed');
    await setStatus('/clusters/doomed', { phase: 'Failed', observedGeneration: 1, conditions: [{ type: 'EtcdReady', status: 'False', reason: 'QuorumLost', message: 'no member answers', lastTransitionTime: now() }] });
    const f = await failing;
    assert.equal(f.code, 1, f.stderr);
    assert.match(f.stderr, /cluster "doomed" failed: EtcdReady: QuorumLost: no member answers/);

    const slow = await ok(['cluster', 'create', 'slow', '--etcd', '1', '--workers', '0', '--timeout', '1s'], {}, 7);
    assert.match(slow.stderr, /timed out after 1s waiting for cluster "slow" to become Ready/);

    for (const n of ['prog', 'doomed', 'slow']) await ok(['cluster', 'delete', n]);
    await ok(['delete', 'machine', 'prog-etcd-x2k1']);
  });

  it('kubeconfig: printed when the cluster has one, a clear conflict before', async () => {
    const r = await marina(['cluster', 'kubeconfig', 'web']);
    if (r.code === 0) assert.match(r.stdout, /clusters:/);
    else {
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /no kubeconfig yet/);
    }
  });

  it('tokens can be listed and revoked; the audit log shows the changes', async () => {
    const list = (await ok(['token', 'list'])).stdout;
    const id = /^(\S+)\s+alice\s+cli test/m.exec(list)?.[1];
    assert.ok(id, list);
    assert.equal((await ok(['token', 'revoke', id])).stdout, `token ${id} revoked\n`);
    await ok(['whoami'], { env: { MARINA_URL: url, MARINA_TOKEN: aliceToken } }, 6);
    const audit = (await ok(['audit', '-p', 'demo', '--limit', '200'])).stdout;
    assert.match(audit, /admin\s+create\s+Cluster\s+demo\s+web\s+1\s+201/);
    assert.match(audit, /admin\s+update\s+Cluster\s+demo\s+web\s+\d+\s+200/);
    const json = JSON.parse((await ok(['audit', '-p', 'demo', '-o', 'json', '--limit', '1'])).stdout);
    assert.equal(json.items.length, 1);
  });

  it('delete removes objects; --wait follows finalizers until the object is gone', async () => {
    assert.equal((await ok(['delete', 'secret', 'creds'])).stdout, 'secret/creds deleted\n');
    await ok(['get', 'secret', 'creds'], {}, 3);

    // A finalizer of our own keeps the cluster after DELETE (202) until we drop it.
    const path = '/api/v1alpha1/projects/demo/clusters/web';
    const hold = 'test.marina.dev/hold';
    const edit = async (fn: (fins: string[]) => string[]) => {
      for (;;) {
        const cur = (await api('GET', path)).json as { metadata: { finalizers?: string[] } };
        cur.metadata.finalizers = fn(cur.metadata.finalizers ?? []);
        const r = await api('PUT', path, cur);
        if (r.status !== 409) return assert.equal(r.status, 200, JSON.stringify(r.json));
      }
    };
    await edit((f) => [...f, hold]);
    const w = startLongRunning(['cluster', 'delete', 'web', '--wait', '--timeout', '120s']);
    try {
      await w.waitFor((o) => o.includes('cluster/web deletion started'), 'the deletion starting');
      assert.match(w.state.out, new RegExp(hold.replace(/\./g, '\\.')));
      await edit((f) => f.filter((x) => x !== hold));
      await w.waitFor((o) => /cluster\/web deleted \(/.test(o), 'the end of the deletion', 120_000);
      const code = await new Promise((r) => (w.child.exitCode !== null ? r(w.child.exitCode) : w.child.once('exit', r)));
      assert.equal(code, 0, w.state.err);
      assert.match(w.state.out, /cluster web deleted/);
    } finally {
      w.child.kill('SIGTERM');
    }
    await ok(['get', 'cluster', 'web'], {}, 3);
    await ok(['delete', 'cluster', 'web', '--ignore-not-found']);
  });

  it('logout forgets the context', async () => {
    await ok(['config', 'get-contexts']);
    assert.match((await ok(['logout'])).stdout, /removed context "test"/);
    const r = await ok(['get', 'clusters', '-p', 'demo', '--server', url], {}, 6);
    assert.match(r.stderr, /no token/);
  });
});
