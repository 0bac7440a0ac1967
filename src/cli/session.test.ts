import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { intArg, parseDuration } from './session.js';

test('durations', () => {
  assert.equal(parseDuration('90'), 90_000);
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1.5s'), 1500);
  for (const bad of ['', 'abc', '10x', '1h 2m', 'm']) assert.throws(() => parseDuration(bad), InvalidArgumentError, bad);
});

test('integer flags', () => {
  assert.equal(intArg(0, 10)('3'), 3);
  assert.throws(() => intArg(0, 10)('11'), InvalidArgumentError);
  assert.throws(() => intArg()('1.5'), InvalidArgumentError);
  assert.throws(() => intArg()('x'), InvalidArgumentError);
});
