import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import {
  isAlreadyExists,
  isConflict,
  isNotFound,
  isResourceVersionTooLarge,
  KubeClient,
  KubeError,
  type KubeObject,
  parseKubeconfig,
  resourcePath,
  Resources,
  type WatchEvent,
} from './client.js';
import { buildKubeconfig, createCA, issueCertificate } from '../pki/index.js';
import { blackHole } from '../../test/support/black-hole.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

async function fakeServer(handler: Handler): Promise<{ url: string; seen: Seen[]; close(): Promise<void>; server: http.Server }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const status = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('resourcePath builds core, group, namespaced and subresource paths', () => {
  assert.equal(resourcePath(Resources.nodes), '/api/v1/nodes');
  assert.equal(resourcePath(Resources.nodes, { name: 'n1', subresource: 'status' }), '/api/v1/nodes/n1/status');
  assert.equal(resourcePath(Resources.pods, { namespace: 'kube-system' }), '/api/v1/namespaces/kube-system/pods');
  assert.equal(resourcePath(Resources.leases, { namespace: 'kube-node-lease', name: 'a b' }), '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/a%20b');
  assert.equal(resourcePath(Resources.deployments), '/apis/apps/v1/deployments');
  assert.throws(() => resourcePath(Resources.pods, { subresource: 'status' }), /needs a Pod name/);
});

