// The function service end to end through the REST API: validation at the edge, each trigger,
// retries and dead letters, pipelines, revisions and metrics. Real sandboxes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { API_VERSION } from '../../src/api/meta.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startControlLoops } from '../../src/server/control-loops.js';
import { FakeWorld } from '../controllers/fakes.js';
import { BASE, fnBody, startFnApi, waitFor, type FnApi } from './support.js';

let api: FnApi;
before(async () => {
  api = await startFnApi();
});
after(async () => {
  await api?.close();
});

const member = () => api.tokens.member;
async function deploy(name: string, code: string, spec: Record<string, unknown> = {}) {
  const res = await api.req(member(), 'POST', `${BASE}/functions`, fnBody(name, code, spec));
  assert.equal(res.statusCode, 201, res.body);
  return res.json();
}
async function activations(name: string) {
  const res = await api.req(member(), 'GET', `${BASE}/functions/${name}/activations?limit=100`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json().items as any[];
}

describe('validation at the edge', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['a syntax error', fnBody('bad', 'export default function ( {'), 'spec.source.code'],
    ['a TypeScript type annotation in JavaScript', fnBody('bad', 'export default (e: number) => e'), 'spec.source.code'],
    ['no default export', fnBody('bad', 'export const x = 1;'), 'spec.source.code'],
    ['an unknown import', fnBody('bad', 'import x from "left-pad"; export default x;'), 'spec.source.code'],
    ['a cron schedule that does not parse', fnBody('bad', 'export default () => 1', { triggers: { cron: [{ name: 'c', schedule: '61 * * * *' }] } }), 'spec.triggers.cron[0].schedule'],
    ['a cron schedule with 4 fields', fnBody('bad', 'export default () => 1', { triggers: { cron: [{ name: 'c', schedule: '* * * *x' }] } }), 'spec.triggers.cron[0].schedule'],
    ['an unknown time zone', fnBody('bad', 'export default () => 1', { triggers: { cron: [{ name: 'c', schedule: '*/5 * * * *', timeZone: 'Mars/Olympus' }] } }), 'spec.triggers.cron[0].timeZone'],
    ['memory below the minimum', fnBody('bad', 'export default () => 1', { limits: { memoryMiB: 8 } }), 'spec.limits.memoryMiB'],
    ['targetInFlight above concurrency', fnBody('bad', 'export default () => 1', { limits: { concurrency: 2, targetInFlight: 3 } }), 'spec.limits.targetInFlight'],
    ['an unknown field', fnBody('bad', 'export default () => 1', { color: 'red' }), 'spec.color'],
  ];
  for (const [what, body, field] of cases) {
    it(`refuses ${what} with 422 naming ${field}`, async () => {
      const res = await api.req(member(), 'POST', `${BASE}/functions`, body);
      assert.equal(res.statusCode, 422, res.body);
      assert.ok(res.json().causes.some((c: { field: string }) => c.field === field), res.body);
    });
  }
  it('compiles TypeScript and bundles an uploaded file set', async () => {
    await deploy('ts', 'export default async (e: { n: number }): Promise<number> => e.n * 2;', { source: { language: 'typescript', code: 'export default async (e: { n: number }): Promise<number> => e.n * 2;' } });
    const res = await api.req(member(), 'POST', `${BASE}/functions`, {
      apiVersion: API_VERSION,
      kind: 'Function',
      metadata: { name: 'bundle' },
      spec: { source: { language: 'typescript', entry: 'src/index.ts', files: { 'src/index.ts': 'import { twice } from "./lib";\nexport default (e: number) => twice(e);', 'src/lib.ts': 'export const twice = (n: number) => n * 2;' } } },
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await api.req(member(), 'POST', `${BASE}/functions/ts/invoke`, { n: 4 })).json().result, 8);
    const r = await api.req(member(), 'POST', `${BASE}/functions/bundle/invoke`, 21);
    assert.equal(r.json().result, 42, r.body);
  });
  it('lets viewers read functions but not deploy or invoke them', async () => {
    assert.equal((await api.req(api.tokens.viewer, 'POST', `${BASE}/functions`, fnBody('v', 'export default () => 1'))).statusCode, 403);
    assert.equal((await api.req(api.tokens.viewer, 'GET', `${BASE}/functions`)).statusCode, 200);
    assert.equal((await api.req(api.tokens.outsider, 'GET', `${BASE}/functions/bundle/activations`)).statusCode, 404);
  });
});

