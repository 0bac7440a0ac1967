// Puts the API's validation errors next to the form fields they are about. The server names the
// offending fields as paths (`spec.nodePools[1].replicas`, in `Status.field` and `causes[].field`);
// a form knows the paths of its inputs. A cause about a deeper path than any input (e.g.
// `spec.nodePools[0].roles[1]`) goes to the nearest input above it; one about no input at all
// goes to the form's general error.
import { MarinaApiError, MarinaConnectionError } from '../client/index.js';

export interface FormErrors {
  /** Field path → the API's message(s) for it. */
  fields: Record<string, string>;
  /** What is not about one of the form's fields: the Status message, or unmatched causes. */
  general?: string;
}

export const NO_ERRORS: FormErrors = { fields: {} };

/** `spec.nodePools[1].replicas` → `spec.nodePools[1]` → `spec.nodePools` → `spec`; `<root>` and '' have no parent. */
export function parentPath(path: string): string | undefined {
  const m = /^(.*)(\.[^.[\]]+|\[[^\]]*\])$/.exec(path);
  return m && m[1] ? m[1] : undefined;
}

/** The nearest of `known` at or above `path`, if any. */
export function nearestField(path: string, known: ReadonlySet<string>): string | undefined {
  for (let p: string | undefined = path; p; p = parentPath(p)) {
    if (known.has(p)) return p;
  }
  return undefined;
}

/** Maps an error of a submit to field messages and a general message. */
export function formErrors(err: unknown, knownFields: Iterable<string>): FormErrors {
  const known = new Set(knownFields);
  if (err instanceof MarinaApiError) {
    const fields: Record<string, string> = {};
    const unmatched: string[] = [];
    for (const cause of err.causes) {
      const target = nearestField(cause.field, known);
      const message = target === cause.field ? cause.message : `${cause.field}: ${cause.message}`;
      if (target) fields[target] = fields[target] ? `${fields[target]}; ${message}` : message;
      else unmatched.push(`${cause.field}: ${cause.message}`);
    }
    const matched = Object.keys(fields).length > 0;
    if (!matched) return { fields, general: err.message };
    return unmatched.length > 0 ? { fields, general: unmatched.join('; ') } : { fields };
  }
  if (err instanceof MarinaConnectionError) return { fields: {}, general: err.message };
  return { fields: {}, general: err instanceof Error ? err.message : String(err) };
}

/** A stable DOM id for a field's error message (aria-describedby). */
export function errorId(formId: string, field: string): string {
  return `${formId}-err-${field.replace(/[^A-Za-z0-9_-]+/g, '_')}`;
}
