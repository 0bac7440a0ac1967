import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MarinaApiError, MarinaClient, MarinaConnectionError, ndjsonLines, type WatchEvent } from './index.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, body: string) => void;

/** A throwaway HTTP server whose handler the test supplies; records every request. */
async function fakeServer(handler: Handler) {
  const requests: { method: string; url: URL; headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url!, 'http://x');
      requests.push({ method: req.method!, url, headers: req.headers, body });
      handler(req, res, url, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const json = (res: ServerResponse, code: number, v: unknown) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(v));
};
const obj = (name: string, rv: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'marina.dev/v1alpha1', kind: 'Cluster', metadata: { name, project: 'p', resourceVersion: rv }, spec: { nodePools: [] }, ...extra,
});

test('paths, auth header and list paging', async () => {
  const srv = await fakeServer((_req, res, url) => {
    const cont = url.searchParams.get('continue');
    const page = cont === null ? 0 : Number(cont);
    json(res, 200, { apiVersion: 'v', kind: 'ClusterList', metadata: { resourceVersion: '10', ...(page < 2 ? { continue: String(page + 1) } : {}) }, items: [obj(`c${page}`, '1')] });
  });
  try {
    const c = new MarinaClient({ server: srv.url + '/', token: 'secret' });
    assert.equal(c.path('Cluster', { project: 'p', name: 'a b' }), '/api/v1alpha1/projects/p/clusters/a%20b');
    assert.equal(c.path('Cluster'), '/api/v1alpha1/clusters');
    assert.equal(c.path('Project', { project: 'ignored', name: 'x' }), '/api/v1alpha1/projects/x');
    const all = await c.listAll('Cluster', { project: 'p', labelSelector: 'env=dev', limit: 1 });
    assert.deepEqual(all.items.map((i) => i.metadata.name), ['c0', 'c1', 'c2']);
    assert.equal(all.metadata.resourceVersion, '10');
    assert.equal(all.metadata.continue, undefined);
    assert.equal(srv.requests.length, 3);
    assert.equal(srv.requests[0]!.url.pathname, '/api/v1alpha1/projects/p/clusters');
    assert.equal(srv.requests[0]!.url.searchParams.get('labelSelector'), 'env=dev');
    assert.equal(srv.requests[0]!.url.searchParams.get('limit'), '1');
    assert.equal(srv.requests[2]!.url.searchParams.get('continue'), '2');
    assert.equal(srv.requests[0]!.headers.authorization, 'Bearer secret');
  } finally {
    await srv.close();
  }
});

test('errors: Status bodies become MarinaApiError with causes; other bodies keep their text', async () => {
  const srv = await fakeServer((req, res, url) => {
    if (url.pathname.endsWith('/bad')) {
      json(res, 422, { kind: 'Status', code: 422, reason: 'Invalid', message: 'invalid object: spec.x: nope', field: 'spec.x', causes: [{ field: 'spec.x', message: 'nope' }] });
    } else if (url.pathname.endsWith('/proxy')) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway');
    } else if (req.method === 'DELETE') {
      json(res, 202, obj('gone-later', '5', { metadata: { name: 'gone-later', deletionTimestamp: 't' } }));
    } else {
      res.writeHead(200, { 'content-type': 'application/yaml' });
      res.end('apiVersion: v1\nkind: Config\n');
    }
  });
  try {
    const c = new MarinaClient({ server: srv.url, token: 't' });
    const e = await c.get('Cluster', 'bad', 'p').catch((x: unknown) => x);
    assert.ok(e instanceof MarinaApiError);
    assert.equal(e.code, 422);
    assert.equal(e.field, 'spec.x');
    assert.deepEqual(e.causes, [{ field: 'spec.x', message: 'nope' }]);
    const p = await c.get('Cluster', 'proxy', 'p').catch((x: unknown) => x);
    assert.ok(p instanceof MarinaApiError);
    assert.equal(p.code, 502);
    assert.equal(p.message, 'bad gateway');
    const d = await c.delete('Cluster', 'x', 'p');
    assert.equal(d.removed, false);
    assert.equal(d.object.metadata.deletionTimestamp, 't');
    assert.equal(await c.kubeconfig('p', 'demo'), 'apiVersion: v1\nkind: Config\n');
    assert.equal(srv.requests.at(-1)!.url.pathname, '/api/v1alpha1/projects/p/clusters/demo/kubeconfig');
    assert.throws(() => c.get('Cluster', 'x'), /lives in a project/);
  } finally {
    await srv.close();
  }
});