describe('HTTP trigger', () => {
  before(async () => {
    await deploy('echo', 'export default async (e, ctx) => ({ statusCode: 201, headers: { "x-echo": e.method }, body: { path: e.path, query: e.query, body: e.body, auth: e.headers.authorization ?? null, rev: ctx.revision } })');
    await deploy('open', 'export default (e) => `hi ${e.query.name}`', { triggers: { http: { public: true } } });
  });
  it('maps the request to the event and the result to the response', async () => {
    const res = await api.req(member(), 'POST', '/fn/alpha/echo/a/b?x=1', { hello: 'world' });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['x-echo'], 'POST');
    assert.ok(res.headers['x-marina-activation-id']);
    assert.deepEqual(res.json(), { path: '/a/b', query: { x: '1' }, body: { hello: 'world' }, auth: null, rev: 1 });
  });
  it('needs a token of a project member unless the function is public', async () => {
    assert.equal((await api.req(undefined, 'GET', '/fn/alpha/echo')).statusCode, 401);
    assert.equal((await api.req(api.tokens.outsider, 'GET', '/fn/alpha/echo')).statusCode, 404);
    assert.equal((await api.req(api.tokens.viewer, 'GET', '/fn/alpha/echo')).statusCode, 403);
    const open = await api.req(undefined, 'GET', '/fn/alpha/open?name=you');
    assert.equal(open.statusCode, 200, open.body);
    assert.equal(open.json(), 'hi you');
    // Without a token, an unknown function looks like a private one: nothing tells which exist.
    assert.equal((await api.req(undefined, 'GET', '/fn/alpha/nope')).statusCode, 401);
    assert.equal((await api.req(member(), 'GET', '/fn/alpha/nope')).statusCode, 404);
  });
  it('passes a repeated query parameter as a list, and a call without a body as null (found by the fuzzer)', async () => {
    const res = await api.req(member(), 'DELETE', '/fn/alpha/echo?tag=a&tag=b&=x');
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().query, { tag: ['a', 'b'], '': 'x' });
    assert.equal(res.json().body, null);
  });
  it('refuses a bad Idempotency-Key on every call, queued or not (found by the fuzzer)', async () => {
    for (const url of ['/fn/alpha/echo', '/fn/alpha/echo?async=true', `${BASE}/functions/echo/invoke`, `${BASE}/functions/echo/invoke?async=true`]) {
      for (const key of ['', 'k'.repeat(257)]) {
        const res = await api.req(member(), 'POST', url, {}, { 'idempotency-key': key });
        assert.equal(res.statusCode, 400, `${url} with a key of ${key.length} characters: ${res.body}`);
        assert.equal(res.json().field, 'Idempotency-Key');
      }
    }
  });
  it('queues an asynchronous call (202) and runs it', async () => {
    const res = await api.req(member(), 'POST', '/fn/alpha/echo?async=true', { n: 1 }, { 'idempotency-key': 'once' });
    assert.equal(res.statusCode, 202, res.body);
    const dup = await api.req(member(), 'POST', '/fn/alpha/echo?async=true', { n: 1 }, { 'idempotency-key': 'once' });
    assert.equal(dup.json().id, res.json().id, 'the same idempotency key is the same delivery');
    await waitFor('the async activation', async () => (await activations('echo')).find((a) => a.trigger.type === 'http' && a.idempotencyKey === 'client:once'));
  });
});