test('parseKubeconfig reads embedded data, token, files relative to the kubeconfig, and the chosen context', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kc-'));
  try {
    await writeFile(join(dir, 'ca.crt'), 'CA-PEM');
    const text = `
apiVersion: v1
kind: Config
current-context: a
clusters:
- name: c1
  cluster: { server: "https://127.0.0.1:6443/", certificate-authority: ca.crt, tls-server-name: kubernetes }
- name: c2
  cluster: { server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true }
users:
- name: u1
  user: { client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key-data: ${Buffer.from('KEY').toString('base64')} }
- name: u2
  user: { token: abc }
contexts:
- name: a
  context: { cluster: c1, user: u1 }
- name: b
  context: { cluster: c2, user: u2 }
`;
    const a = parseKubeconfig(text, { baseDir: dir });
    assert.equal(a.server, 'https://127.0.0.1:6443');
    assert.equal(a.ca?.toString(), 'CA-PEM');
    assert.equal(a.cert?.toString(), 'CERT');
    assert.equal(a.key?.toString(), 'KEY');
    assert.equal(a.tlsServerName, 'kubernetes');
    const b = parseKubeconfig(text, { context: 'b' });
    assert.equal(b.token, 'abc');
    assert.equal(b.insecureSkipTLSVerify, true);
    assert.throws(() => parseKubeconfig(text, { context: 'nope' }), /context "nope" not found/);
    assert.throws(() => parseKubeconfig('users: []\ncontexts: []\n'), /no current-context/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('CRUD calls use the right verbs, paths, query, content types and bearer token', async () => {
  const srv = await fakeServer((req, res, body) => {
    if (req.method === 'DELETE') return json(res, 200, { kind: 'Status', status: 'Success' });
    if (req.url?.startsWith('/api/v1/namespaces/default/pods?')) return json(res, 200, { kind: 'PodList', metadata: { resourceVersion: '7' }, items: [] });
    json(res, 200, body ? { ...JSON.parse(body), echoed: true } : { metadata: { name: 'x' } });
  });
  const c = new KubeClient({ server: srv.url, token: 'sekret' }, { userAgent: 'test-agent' });
  try {
    await c.get(Resources.nodes, 'n1');
    const list = await c.list(Resources.pods, { namespace: 'default', labelSelector: 'app=web,tier in (a,b)', fieldSelector: 'spec.nodeName=n1', limit: 5 });
    assert.equal(list.metadata.resourceVersion, '7');
    await c.create(Resources.pods, { metadata: { name: 'p', namespace: 'default' } }, { fieldManager: 'me', dryRun: true });
    await c.replace(Resources.nodes, { metadata: { name: 'n1', resourceVersion: '3' } }, { subresource: 'status' });
    await c.patch(Resources.nodes, 'n1', { metadata: { labels: { a: 'b' } } }, { type: 'merge' });
    await c.patch(Resources.pods, 'p', { status: {} }, { type: 'strategic', namespace: 'default', subresource: 'status' });
    await c.patch(Resources.nodes, 'n1', [{ op: 'add', path: '/x', value: 1 }], { type: 'json' });
    await c.apply(Resources.configMaps, { metadata: { name: 'cm', namespace: 'ns' }, data: { k: 'v' } } as KubeObject, { fieldManager: 'marina', force: true });
    await c.delete(Resources.pods, 'p', { namespace: 'default', gracePeriodSeconds: 0, preconditions: { uid: 'u1' } });
    await c.evict('default', 'p2', { gracePeriodSeconds: 5 });
  } finally {
    c.close();
    await srv.close();
  }
  const s = srv.seen;
  assert.deepEqual(
    s.map((x) => `${x.method} ${x.url}`),
    [
      'GET /api/v1/nodes/n1',
      'GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier%20in%20(a%2Cb)&fieldSelector=spec.nodeName%3Dn1&limit=5',
      'POST /api/v1/namespaces/default/pods?fieldManager=me&dryRun=All',
      'PUT /api/v1/nodes/n1/status',
      'PATCH /api/v1/nodes/n1',
      'PATCH /api/v1/namespaces/default/pods/p/status',
      'PATCH /api/v1/nodes/n1',
      'PATCH /api/v1/namespaces/ns/configmaps/cm?fieldManager=marina&force=true',
      'DELETE /api/v1/namespaces/default/pods/p',
      'POST /api/v1/namespaces/default/pods/p2/eviction',
    ],
  );
  assert.ok(s.every((x) => x.headers.authorization === 'Bearer sekret' && x.headers['user-agent'] === 'test-agent'));
  assert.deepEqual(
    s.filter((x) => x.method === 'PATCH').map((x) => x.headers['content-type']),
    ['application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json', 'application/apply-patch+yaml'],
  );
  const applied = JSON.parse(s[7]!.body) as Record<string, unknown>;
  assert.equal(applied.apiVersion, 'v1');
  assert.equal(applied.kind, 'ConfigMap');
  assert.deepEqual(JSON.parse(s[8]!.body), { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: 'u1' } });
  assert.deepEqual(JSON.parse(s[9]!.body), {
    apiVersion: 'policy/v1',
    kind: 'Eviction',
    metadata: { name: 'p2', namespace: 'default' },
    deleteOptions: { gracePeriodSeconds: 5 },
  });
});

test('argument mistakes are caught before any request', async () => {
  const c = new KubeClient({ server: 'http://127.0.0.1:1' });
  await assert.rejects(c.get(Resources.pods, 'p'), /namespace is required/);
  await assert.rejects(c.patch(Resources.nodes, 'n', {}, { type: 'apply' }), /fieldManager/);
  await assert.rejects(c.patch(Resources.nodes, 'n', {}, { type: 'json' }), /array/);
  await assert.rejects(c.replace(Resources.nodes, { metadata: {} }), /metadata.name/);
  await assert.rejects(c.delete(Resources.pods, 'p'), TypeError);
  c.close();
});

test('API errors become KubeError with code, reason and message; network errors have code 0', async () => {
  const srv = await fakeServer((req, res) => {
    if (req.url === '/api/v1/nodes/missing') return json(res, 404, status(404, 'NotFound', 'nodes "missing" not found'));
    if (req.url === '/api/v1/nodes') return json(res, 409, status(409, 'AlreadyExists', 'nodes "n" already exists'));
    if (req.url === '/api/v1/nodes/n') return json(res, 409, status(409, 'Conflict', 'the object has been modified'));
    if (req.url === '/api/v1/nodes/throttled') {
      res.writeHead(429, { 'retry-after': '3', 'content-type': 'text/plain' });
      return res.end('slow down');
    }
    res.writeHead(500);
    res.end();
  });
  const c = new KubeClient({ server: srv.url });
  try {
    await assert.rejects(c.get(Resources.nodes, 'missing'), (e: unknown) => {
      assert.ok(e instanceof KubeError);
      assert.equal(e.code, 404);
      assert.equal(e.reason, 'NotFound');
      assert.equal(e.message, 'nodes "missing" not found');
      assert.ok(isNotFound(e) && !e.retryable);
      return true;
    });
    await assert.rejects(c.create(Resources.nodes, { metadata: { name: 'n' } }), (e: unknown) => isAlreadyExists(e) && !isConflict(e));
    await assert.rejects(c.replace(Resources.nodes, { metadata: { name: 'n' } }), (e: unknown) => isConflict(e) && !isAlreadyExists(e));
    await assert.rejects(c.get(Resources.nodes, 'throttled'), (e: unknown) => {
      assert.ok(e instanceof KubeError);
      assert.equal(e.code, 429);
      assert.equal(e.reason, 'TooManyRequests');
      assert.equal(e.retryAfterSeconds, 3);
      assert.equal(e.message, 'slow down');
      return e.retryable;
    });
  } finally {
    c.close();
    await srv.close();
  }
  const dead = new KubeClient({ server: srv.url });
  await assert.rejects(dead.get(Resources.nodes, 'x'), (e: unknown) => e instanceof KubeError && e.code === 0 && e.reason === 'NetworkError' && e.retryable);
  dead.close();
});

test('a request that gets no answer times out with ClientTimeout', async () => {
  const srv = await fakeServer(() => {
    /* never answer */
  });
  const c = new KubeClient({ server: srv.url }, { timeoutMs: 200 });
  try {
    await assert.rejects(c.get(Resources.nodes, 'x'), (e: unknown) => e instanceof KubeError && e.reason === 'ClientTimeout' && e.code === 0);
  } finally {
    c.close();
    await srv.close();
  }
});

test('mTLS: client certificate and CA from a kubeconfig built by src/pki', async () => {
  const ca = await createCA({ commonName: 'test-ca' });
  const serverCert = await issueCertificate(ca, { commonName: 'srv', usage: 'server', ipAddresses: ['127.0.0.1'] });
  const clientCert = await issueCertificate(ca, { commonName: 'system:node:n1', organizations: ['system:nodes'], usage: 'client' });
  const server = https.createServer(
    { cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      json(res, 200, { metadata: { name: peer.subject.CN } });
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const kubeconfig = buildKubeconfig({
    server: `https://127.0.0.1:${port}`,
    caPem: ca.certPem,
    userName: 'node',
    clientCertPem: clientCert.certPem,
    clientKeyPem: clientCert.keyPem,
  });
  const c = new KubeClient(parseKubeconfig(kubeconfig));
  const noCert = new KubeClient({ server: `https://127.0.0.1:${port}`, ca: Buffer.from(ca.certPem) });
  try {
    const got = await c.get(Resources.nodes, 'x');
    assert.equal(got.metadata?.name, 'system:node:n1');
    // keep-alive: a second call reuses the connection
    await c.get(Resources.nodes, 'y');
    await assert.rejects(noCert.get(Resources.nodes, 'x'), (e: unknown) => e instanceof KubeError && e.code === 0);
  } finally {
    c.close();
    noCert.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

// ---------------------------------------------------------------------------------------------
// watch

interface Obj extends KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion: string; uid?: string };
  v?: number;
}

const obj = (name: string, rv: number, v = 0): Obj => ({ metadata: { name, resourceVersion: String(rv), uid: `uid-${name}` }, v });

test('watch lists, streams events, resumes from the last resourceVersion when the stream ends', async () => {
  const watchRequests: URLSearchParams[] = [];
  let watchCount = 0;
  const srv = await fakeServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.searchParams.get('watch') !== '1') {
      return json(res, 200, { kind: 'NodeList', metadata: { resourceVersion: '10' }, items: [obj('a', 5), obj('b', 9)] });
    }
    watchRequests.push(u.searchParams);
    watchCount++;
    res.writeHead(200, { 'content-type': 'application/json' });
    if (watchCount === 1) {
      // Two events split across chunks mid-line, then a bookmark; then the server ends the stream.
      const lines = `${JSON.stringify({ type: 'MODIFIED', object: obj('a', 11, 1) })}\n${JSON.stringify({ type: 'ADDED', object: obj('c', 12) })}\n`;
      res.write(lines.slice(0, 30));
      setTimeout(() => {
        res.write(lines.slice(30));
        res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '15' } } })}\n`);
        res.end();
      }, 20);
    } else if (watchCount === 2) {
      res.write(`${JSON.stringify({ type: 'DELETED', object: obj('b', 16) })}\n`);
      // keep open
    }
  });
  const c = new KubeClient({ server: srv.url });
  const events: string[] = [];
  const w = c.watch<Obj>(Resources.nodes, {
    labelSelector: 'x=y',
    onEvent: (e: WatchEvent<Obj>) => void events.push(`${e.type} ${e.object.metadata.name} ${e.object.metadata.resourceVersion}`),
  });
  try {
    await w.synced;
    await until(() => events.length >= 5, 5000, 'events');
    assert.deepEqual(events, ['ADDED a 5', 'ADDED b 9', 'MODIFIED a 11', 'ADDED c 12', 'DELETED b 16']);
    assert.equal(watchRequests[0]!.get('resourceVersion'), '10');
    assert.equal(watchRequests[0]!.get('allowWatchBookmarks'), 'true');
    assert.equal(watchRequests[0]!.get('labelSelector'), 'x=y');
    assert.equal(watchRequests[1]!.get('resourceVersion'), '15', 'resumes from the bookmark');
    assert.deepEqual([...w.store.keys()].sort(), ['a', 'c']);
    assert.equal(w.store.get('a')?.v, 1);
    assert.equal(w.resourceVersion, '16');
  } finally {
    w.stop();
    await w.done;
    c.close();
    await srv.close();
  }
});

test('watch relists on 410 Gone and delivers the difference', async () => {
  let lists = 0;
  let watches = 0;
  const srv = await fakeServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.searchParams.get('watch') !== '1') {
      lists++;
      const items = lists === 1 ? [obj('a', 1), obj('b', 2), obj('c', 3)] : [obj('a', 1), obj('b', 20, 2), obj('d', 21)];
      return json(res, 200, { metadata: { resourceVersion: lists === 1 ? '3' : '21' }, items });
    }
    watches++;
    if (watches === 1) {
      // The expired-RV error arrives as an ERROR event in a 200 stream.
      res.writeHead(200);
      res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', 'too old resource version: 3 (15)') })}\n`);
    } else if (watches === 2) {
      json(res, 410, status(410, 'Gone', 'too old'));
    } else {
      res.writeHead(200);
    }
  });
  const c = new KubeClient({ server: srv.url });
  const events: string[] = [];
  let syncs = 0;
  const w = c.watch<Obj>(Resources.nodes, {
    onEvent: (e) => void events.push(`${e.type} ${e.object.metadata.name}`),
    onSynced: () => void syncs++,
  });
  try {
    await until(() => syncs >= 3, 5000, 'three lists');
    assert.deepEqual(events, ['ADDED a', 'ADDED b', 'ADDED c', 'MODIFIED b', 'ADDED d', 'DELETED c']);
    assert.deepEqual([...w.store.keys()].sort(), ['a', 'b', 'd']);
  } finally {
    w.stop();
    await w.done;
    c.close();
    await srv.close();
  }
});

