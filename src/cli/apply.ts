// `marina apply -f`: multi-document YAML/JSON in, create-or-update per object out.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Resource } from '../api/meta.js';
import { API_VERSION, isConflict, isNotFound, RESOURCES, type MarinaClient, type ResourceRef } from '../client/index.js';
import { CliError, EXIT } from './errors.js';

/** One object read from a file, with where it came from for error messages. */
export interface SourceDoc {
  source: string;
  /** 1-based document number within the source. */
  index: number;
  object: Resource;
}

/**
 * Parses YAML (several `---` documents) or JSON. Empty documents are skipped; a top-level array
 * or a `kind: ...List` with `items` contributes each item. Every object must be a mapping with a
 * string `kind` and `metadata.name`.
 */
export function parseDocuments(text: string, source = '<stdin>'): SourceDoc[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const out: SourceDoc[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const where = list.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length > 0) {
      throw new CliError(`${where}: malformed YAML: ${doc.errors[0]!.message}`, EXIT.invalid);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const items = Array.isArray(value)
      ? value
      : isList(value)
        ? (value as { items: unknown[] }).items
        : [value];
    items.forEach((item, j) => {
      const at = items.length > 1 || Array.isArray(value) ? `${where} item ${j + 1}` : where;
      out.push({ source: at, index: i + 1, object: checkShape(item, at) });
    });
  });
  return out;
}

function isList(v: unknown): boolean {
  const o = v as { kind?: unknown; items?: unknown };
  return typeof o === 'object' && o !== null && typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items);
}

function checkShape(v: unknown, where: string): Resource {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CliError(`${where}: expected an object with apiVersion, kind, metadata and spec`, EXIT.invalid);
  const o = v as Record<string, unknown>;
  if (typeof o.kind !== 'string' || o.kind === '') throw new CliError(`${where}: kind: missing`, EXIT.invalid);
  const meta = o.metadata as Record<string, unknown> | undefined;
  if (typeof meta !== 'object' || meta === null || typeof meta.name !== 'string' || meta.name === '') {
    throw new CliError(`${where}: metadata.name: missing (${o.kind})`, EXIT.invalid);
  }
  return o as unknown as Resource;
}

/** Reads `-f` arguments: files, `-` for stdin, directories (their *.yaml, *.yml, *.json, sorted). */
export function readSources(paths: string[], readStdin: () => string): SourceDoc[] {
  const out: SourceDoc[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push(...parseDocuments(readStdin(), '<stdin>'));
      continue;
    }
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new CliError(`cannot read ${p}: no such file or directory`, EXIT.invalid);
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        if (['.yaml', '.yml', '.json'].includes(extname(name))) out.push(...parseDocuments(readFileSync(join(p, name), 'utf8'), join(p, name)));
      }
    } else {
      out.push(...parseDocuments(readFileSync(p, 'utf8'), p));
    }
  }
  return out;
}

const ORDER = ['User', 'Project', 'Secret', 'Cluster', 'NodePool', 'Machine'];

/** Tenancy before what lives in it; otherwise file order (stable). */
export function applyOrder(docs: SourceDoc[]): SourceDoc[] {
  const rank = (k: string) => {
    const i = ORDER.indexOf(k);
    return i < 0 ? ORDER.length : i;
  };
  return docs.map((d, i) => ({ d, i })).sort((a, b) => rank(a.d.object.kind) - rank(b.d.object.kind) || a.i - b.i).map((x) => x.d);
}

export function refForKind(kind: string, where: string): ResourceRef {
  const ref = RESOURCES.find((r) => r.kind === kind);
  if (!ref) throw new CliError(`${where}: kind: unknown kind ${JSON.stringify(kind)}; known: ${RESOURCES.map((r) => r.kind).join(', ')}`, EXIT.invalid);
  return ref;
}

/** Fills apiVersion and (for project kinds) metadata.project; strips server-owned fields. */
export function prepareObject(doc: SourceDoc, defaultProject: string | undefined): Resource {
  const ref = refForKind(doc.object.kind, doc.source);
  const obj = structuredClone(doc.object);
  obj.apiVersion ??= API_VERSION;
  const meta = { ...obj.metadata };
  for (const f of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp'] as const) delete meta[f];
  if (ref.scope === 'project') {
    meta.project ??= defaultProject;
    if (!meta.project) throw new CliError(`${doc.source}: metadata.project: ${obj.kind} "${meta.name}" needs a project; set metadata.project or pass -p`, EXIT.usage);
  } else if (meta.project !== undefined) {
    throw new CliError(`${doc.source}: metadata.project: ${obj.kind} is not a project resource`, EXIT.invalid);
  }
  obj.metadata = meta;
  delete obj.status;
  return obj;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

/** Deep equality that ignores object key order. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ak = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const bk = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ak.length !== bk.length) return false;
  return ak.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * The object to PUT: the stored one (resourceVersion, finalizers, status) with the file's spec,
 * and the file's labels/annotations where the file has them. Undefined when nothing would change.
 */
export function mergeForUpdate(current: Resource, desired: Resource): Resource | undefined {
  const labels = desired.metadata.labels ?? current.metadata.labels;
  const annotations = desired.metadata.annotations ?? current.metadata.annotations;
  const finalizers = desired.metadata.finalizers ?? current.metadata.finalizers;
  if (
    deepEqual(desired.spec, current.spec) &&
    deepEqual(labels ?? {}, current.metadata.labels ?? {}) &&
    deepEqual(annotations ?? {}, current.metadata.annotations ?? {}) &&
    deepEqual(finalizers ?? [], current.metadata.finalizers ?? [])
  ) {
    return undefined;
  }
  const metadata = { ...current.metadata };
  if (labels !== undefined) metadata.labels = labels;
  if (annotations !== undefined) metadata.annotations = annotations;
  if (finalizers !== undefined) metadata.finalizers = finalizers;
  return { apiVersion: desired.apiVersion, kind: desired.kind, metadata, spec: desired.spec, status: current.status };
}

/** GET, then POST if absent or PUT with the current resourceVersion; retries on a 409 conflict. */
export async function applyObject(client: MarinaClient, obj: Resource): Promise<{ outcome: ApplyOutcome; object: Resource }> {
  const project = obj.metadata.project;
  for (let attempt = 0; ; attempt++) {
    const current = await client.getOptional(obj.kind, obj.metadata.name, project);
    try {
      if (!current) return { outcome: 'created', object: await client.create(obj) };
      const next = mergeForUpdate(current, obj);
      if (!next) return { outcome: 'unchanged', object: current };
      const updated = await client.replace(next);
      const same = updated.metadata.generation === current.metadata.generation && deepEqual(updated.metadata.labels ?? {}, current.metadata.labels ?? {}) && deepEqual(updated.metadata.annotations ?? {}, current.metadata.annotations ?? {});
      return { outcome: same && deepEqual(updated.spec, current.spec) ? 'unchanged' : 'configured', object: updated };
    } catch (err) {
      // Someone changed it between our GET and PUT, or created it between GET and POST: look again.
      const raced = isConflict(err) || (!current && (err as { code?: number; reason?: string }).reason === 'AlreadyExists') || (current !== undefined && isNotFound(err));
      if (raced && attempt < 5) continue;
      throw err;
    }
  }
}