test('connection refused is a MarinaConnectionError naming the server', async () => {
  const srv = await fakeServer(() => undefined);
  const url = srv.url;
  await srv.close();
  const e = await new MarinaClient({ server: url, token: 't' }).whoami().catch((x: unknown) => x);
  assert.ok(e instanceof MarinaConnectionError);
  assert.equal(e.errorCode, 'ECONNREFUSED');
  assert.equal(e.server, url);
});

test('NDJSON lines split across chunks and a trailing partial line', async () => {
  const chunks = ['{"a":', '1}\n\n{"b"', ':2}\n{"c":3}'];
  const stream = new ReadableStream<Uint8Array>({
    start(ctl) {
      for (const c of chunks) ctl.enqueue(new TextEncoder().encode(c));
      ctl.close();
    },
  });
  const lines: string[] = [];
  for await (const l of ndjsonLines(stream)) lines.push(l);
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '{"c":3}']);
});

test('watchResumable resumes from the last resourceVersion and relists after 410', async () => {
  // Connection 1 (rv=5): MODIFIED a@6, BOOKMARK@7, then the stream ends.
  // Connection 2 (rv=7): 410 Gone. Relist at rv 20: a@6 (unchanged: no event), b@15 (new: ADDED).
  // Connection 3 (rv=20): DELETED b@21, then held open until the test aborts.
  let watches = 0;
  const srv = await fakeServer((_req, res, url) => {
    if (url.searchParams.get('watch') !== 'true') {
      json(res, 200, { kind: 'ClusterList', metadata: { resourceVersion: '20' }, items: [obj('a', '6'), obj('b', '15')] });
      return;
    }
    watches++;
    if (watches === 1) {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end(JSON.stringify({ type: 'MODIFIED', object: obj('a', '6') }) + '\n' + JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Cluster', metadata: { resourceVersion: '7' } } }) + '\n');
    } else if (watches === 2) {
      json(res, 410, { kind: 'Status', code: 410, reason: 'Gone', message: 'too old' });
    } else {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(JSON.stringify({ type: 'DELETED', object: obj('b', '21') }) + '\n');
    }
  });
  const ctl = new AbortController();
  try {
    const c = new MarinaClient({ server: srv.url, token: 't' });
    const seen: string[] = [];
    const reconnects: string[] = [];
    for await (const ev of c.watchResumable('Cluster', {
      project: 'p',
      resourceVersion: '5',
      retryDelayMs: 10,
      signal: ctl.signal,
      onReconnect: (i) => reconnects.push(`${i.relist ? 'relist' : 'resume'}@${i.resourceVersion}`),
    }) as AsyncGenerator<WatchEvent>) {
      seen.push(`${ev.type} ${ev.object.metadata.name}@${ev.object.metadata.resourceVersion}`);
      if (ev.type === 'DELETED' && ev.object.metadata.name === 'b') ctl.abort();
    }
    assert.deepEqual(seen, ['MODIFIED a@6', 'ADDED b@15', 'DELETED b@21']);
    assert.deepEqual(reconnects, ['resume@7', 'relist@7']);
    const watchRvs = srv.requests.filter((r) => r.url.searchParams.get('watch') === 'true').map((r) => r.url.searchParams.get('resourceVersion'));
    assert.deepEqual(watchRvs, ['5', '7', '20']);
  } finally {
    ctl.abort();
    await srv.close();
  }
});

test('watchResumable without a resourceVersion lists first and can report the list as ADDED', async () => {
  const srv = await fakeServer((_req, res, url) => {
    if (url.searchParams.get('watch') !== 'true') {
      json(res, 200, { kind: 'ClusterList', metadata: { resourceVersion: '3' }, items: [obj('a', '2')] });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write(JSON.stringify({ type: 'MODIFIED', object: obj('a', '4') }) + '\n');
  });
  const ctl = new AbortController();
  try {
    const c = new MarinaClient({ server: srv.url, token: 't' });
    const seen: string[] = [];
    for await (const ev of c.watchResumable('Cluster', { project: 'p', initial: true, signal: ctl.signal })) {
      seen.push(`${ev.type} ${ev.object.metadata.resourceVersion}`);
      if (seen.length === 2) ctl.abort();
    }
    assert.deepEqual(seen, ['ADDED 2', 'MODIFIED 4']);
    assert.equal(srv.requests[1]!.url.searchParams.get('resourceVersion'), '3');
  } finally {
    ctl.abort();
    await srv.close();
  }
});