test('watch relists when its resourceVersion is ahead of the server (an etcd restore moved the revisions back)', async () => {
  // The apiserver's answer to a watch from a revision it has not reached: 504, cause
  // ResourceVersionTooLarge. Resuming from it would skip whatever is written until the server gets
  // there; the watch must list again, whether the error comes as a response or as an ERROR event.
  let lists = 0;
  const watchRVs: string[] = [];
  const tooLarge = {
    ...status(504, 'Timeout', 'Timeout: Too large resource version: 2000000500, current: 1000000300'),
    details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 },
  };
  const srv = await fakeServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.searchParams.get('watch') !== '1') {
      lists++;
      if (lists === 1) return json(res, 200, { metadata: { resourceVersion: '2000000500' }, items: [obj('a', 2000000400)] });
      return json(res, 200, { metadata: { resourceVersion: '1000000300' }, items: [obj('a', 1000000100), obj('new', 1000000290)] });
    }
    watchRVs.push(u.searchParams.get('resourceVersion') ?? '');
    if (watchRVs.length === 1) return json(res, 504, tooLarge);
    if (watchRVs.length === 2) {
      res.writeHead(200);
      return res.end(`${JSON.stringify({ type: 'ERROR', object: tooLarge })}\n`);
    }
    res.writeHead(200);
  });
  const c = new KubeClient({ server: srv.url });
  const events: string[] = [];
  let syncs = 0;
  const w = c.watch<Obj>(Resources.nodes, {
    backoff: { initialMs: 10, maxMs: 20 },
    onEvent: (e) => void events.push(`${e.type} ${e.object.metadata.name}`),
    onSynced: () => void syncs++,
  });
  try {
    await until(() => syncs >= 3, 5000, 'a list after each refusal');
    assert.deepEqual(watchRVs.slice(0, 3), ['2000000500', '1000000300', '1000000300']);
    assert.ok(events.includes('ADDED new'), `the object written after the restore is delivered: ${events.join(', ')}`);
    assert.ok(isResourceVersionTooLarge(new KubeError(504, 'Timeout', 'Timeout: Too large resource version: 5, current: 3')));
    assert.ok(!isResourceVersionTooLarge(new KubeError(504, 'Timeout', 'the server was unable to return a response in the time allotted')));
  } finally {
    w.stop();
    await w.done;
    c.close();
    await srv.close();
  }
});