describe('cron trigger', () => {
  it('fires on schedule and passes the trigger data', async () => {
    await deploy('tick', 'export default (e) => e.data', { triggers: { cron: [{ name: 'every-second', schedule: '* * * * * *', data: { hi: 1 } }] } });
    const [a] = await waitFor('two cron activations', async () => {
      const list = (await activations('tick')).filter((x) => x.trigger.type === 'cron');
      return list.length >= 2 ? list : undefined;
    });
    assert.equal(a.outcome, 'success', a.error);
    assert.deepEqual(a.result, { hi: 1 });
    assert.match(a.idempotencyKey, /^cron:every-second:/);
    const del = await api.req(member(), 'DELETE', `${BASE}/functions/tick`);
    assert.equal(del.statusCode, 200);
  });
});

describe('platform and external events', () => {
  before(async () => {
    await deploy('on-cluster', 'export default (e) => ({ type: e.type, cluster: e.data.cluster, pools: e.data.nodePools.length })', {
      triggers: { events: [{ name: 'created', filter: { types: ['dev.marina.cluster.*'], subject: 'demo*' } }] },
    });
    await deploy('on-ticket', 'export default (e) => e.data', { triggers: { events: [{ name: 'tickets', filter: { types: ['com.example.ticket.created'] } }] } });
    await api.store.create({ apiVersion: API_VERSION, kind: 'Secret', metadata: { name: 'hook-key', project: 'alpha' }, spec: { type: 'Opaque', data: { key: 's3cret' } } });
    const es = await api.req(api.tokens.member, 'POST', `${BASE}/eventsources`, { apiVersion: API_VERSION, kind: 'EventSource', metadata: { name: 'tracker' }, spec: { hmacSecret: { name: 'hook-key', key: 'key' } } });
    assert.equal(es.statusCode, 403, 'EventSources are for project admins');
    await api.store.create({ apiVersion: API_VERSION, kind: 'EventSource', metadata: { name: 'tracker', project: 'alpha' }, spec: { hmacSecret: { name: 'hook-key', key: 'key' } } });
  });
  it('creating a cluster fires a subscribed function with the CloudEvent the Cluster controller publishes', async (t) => {
    // The real controllers against the in-test provider of test/controllers, publishing on the service.
    const world = new FakeWorld(api.store);
    const controllers = await startControlLoops({
      store: api.store,
      providers: world.registry,
      metrics: new Registry(),
      logger: pino({ level: 'silent' }),
      defaultKubernetesVersion: 'v1.36.3',
      access: world.connections,
      events: api.service,
    });
    t.after(() => controllers.stop());
    const res = await api.req(member(), 'POST', `${BASE}/clusters`, {
      apiVersion: API_VERSION,
      kind: 'Cluster',
      metadata: { name: 'demo' },
      spec: { nodePools: [{ name: 'all', roles: ['etcd', 'controlplane', 'worker'], replicas: 1 }] },
    });
    assert.equal(res.statusCode, 201, res.body);
    const a = await waitFor('the event activation', async () => (await activations('on-cluster')).find((x) => x.outcome === 'success'));
    assert.deepEqual(a.result, { type: 'dev.marina.cluster.created', cluster: 'demo', pools: 1 });
    assert.equal(a.trigger.type, 'event');
  });
  it('ingests an external CloudEvent signed with HMAC-SHA256 and refuses a bad signature', async () => {
    const event = JSON.stringify({ specversion: '1.0', id: 't-1', source: 'tracker', type: 'com.example.ticket.created', data: { ticket: 7 } });
    const sign = (key: string) => `sha256=${createHmac('sha256', key).update(event).digest('hex')}`;
    const ct = { 'content-type': 'application/cloudevents+json' };
    const bad = await api.req(undefined, 'POST', '/events/alpha/tracker', event, { ...ct, 'x-marina-signature': sign('wrong') });
    assert.equal(bad.statusCode, 401, bad.body);
    assert.equal((await api.req(undefined, 'POST', '/events/alpha/tracker', event, ct)).statusCode, 401);
    assert.equal((await api.req(undefined, 'POST', '/events/alpha/nope', event, { ...ct, 'x-marina-signature': sign('s3cret') })).statusCode, 401);
    const ok = await api.req(undefined, 'POST', '/events/alpha/tracker', event, { ...ct, 'x-marina-signature': sign('s3cret') });
    assert.equal(ok.statusCode, 202, ok.body);
    const a = await waitFor('the ticket activation', async () => (await activations('on-ticket')).find((x) => x.outcome === 'success'));
    assert.deepEqual(a.result, { ticket: 7 });
  });
  it('ingests by token in binary mode, refuses forged platform types and malformed events', async () => {
    const headers = { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 't-2', 'ce-source': 'cli', 'ce-type': 'com.example.ticket.created' };
    const ok = await api.req(member(), 'POST', `${BASE}/events`, JSON.stringify({ ticket: 8 }), headers);
    assert.equal(ok.statusCode, 202, ok.body);
    await waitFor('the second ticket', async () => (await activations('on-ticket')).find((x) => x.result?.ticket === 8));
    const forged = await api.req(member(), 'POST', `${BASE}/events`, JSON.stringify({ cluster: 'x' }), { ...headers, 'ce-type': 'dev.marina.cluster.created' });
    assert.equal(forged.statusCode, 422);
    assert.equal(forged.json().field, 'type');
    const noId = await api.req(member(), 'POST', `${BASE}/events`, JSON.stringify({ specversion: '1.0', source: 's', type: 't' }), { 'content-type': 'application/cloudevents+json' });
    assert.equal(noId.statusCode, 422);
    assert.equal(noId.json().field, 'id');
    assert.equal((await api.req(api.tokens.viewer, 'POST', `${BASE}/events`, JSON.stringify({ ticket: 9 }), headers)).statusCode, 403);
  });
});

