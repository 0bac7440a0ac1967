import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonEqual } from './json.js';

test('jsonEqual compares as stored JSON', () => {
  const cases: [unknown, unknown, boolean][] = [
    [{ a: 1, b: { c: [1, 2] }, d: undefined }, { b: { c: [1, 2] }, a: 1 }, true],
    [{ a: 1 }, { a: 2 }, false],
    [{ b: { c: [1, 2] } }, { b: { c: [2, 1] } }, false],
    [[1, { x: 'y' }], [1, { x: 'y' }], true],
    [[1], { 0: 1 }, false],
    [{ a: null }, {}, false],
    [{ a: undefined }, {}, true],
    [null, null, true],
    [null, {}, false],
    ['1', 1, false],
    [{ a: [] }, { a: {} }, false],
  ];
  for (const [a, b, want] of cases) {
    assert.equal(jsonEqual(a, b), want, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(jsonEqual(b, a), want, 'symmetric');
  }
});
