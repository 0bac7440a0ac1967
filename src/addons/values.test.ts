import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileValuesSchema, resolveValues } from './values.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    replicas: { type: 'integer', minimum: 1, maximum: 10, default: 2 },
    output: { type: 'object', default: {}, additionalProperties: false, properties: { port: { type: 'integer', default: 24224 } } },
    mode: { enum: ['a', 'b'], default: 'a' },
  },
};

test('defaults fill what is left out, nested ones too; the input is not modified', () => {
  const c = compileValuesSchema(schema);
  assert.ok(c.ok);
  const input = { replicas: 3 };
  const r = resolveValues(c.validate, input);
  assert.deepEqual(r.causes, []);
  assert.deepEqual(r.values, { replicas: 3, output: { port: 24224 }, mode: 'a' });
  assert.deepEqual(input, { replicas: 3 });
});

test('violations name the field under spec.values, one per field', () => {
  const c = compileValuesSchema(schema);
  assert.ok(c.ok);
  const r = resolveValues(c.validate, { replicas: 0, extra: 1, output: { port: 'x' }, mode: 'z' });
  const byField = Object.fromEntries(r.causes.map((x) => [x.field, x.message]));
  assert.match(byField['spec.values.replicas']!, />= 1/);
  assert.match(byField['spec.values.extra']!, /unknown field/);
  assert.match(byField['spec.values.output.port']!, /integer/);
  assert.equal(byField['spec.values.mode'], 'must be one of "a", "b"');
});

test('schemas are checked strictly: unknown keywords, a non-object root and remote refs are refused', () => {
  const typo = compileValuesSchema({ type: 'object', properties: { a: { type: 'integer', minimun: 1 } } });
  assert.ok(!typo.ok && /minimun/.test(typo.message));
  const root = compileValuesSchema({ type: 'array' });
  assert.ok(!root.ok && /root/.test(root.message));
  const remote = compileValuesSchema({ type: 'object', properties: { a: { $ref: 'https://example.invalid/s.json' } } });
  assert.ok(!remote.ok && /resolve/.test(remote.message));
  assert.ok(compileValuesSchema(undefined).ok, 'no schema: any object of values');
});

test('a schema is compiled once and shared', () => {
  const a = compileValuesSchema(schema);
  const b = compileValuesSchema(structuredClone(schema));
  assert.ok(a.ok && b.ok);
  assert.equal(a.validate, b.validate);
});
