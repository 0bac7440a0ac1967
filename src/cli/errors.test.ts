import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../api/errors.js';
import { MarinaApiError, MarinaConnectionError } from '../client/index.js';
import { about, CliError, describeError, EXIT, exitCodeForHttp } from './errors.js';

test('HTTP codes map to exit codes', () => {
  assert.equal(exitCodeForHttp(404), EXIT.notFound);
  assert.equal(exitCodeForHttp(409), EXIT.conflict);
  assert.equal(exitCodeForHttp(422), EXIT.invalid);
  assert.equal(exitCodeForHttp(400), EXIT.invalid);
  assert.equal(exitCodeForHttp(401), EXIT.unauthorized);
  assert.equal(exitCodeForHttp(403), EXIT.unauthorized);
  assert.equal(exitCodeForHttp(500), EXIT.error);
});

test('an invalid object names the object and the field', async () => {
  const status = ApiError.invalidField('spec.nodePools[0].replicas', 'etcd needs an odd member count for a clear quorum; got 2').toStatus();
  const err = await about({ kind: 'Cluster', name: 'demo' }, () => Promise.reject(new MarinaApiError(status))).catch((e: unknown) => e);
  const d = describeError(err);
  assert.equal(d.exitCode, EXIT.invalid);
  assert.equal(d.message, 'Cluster "demo" is invalid: spec.nodePools[0].replicas: etcd needs an odd member count for a clear quorum; got 2');
});

test('several causes become a list', () => {
  const status = ApiError.invalid([{ field: 'a', message: 'x' }, { field: 'b', message: 'y' }]).toStatus();
  const d = describeError(new MarinaApiError(status), { kind: 'Cluster', name: 'c' });
  assert.equal(d.message, 'Cluster "c" is invalid:\n  * a: x\n  * b: y');
});

test('not found, conflict, unauthorized keep the server message', () => {
  assert.deepEqual(describeError(new MarinaApiError(ApiError.notFound('Cluster', 'x').toStatus())), { message: 'Cluster "x" not found', exitCode: EXIT.notFound });
  assert.equal(describeError(new MarinaApiError(ApiError.alreadyExists('Cluster', 'x').toStatus())).exitCode, EXIT.conflict);
  const u = describeError(new MarinaApiError(ApiError.unauthorized().toStatus()));
  assert.equal(u.exitCode, EXIT.unauthorized);
  assert.match(u.message, /missing or invalid bearer token\nlog in again/);
});

test('connection refused names the URL and suggests marina server', () => {
  const d = describeError(new MarinaConnectionError('http://127.0.0.1:7443', 'ECONNREFUSED', 'x'));
  assert.equal(d.exitCode, EXIT.error);
  assert.match(d.message, /http:\/\/127\.0\.0\.1:7443/);
  assert.match(d.message, /marina server/);
  assert.equal(describeError(new MarinaConnectionError('u', 'ETIMEDOUT', 'slow')).exitCode, EXIT.timeout);
});

test('CLI errors carry their own code', () => {
  assert.deepEqual(describeError(new CliError('bad flag', EXIT.usage)), { message: 'bad flag', exitCode: EXIT.usage });
  assert.deepEqual(describeError(new Error('boom')), { message: 'boom', exitCode: EXIT.error });
});
