import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition } from './meta.js';
import { jsonEqual } from './json.js';
import { formatTime, getCondition, isFalse, isTrue, isUnknown, removeCondition, setCondition } from './conditions.js';

const t0 = new Date('2030-01-01T00:00:00.123Z');
const t1 = new Date('2030-01-01T00:05:00Z');

test('setCondition appends, stamps time and generation, and does not mutate its input', () => {
  const before: Condition[] = [];
  const after = setCondition(before, { type: 'Ready', status: 'False', reason: 'Provisioning', message: 'booting' }, 3, t0);
  assert.equal(before.length, 0);
  assert.deepEqual(after, [
    { type: 'Ready', status: 'False', reason: 'Provisioning', message: 'booting', lastTransitionTime: '2030-01-01T00:00:00Z', observedGeneration: 3 },
  ]);
  assert.equal(formatTime(t0), '2030-01-01T00:00:00Z');
});

test('setCondition keeps lastTransitionTime unless the status changes', () => {
  let cs = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A' }, 1, t0);
  cs = setCondition(cs, { type: 'Other', status: 'True' }, 1, t0);
  const same = setCondition(cs, { type: 'Ready', status: 'False', reason: 'B', message: 'still' }, 2, t1);
  assert.equal(getCondition(same, 'Ready')?.lastTransitionTime, '2030-01-01T00:00:00Z');
  assert.equal(getCondition(same, 'Ready')?.reason, 'B');
  assert.equal(getCondition(same, 'Ready')?.observedGeneration, 2);
  assert.deepEqual(same.map((c) => c.type), ['Ready', 'Other'], 'position is kept');

  const flipped = setCondition(same, { type: 'Ready', status: 'True', reason: 'Up' }, 2, t1);
  assert.equal(getCondition(flipped, 'Ready')?.lastTransitionTime, '2030-01-01T00:05:00Z');
  assert.equal(getCondition(flipped, 'Ready')?.message, undefined, 'message is replaced, not merged');
  assert.ok(isTrue(flipped, 'Ready'));
  assert.ok(!isFalse(flipped, 'Ready'));
  assert.ok(isUnknown(flipped, 'Missing'));
  assert.ok(!isTrue(undefined, 'Ready'));
  assert.deepEqual(removeCondition(flipped, 'Ready').map((c) => c.type), ['Other']);
});

test('setting the same condition again is a no-op for status comparison', () => {
  const cs = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Up' }, 4, t0);
  const again = setCondition(cs, { type: 'Ready', status: 'True', reason: 'Up' }, 4, t1);
  assert.ok(jsonEqual({ conditions: cs }, { conditions: again }));
});
