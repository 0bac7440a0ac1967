// Turns TypeBox schema violations into field causes with Kubernetes-style paths.
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { FieldCause } from './errors.js';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checkerFor(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** `/spec/nodePools/0/replicas` → `spec.nodePools[0].replicas` */
export function pointerToField(pointer: string): string {
  if (pointer === '' || pointer === '/') return '<root>';
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^[0-9]+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/** Schema errors of `value`, at most one per field, deepest first. Empty when valid. */
export function schemaErrors(schema: TSchema, value: unknown, limit = 20): FieldCause[] {
  const check = checkerFor(schema);
  if (check.Check(value)) return [];
  const byField = new Map<string, string>();
  for (const err of check.Errors(value)) {
    const field = pointerToField(err.path);
    if (!byField.has(field)) byField.set(field, describe(err.message, err.schema, err.value));
    if (byField.size >= limit) break;
  }
  // A union failing reports every branch at its parent; report the most specific paths first.
  return [...byField.entries()]
    .sort((a, b) => b[0].length - a[0].length)
    .map(([field, message]) => ({ field, message }));
}

function describe(message: string, schema: TSchema, value: unknown): string {
  if (schema && typeof schema === 'object' && 'additionalProperties' in schema && schema.additionalProperties === false) {
    if (message.toLowerCase().includes('additional') || message.toLowerCase().includes('unexpected')) {
      return `unknown field (${message})`;
    }
  }
  if (schema && 'const' in schema) return `must be ${JSON.stringify(schema.const)}, got ${JSON.stringify(value)}`;
  if (schema && 'pattern' in schema && typeof value === 'string') {
    return `${JSON.stringify(value)} does not match ${schema.pattern}${schema.description ? ` (${schema.description})` : ''}`;
  }
  if (schema && 'anyOf' in schema && Array.isArray(schema.anyOf)) {
    const options = schema.anyOf.map((s: TSchema) => ('const' in s ? JSON.stringify(s.const) : s.type)).join(', ');
    return `must be one of ${options}, got ${JSON.stringify(value)}`;
  }
  return message;
}
