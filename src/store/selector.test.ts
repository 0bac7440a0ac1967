import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ApiError } from '../api/errors.js';
import { parseLabelSelector } from './selector.js';

test('parses equality- and set-based requirements', () => {
  assert.deepEqual(parseLabelSelector('').requirements, []);
  assert.deepEqual(parseLabelSelector(undefined).requirements, []);
  assert.deepEqual(
    parseLabelSelector('a=b, c==d,e!=f , g,!h,i in (x, y),j notin (z),marina.dev/role=etcd,k=').requirements,
    [
      { key: 'a', op: 'eq', values: ['b'] },
      { key: 'c', op: 'eq', values: ['d'] },
      { key: 'e', op: 'neq', values: ['f'] },
      { key: 'g', op: 'exists', values: [] },
      { key: 'h', op: 'notexists', values: [] },
      { key: 'i', op: 'in', values: ['x', 'y'] },
      { key: 'j', op: 'notin', values: ['z'] },
      { key: 'marina.dev/role', op: 'eq', values: ['etcd'] },
      { key: 'k', op: 'eq', values: [''] },
    ],
  );
  // Keys named like the operators are fine in key position.
  assert.deepEqual(parseLabelSelector('in in (notin)').requirements, [{ key: 'in', op: 'in', values: ['notin'] }]);
});

test('matches like Kubernetes: != and notin also match a missing label', () => {
  const m = (sel: string, labels?: Record<string, string>) => parseLabelSelector(sel).matches(labels);
  assert.equal(m('a=b', { a: 'b' }), true);
  assert.equal(m('a=b', { a: 'c' }), false);
  assert.equal(m('a=b', undefined), false);
  assert.equal(m('a!=b', {}), true);
  assert.equal(m('a!=b', { a: 'b' }), false);
  assert.equal(m('a notin (b)', {}), true);
  assert.equal(m('a in (b,c)', { a: 'c' }), true);
  assert.equal(m('a in (b,c)', {}), false);
  assert.equal(m('a,!b', { a: '' }), true);
  assert.equal(m('a,!b', { a: '', b: '' }), false);
  assert.equal(m('toString', {}), false, 'no prototype keys');
  assert.equal(m('', undefined), true);
});

test('rejects malformed selectors with 400 labelSelector', () => {
  for (const bad of [',', 'a,', ',a', 'a=b=c', 'a b', 'a in b', 'a in ()', 'a in (b', 'a notin (b c)', '!', '!a=b', 'a=(b)',
    'A/b=c', '/a', 'a/', '-a', 'a-', `${'x'.repeat(64)}`, `a=${'v'.repeat(64)}`, 'a>1', 'a=b;c=d', 'a!b']) {
    assert.throws(() => parseLabelSelector(bad), (e: unknown) => e instanceof ApiError && e.code === 400 && e.toStatus().field === 'labelSelector', bad);
  }
});

test('property: a conjunction of equality requirements matches exactly the labels that contain it', () => {
  const word = fc.constantFrom('a', 'b', 'c');
  fc.assert(
    fc.property(fc.dictionary(word, word), fc.dictionary(word, word), (required, labels) => {
      const sel = Object.entries(required).map(([k, v]) => `${k}=${v}`).join(',');
      const expected = Object.entries(required).every(([k, v]) => labels[k] === v);
      assert.equal(parseLabelSelector(sel).matches(labels), expected);
    }),
  );
});
