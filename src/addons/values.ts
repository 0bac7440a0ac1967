// Add-on values against the definition's JSON Schema (draft-07, as Helm's values.schema.json).
// TypeBox's Value module checks only TypeBox-built schemas (it dispatches on their Kind symbol and
// rejects plain JSON Schema), so arbitrary schemas from definitions go through Ajv, in strict mode
// (unknown keywords are errors, so typos in a schema are refused when the definition is created),
// with `useDefaults` filling what an Addon leaves out. Ajv compiles a schema to a function, but
// from its own code generator with every schema value escaped: a schema cannot inject code. No
// remote $refs are loaded. Only platform admins write definitions.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FieldCause } from '../api/errors.js';
import { pointerToField } from '../api/validate.js';

type JsonSchema = Record<string, unknown>;

const ajv = new Ajv({ strict: true, allErrors: true, useDefaults: true, allowUnionTypes: true, addUsedSchema: false });

/** Compiled validators by schema text; bounded, oldest dropped (definitions change rarely). */
const compiled = new Map<string, ValidateFunction>();
const MAX_COMPILED = 256;

export type CompileResult = { ok: true; validate: ValidateFunction } | { ok: false; message: string };

export function compileValuesSchema(schema: JsonSchema | undefined): CompileResult {
  const effective = schema ?? { type: 'object' };
  if (effective.type !== 'object') return { ok: false, message: 'the root of a values schema must have "type": "object"' };
  const key = JSON.stringify(effective);
  const hit = compiled.get(key);
  if (hit) return { ok: true, validate: hit };
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(structuredClone(effective));
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  compiled.set(key, validate);
  if (compiled.size > MAX_COMPILED) {
    const [oldest, fn] = compiled.entries().next().value as [string, ValidateFunction];
    compiled.delete(oldest);
    ajv.removeSchema(fn.schema as JsonSchema);
  }
  return { ok: true, validate };
}

function errorField(prefix: string, e: ErrorObject): string {
  let pointer = e.instancePath;
  const params = e.params as { missingProperty?: string; additionalProperty?: string };
  if (e.keyword === 'required' && params.missingProperty) pointer += `/${params.missingProperty}`;
  if (e.keyword === 'additionalProperties' && params.additionalProperty) pointer += `/${params.additionalProperty}`;
  const rel = pointerToField(pointer);
  if (rel === '<root>') return prefix;
  return rel.startsWith('[') ? `${prefix}${rel}` : `${prefix}.${rel}`;
}

function errorMessage(e: ErrorObject): string {
  const params = e.params as { additionalProperty?: string; allowedValues?: unknown[] };
  if (e.keyword === 'additionalProperties') return 'unknown field (not in the add-on\'s values schema)';
  if (e.keyword === 'enum' && params.allowedValues) return `must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return e.message ?? e.keyword;
}

/**
 * The values with the schema's defaults filled in, or the violations as causes under `field`
 * (e.g. `spec.values.replicas: must be <= 10`), one per field.
 */
export function resolveValues(
  validate: ValidateFunction,
  values: Record<string, unknown> | undefined,
  field = 'spec.values',
): { values: Record<string, unknown>; causes: FieldCause[] } {
  const data = structuredClone(values ?? {});
  if (validate(data)) return { values: data, causes: [] };
  const byField = new Map<string, string>();
  for (const e of validate.errors ?? []) {
    const f = errorField(field, e);
    if (!byField.has(f)) byField.set(f, errorMessage(e));
  }
  return { values: data, causes: [...byField].map(([f, message]) => ({ field: f, message })) };
}