test('watch restarts a silent stream (staleness watchdog) and survives an outage with backoff', async () => {
  let watches = 0;
  let down = false;
  const srv = await fakeServer((req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const u = new URL(req.url!, 'http://x');
    if (u.searchParams.get('watch') !== '1') return json(res, 200, { metadata: { resourceVersion: '1' }, items: [] });
    watches++;
    res.writeHead(200);
    if (watches === 3) res.write(`${JSON.stringify({ type: 'ADDED', object: obj('late', 2) })}\n`);
    // otherwise: say nothing, keep the connection open
  });
  const c = new KubeClient({ server: srv.url });
  const errors: string[] = [];
  const events: string[] = [];
  const w = c.watch<Obj>(Resources.nodes, {
    staleAfterMs: 150,
    backoff: { initialMs: 20, maxMs: 50 },
    onEvent: (e) => void events.push(e.object.metadata.name),
    onError: (e) => void errors.push((e as KubeError).reason),
  });
  try {
    await until(() => watches >= 2, 3000, 'stale restart');
    assert.ok(errors.includes('WatchStale'));
    down = true;
    await until(() => errors.filter((e) => e === 'NetworkError').length >= 2, 3000, 'network errors');
    down = false;
    await until(() => events.includes('late'), 3000, 'event after recovery');
  } finally {
    w.stop();
    await w.done;
    c.close();
    await srv.close();
  }
});

