import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failedChecks } from './live.js';

test("a failed /readyz is summed up by its failing checks, on one line", () => {
  const body = '[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]informer-sync ok\n[-]poststarthook/rbac/bootstrap-roles failed: not finished\nreadyz check failed\n';
  assert.equal(failedChecks(body), 'etcd failed: reason withheld; poststarthook/rbac/bootstrap-roles failed: not finished');
  assert.equal(failedChecks('connection refused\n'), 'connection refused');
  assert.equal(failedChecks('a\nb'), 'a; b');
});
