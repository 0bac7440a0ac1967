import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { Activation } from '../api/functions.js';
import { isApiError } from '../api/errors.js';
import { failureCode, parseCloudEvent, requestEvent, sendResult } from './function-http.js';

const activation = (over: Partial<Activation> = {}): Activation => ({
  id: 'a1',
  project: 'p',
  function: 'f',
  revision: 1,
  trigger: { type: 'http' },
  attempt: 1,
  start: '2026-01-01T00:00:00.000Z',
  end: '2026-01-01T00:00:00.001Z',
  durationMs: 1,
  coldStart: false,
  outcome: 'success',
  ...over,
});

/** The answer sendResult writes for a handler's result, through a real Fastify reply. */
async function answer(value: unknown, a = activation()) {
  const app = Fastify();
  app.get('/', async (_req, reply) => sendResult(reply, a, value));
  const res = await app.inject({ url: '/' });
  await app.close();
  return res;
}

describe('HTTP trigger mapping', () => {
  it('hands the function the request without the caller’s credentials, JSON parsed, text as text, the rest in base64', () => {
    const base = { method: 'POST', headers: { authorization: 'Bearer x', cookie: 'c=1', 'x-a': ['1', '2'] } };
    const json = requestEvent({ ...base, headers: { ...base.headers, 'content-type': 'application/vnd.api+json; charset=utf-8' }, body: Buffer.from('{"a":1}') }, 'x/y', { q: ['1', '2'] });
    assert.deepEqual(json, { method: 'POST', path: '/x/y', query: { q: ['1', '2'] }, headers: { 'x-a': '1, 2', 'content-type': 'application/vnd.api+json; charset=utf-8' }, body: { a: 1 } });
    assert.equal(requestEvent({ method: 'PUT', headers: { 'content-type': 'text/csv' }, body: Buffer.from('a,b') }, '', {}).body, 'a,b');
    const bin = requestEvent({ method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([0, 255]) }, '', {});
    assert.deepEqual([bin.body, bin.isBase64Encoded], ['AP8=', true]);
    // "application/jsonp" is not JSON.
    assert.equal(requestEvent({ method: 'PUT', headers: { 'content-type': 'application/jsonp' }, body: Buffer.from('x(') }, '', {}).isBase64Encoded, true);
    assert.throws(() => requestEvent({ method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from('{') }, '', {}), (e: unknown) => isApiError(e) && e.code === 400);
  });

  it('sends a full response, or the value as JSON; failures as a Status naming the activation', async () => {
    const full = await answer({ statusCode: 418, headers: { 'x-tea': 'pot' }, body: 'short and stout' });
    assert.deepEqual([full.statusCode, full.headers['x-tea'], full.body, full.headers['x-marina-activation-id']], [418, 'pot', 'short and stout', 'a1']);
    const plain = await answer({ ok: true });
    assert.deepEqual([plain.statusCode, plain.json()], [200, { ok: true }]);
    assert.equal((await answer({ statusCode: 200, body: 'aGk=', isBase64Encoded: true })).body, 'hi');
    const failed = await answer(undefined, activation({ outcome: 'timeout', error: 'deadline of 1 s passed' }));
    assert.deepEqual([failed.statusCode, failed.json().reason, failed.json().activation], [504, 'FunctionFailed', 'a1']);
    assert.equal(failureCode(activation({ outcome: 'error', error: 'no instance of p/f is free' })), 503);
    assert.equal(failureCode(activation({ outcome: 'oom' })), 502);
  });

  it('drops headers a function sets that HTTP cannot carry, instead of failing the answer', async () => {
    const res = await answer({ statusCode: 200, headers: { 'bad name': 'x', 'x-split': 'a\r\nx-injected: 1', 'x-ok': 'fine', 'x-num': 5 }, body: 'b' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-ok'], 'fine');
    assert.equal(res.headers['x-split'], undefined);
    assert.equal(res.headers['x-injected'], undefined);
    assert.equal(res.headers['bad name'], undefined);
  });

  it('answers a 1xx "status" as a value, not as an interim response', async () => {
    const res = await answer({ statusCode: 101, body: 'x' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { statusCode: 101, body: 'x' });
  });
});

describe('CloudEvents over HTTP', () => {
  it('reads structured mode, and binary mode from ce-* headers with the body as data', () => {
    const structured = parseCloudEvent({ method: 'POST', headers: { 'content-type': 'application/cloudevents+json', 'ce-specversion': '1.0' }, body: Buffer.from('{"id":"1"}') });
    assert.deepEqual(structured, { id: '1' });
    const binary = parseCloudEvent({
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': '2', 'ce-source': 's', 'ce-type': 't' },
      body: Buffer.from('{"x":1}'),
    });
    assert.deepEqual(binary, { specversion: '1.0', id: '2', source: 's', type: 't', datacontenttype: 'application/json', data: { x: 1 } });
    const bytes = parseCloudEvent({ method: 'POST', headers: { 'content-type': 'image/png', 'ce-specversion': '1.0' }, body: Buffer.from([1]) });
    assert.equal(bytes.data_base64, 'AQ==');
    assert.throws(() => parseCloudEvent({ method: 'POST', headers: { 'content-type': 'text/plain' }, body: Buffer.from('x') }), /send a CloudEvent/);
  });
});