describe('retries and dead letters', () => {
  const retry = { maxAttempts: 3, backoffSeconds: 0.05, multiplier: 2 };
  it('retries a function that fails twice, then succeeds, with the same idempotency key', async () => {
    await deploy('flaky', 'export default (e, ctx) => { if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} fails`); return { attempt: ctx.attempt, key: ctx.idempotencyKey }; }', {
      triggers: { asyncRetry: retry },
    });
    const res = await api.req(member(), 'POST', `${BASE}/functions/flaky/invoke?async=true`, {});
    assert.equal(res.statusCode, 202);
    const list = await waitFor('the successful third attempt', async () => {
      const l = await activations('flaky');
      return l.some((a) => a.outcome === 'success') ? l : undefined;
    });
    assert.deepEqual(list.map((a) => [a.attempt, a.outcome]).sort(), [[1, 'error'], [2, 'error'], [3, 'success']]);
    assert.equal(new Set(list.map((a) => a.idempotencyKey)).size, 1);
    assert.equal(api.service.records.rawState(res.json().id), 'done');
  });
  it('puts one that always fails into the dead-letter list after its attempts, and replays it', async () => {
    await deploy('broken', 'export default () => { if (!process.env.FIXED) throw new Error("always"); return "fixed"; }', { triggers: { asyncRetry: retry } });
    const res = await api.req(member(), 'POST', `${BASE}/functions/broken/invoke?async=true`, { order: 1 });
    const id = res.json().id;
    const dead = await waitFor('the dead letter', async () => (await api.req(member(), 'GET', `${BASE}/deadletters`)).json().items.find((d: any) => d.id === id));
    assert.equal(dead.attempts, 3);
    assert.match(dead.lastError, /always/);
    assert.deepEqual(dead.event, { order: 1 });
    // Fix the function (a new revision), then replay the dead letter.
    const fix = await api.req(member(), 'PATCH', `${BASE}/functions/broken`, { spec: { env: { FIXED: '1' } } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(fix.statusCode, 200, fix.body);
    const replay = await api.req(member(), 'POST', `${BASE}/deadletters/${id}/replay`);
    assert.equal(replay.statusCode, 202, replay.body);
    const ok = await waitFor('the replayed success', async () => (await activations('broken')).find((a) => a.outcome === 'success'));
    assert.equal(ok.result, 'fixed');
    assert.equal(ok.revision, 2);
    assert.equal((await api.req(member(), 'GET', `${BASE}/deadletters`)).json().items.some((d: any) => d.id === id), false);
    assert.equal((await api.req(member(), 'POST', `${BASE}/deadletters/nope/replay`)).statusCode, 404);
  });
});

describe('pipelines', () => {
  it('runs three steps with a parallel branch, traced step by step', async () => {
    await deploy('parse', 'export default (e) => ({ n: e.n + 1 })');
    await deploy('double', 'export default (e) => e.n * 2');
    await deploy('square', 'export default (e) => e.n * e.n');
    await deploy('sum', 'export default (e) => e.double + e.square');
    const pl = await api.req(member(), 'POST', `${BASE}/pipelines`, {
      apiVersion: API_VERSION,
      kind: 'Pipeline',
      metadata: { name: 'math' },
      spec: {
        steps: [
          { name: 'parse', function: 'parse' },
          { name: 'fan', parallel: [{ name: 'double', function: 'double' }, { name: 'square', function: 'square' }] },
          { name: 'join', function: 'sum' },
        ],
        deadlineSeconds: 60,
      },
    });
    assert.equal(pl.statusCode, 201, pl.body);
    const start = await api.req(member(), 'POST', `${BASE}/pipelines/math/invoke`, { n: 2 });
    assert.equal(start.statusCode, 202, start.body);
    const run = await waitFor('the run to end', async () => {
      const runs = (await api.req(member(), 'GET', `${BASE}/pipelines/math/runs`)).json().items;
      return runs.find((r: any) => r.state !== 'running');
    });
    assert.equal(run.state, 'succeeded', run.error);
    assert.equal(run.output, 3 * 2 + 3 * 3);
    const traced = (await api.req(member(), 'GET', `${BASE}/pipelines/math/runs/${run.id}`)).json();
    assert.deepEqual(traced.steps.map((s: any) => [s.step, s.branch ?? null, s.outcome]), [
      ['parse', null, 'success'],
      ['fan', 'double', 'success'],
      ['fan', 'square', 'success'],
      ['join', null, 'success'],
    ]);
    assert.deepEqual(traced.activations.map((a: any) => a.step).sort(), ['fan/double', 'fan/square', 'join', 'parse']);
    assert.ok(traced.activations.every((a: any) => a.pipelineRun === run.id));
  });
  it('sends a failed run to the dead-letter list whole', async () => {
    await deploy('nope', 'export default () => { throw new Error("step fails"); }');
    const pl = await api.req(member(), 'POST', `${BASE}/pipelines`, {
      apiVersion: API_VERSION,
      kind: 'Pipeline',
      metadata: { name: 'failing' },
      spec: { steps: [{ name: 'a', function: 'parse' }, { name: 'b', function: 'nope', retry: { maxAttempts: 2, backoffSeconds: 0.01 } }] },
    });
    assert.equal(pl.statusCode, 201, pl.body);
    const id = (await api.req(member(), 'POST', `${BASE}/pipelines/failing/invoke`, { n: 1 })).json().id;
    const dead = await waitFor('the dead pipeline run', async () => (await api.req(member(), 'GET', `${BASE}/deadletters`)).json().items.find((d: any) => d.id === id));
    assert.deepEqual(dead.target, { kind: 'Pipeline', name: 'failing' });
    assert.match(dead.lastError, /step b \(nope\) failed after 2 attempt/);
    const bad = await api.req(member(), 'POST', `${BASE}/pipelines`, {
      apiVersion: API_VERSION,
      kind: 'Pipeline',
      metadata: { name: 'bad' },
      spec: { steps: [{ name: 'a', function: 'parse', parallel: [{ name: 'x', function: 'a' }, { name: 'y', function: 'b' }] }] },
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().field, 'spec.steps[0]');
  });
});

describe('revisions, scaling and metrics', () => {
  it('finishes in-flight invocations on the old revision while new ones run the new one', async () => {
    await deploy('slow', 'export default async (e) => { await new Promise((r) => setTimeout(r, e.ms)); return process.env.V; }', { env: { V: 'one' } });
    const inflight = api.req(member(), 'POST', `${BASE}/functions/slow/invoke`, { ms: 1500 });
    await waitFor('the first instance', () => api.service.pool!.instancesOf('alpha', 'slow').some((i) => i.inFlight > 0));
    const upd = await api.req(member(), 'PATCH', `${BASE}/functions/slow`, { spec: { env: { V: 'two' } } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(upd.statusCode, 200);
    const fresh = await api.req(member(), 'POST', `${BASE}/functions/slow/invoke`, { ms: 1 });
    assert.equal(fresh.json().result, 'two');
    assert.equal(fresh.json().activation.revision, 2);
    const old = await inflight;
    assert.equal(old.json().result, 'one');
    assert.equal(old.json().activation.revision, 1);
    const status = await waitFor('status of revision 2', async () => {
      const st = (await api.req(member(), 'GET', `${BASE}/functions/slow`)).json().status;
      return st?.revision === 2 ? st : undefined;
    });
    assert.equal(status.url, '/fn/alpha/slow');
    assert.deepEqual(status.conditions.map((c: any) => [c.type, c.status, c.reason, c.observedGeneration]), [['Ready', 'True', 'Compiled', 2]]);
    // The old revision's instance drains away.
    await waitFor('one instance left', () => api.service.pool!.instancesOf('alpha', 'slow').length === 1);
  });
  it('scales to zero after the idle time, and the next call is a cold start', async () => {
    await deploy('brief', 'export default () => 1', { limits: { idleSeconds: 1 } });
    const first = (await api.req(member(), 'POST', `${BASE}/functions/brief/invoke`, {})).json();
    assert.equal(first.activation.coldStart, true);
    const second = (await api.req(member(), 'POST', `${BASE}/functions/brief/invoke`, {})).json();
    assert.equal(second.activation.coldStart, false);
    const instances = (await api.req(api.tokens.viewer, 'GET', `${BASE}/functions/brief/instances`)).json();
    assert.equal(instances.items.length, 1, JSON.stringify(instances));
    assert.deepEqual([instances.items[0].revision, instances.items[0].state, instances.items[0].inFlight], [1, 'ready', 0]);
    await waitFor('scale to zero', async () => (await api.req(member(), 'GET', `${BASE}/functions/brief/instances`)).json().items.length === 0, 10_000);
    const third = (await api.req(member(), 'POST', `${BASE}/functions/brief/invoke`, {})).json();
    assert.equal(third.activation.coldStart, true);
    assert.equal(typeof third.activation.coldStartMs, 'number');
  });
  it('scales up when invocations queue, up to maxInstances', async () => {
    await deploy('busy', 'export default async () => { await new Promise((r) => setTimeout(r, 300)); return 1; }', { limits: { concurrency: 1, maxInstances: 3 } });
    const results = await Promise.all(Array.from({ length: 6 }, () => api.req(member(), 'POST', `${BASE}/functions/busy/invoke`, {})));
    assert.ok(results.every((r) => r.json().activation.outcome === 'success'));
    assert.ok(results.filter((r) => r.json().activation.coldStart).length <= 3);
    assert.equal(api.service.pool!.instancesOf('alpha', 'busy').length, 3);
  });
  it('exports invocations, errors, durations, cold starts, instances and queue depth', async () => {
    const text = await api.metrics.metrics();
    for (const name of ['marina_function_invocations_total', 'marina_function_errors_total', 'marina_function_duration_seconds_bucket', 'marina_function_cold_starts_total', 'marina_function_cold_start_seconds_bucket', 'marina_function_instances', 'marina_function_queue_depth']) {
      assert.match(text, new RegExp(`^${name}\\{`, 'm'), name);
    }
    assert.match(text, /marina_function_invocations_total\{project="alpha",function="flaky",trigger="api",outcome="error"\} 2/);
  });
});