test('a failing onEvent handler is reported and does not stop the watch', async () => {
  const srv = await fakeServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.searchParams.get('watch') !== '1') return json(res, 200, { metadata: { resourceVersion: '1' }, items: [obj('a', 1)] });
    res.writeHead(200);
    res.write(`${JSON.stringify({ type: 'ADDED', object: obj('b', 2) })}\n`);
  });
  const c = new KubeClient({ server: srv.url });
  const seen: string[] = [];
  const errors: unknown[] = [];
  const w = c.watch<Obj>(Resources.nodes, {
    onEvent: (e) => {
      seen.push(e.object.metadata.name);
      if (e.object.metadata.name === 'a') throw new Error('boom');
    },
    onError: (e) => void errors.push(e),
  });
  try {
    await until(() => seen.includes('b'), 3000, 'second event');
    assert.equal((errors[0] as Error).message, 'boom');
  } finally {
    c.close(); // close() stops every watch of the client
    await w.done;
    await srv.close();
  }
});

test('an aborted call ends at once and closes its connection', async () => {
  // Accepts connections and never answers (not even the TLS handshake): only the abort ends the call.
  const hole = await blackHole();
  const c = new KubeClient({ server: hole.url, insecureSkipTLSVerify: true }, { timeoutMs: 600_000 });
  try {
    const ctl = new AbortController();
    const call = c.get(Resources.nodes, 'n1', { signal: ctl.signal });
    await hole.connected();
    ctl.abort(new Error('stopping'));
    await assert.rejects(call, (err: unknown) => err instanceof KubeError && err.code === 0);
    await hole.allClosed();
    await assert.rejects(c.patch(Resources.nodes, 'n1', {}, { type: 'merge', signal: ctl.signal }), KubeError, 'an aborted signal fails a new call too');
  } finally {
    c.close();
    await hole.close();
  }
});
