// Add-on manifests as logic-less templates. The YAML is parsed FIRST and placeholders are replaced
// in the parsed tree afterwards, so a value can never change the structure of a manifest (no YAML
// injection, no code from definitions: there are no conditionals, loops or functions).
//
//   replicas: ${values.replicas}           whole plain scalar: the value with its type (number,
//                                          object, list...); an unset value drops the entry
//   image: "${values.image}"               quoted: always a string
//   forward . ${values.upstream}           inside text: interpolated (strings, numbers, booleans)
//   $${values.x}                           a literal "${values.x}"
//
// Roots: `values.*` (the add-on's values after defaults), `cluster.*` and `addon.*` (see
// CONTEXT_FIELDS). Other `${...}` (shell or fluent-bit variables) are left as they are.
import { isAlias, isMap, isPair, isScalar, isSeq, parseAllDocuments, Scalar, type Document, type Node as YamlNode } from 'yaml';
import type { FieldCause } from '../api/errors.js';

export const CONTEXT_FIELDS = {
  cluster: ['name', 'project', 'dnsIP', 'domain', 'serviceCIDR', 'podCIDR', 'kubernetesVersion'],
  addon: ['name', 'version', 'namespace'],
} as const;

export interface RenderContext {
  values: Record<string, unknown>;
  cluster: Record<(typeof CONTEXT_FIELDS.cluster)[number], string>;
  addon: Record<(typeof CONTEXT_FIELDS.addon)[number], string>;
}

/** `${values.a.b}` → root `values`, path `['a', 'b']`. */
export interface Placeholder {
  root: 'values' | 'cluster' | 'addon';
  path: string[];
  /** A whole plain scalar: replaced by the value itself, not its text. */
  typed: boolean;
  /** `file` and document index, for messages. */
  where: string;
}

const PLACEHOLDER = Symbol('placeholder');
const TEXT = Symbol('text');
type TextPart = string | Placeholder;
/** A parsed manifest: plain JSON with placeholder and text nodes where values go. */
type TemplateNode =
  | null
  | boolean
  | number
  | string
  | TemplateNode[]
  | { [key: string]: TemplateNode }
  | { [PLACEHOLDER]: Placeholder }
  | { [TEXT]: TextPart[] };

export interface TemplateDoc {
  file: string;
  /** 0-based document index within the file. */
  index: number;
  tree: TemplateNode;
}

export interface ParsedTemplate {
  docs: TemplateDoc[];
  placeholders: Placeholder[];
}

/** `$${` (escape) or `${ root.path }` with an optional space inside the braces. */
const TOKEN = /\$\$\{|\$\{\s*(values|cluster|addon)\b([^}]*)\}/g;
const HAS_TOKEN = /\$\{\s*(values|cluster|addon)\b/;
const PATH = /^(\.[A-Za-z_][A-Za-z0-9_-]*)+$/;
/** Aliases can multiply a document (billion laughs); a manifest is never this large. */
const MAX_NODES = 200_000;

class TemplateError extends Error {}

/**
 * Parses manifest files into templates. Every problem becomes a cause naming the file's field,
 * e.g. `spec.manifests[1].content: deployment.yaml document 2: line 7, column 3: ...`.
 */
export function parseManifests(files: readonly { file: string; content: string }[], fieldPrefix = 'spec.manifests'): { template: ParsedTemplate; causes: FieldCause[] } {
  const template: ParsedTemplate = { docs: [], placeholders: [] };
  const causes: FieldCause[] = [];
  files.forEach((f, fi) => {
    const field = `${fieldPrefix}[${fi}].content`;
    let docs: Document.Parsed[];
    try {
      docs = parseAllDocuments(f.content, { uniqueKeys: true, prettyErrors: true }) as Document.Parsed[];
    } catch (err) {
      causes.push({ field, message: `${f.file}: ${(err as Error).message}` });
      return;
    }
    if (!Array.isArray(docs)) {
      causes.push({ field, message: `${f.file}: not a YAML stream` });
      return;
    }
    docs.forEach((doc, di) => {
      const where = `${f.file} document ${di + 1}`;
      const problem = doc.errors[0];
      if (problem) {
        causes.push({ field, message: `${where}: ${oneLine(problem.message)}` });
        return;
      }
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return; // empty document
      try {
        const counter = { n: 0 };
        const tree = convert(doc.contents, doc, where, template.placeholders, counter);
        checkObjectShape(tree);
        template.docs.push({ file: f.file, index: di, tree });
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        causes.push({ field, message: `${where}: ${err.message}` });
      }
    });
  });
  if (causes.length === 0 && template.docs.length === 0) causes.push({ field: fieldPrefix, message: 'the manifests contain no object' });
  return { template, causes };
}

function oneLine(s: string): string {
  // prettyErrors appends the offending line and a caret; keep the first line for a Status message.
  return s.split('\n')[0]!.trim();
}

function convert(node: unknown, doc: Document.Parsed, where: string, placeholders: Placeholder[], counter: { n: number }): TemplateNode {
  if (++counter.n > MAX_NODES) throw new TemplateError(`more than ${MAX_NODES} nodes (alias expansion?)`);
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (!target) throw new TemplateError(`unresolved alias *${node.source}`);
    return convert(target, doc, where, placeholders, counter);
  }
  if (isMap(node)) {
    const out: { [key: string]: TemplateNode } = {};
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = isScalar(pair.key) ? pair.key.value : pair.key;
      if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'boolean') {
        throw new TemplateError('mapping keys must be plain strings');
      }
      const k = String(key);
      if (HAS_TOKEN.test(k)) throw new TemplateError(`placeholders are not allowed in keys (${k})`);
      out[k] = pair.value === null || pair.value === undefined ? null : convert(pair.value, doc, where, placeholders, counter);
    }
    return out;
  }
  if (isSeq(node)) return node.items.map((item) => convert(item, doc, where, placeholders, counter));
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') return convertString(v, node.type === Scalar.PLAIN, where, placeholders);
    if (v === null || typeof v === 'boolean' || typeof v === 'number') return v;
    throw new TemplateError(`unsupported scalar ${String(v)} (only JSON types: strings, numbers, booleans, null)`);
  }
  throw new TemplateError('unsupported YAML node');
}

function convertString(s: string, plain: boolean, where: string, placeholders: Placeholder[]): TemplateNode {
  const parts: TextPart[] = [];
  let last = 0;
  let text = '';
  for (const m of s.matchAll(TOKEN)) {
    text += s.slice(last, m.index);
    last = m.index! + m[0].length;
    if (m[0] === '$${') {
      text += '${';
      continue;
    }
    const rest = m[2]!.trim();
    if (!PATH.test(rest)) throw new TemplateError(`malformed placeholder ${m[0]}: expected \${${m[1]}.name}`);
    if (text) parts.push(text);
    text = '';
    parts.push({ root: m[1] as Placeholder['root'], path: rest.slice(1).split('.'), typed: false, where });
  }
  text += s.slice(last);
  if (text) parts.push(text);
  if (parts.length === 0) return '';
  if (parts.length === 1 && typeof parts[0] === 'string') return parts[0];
  if (parts.length === 1 && plain) {
    const p = { ...(parts[0] as Placeholder), typed: true };
    placeholders.push(p);
    return { [PLACEHOLDER]: p };
  }
  for (const p of parts) if (typeof p !== 'string') placeholders.push(p);
  return { [TEXT]: parts };
}

const isPlaceholderNode = (n: TemplateNode): n is { [PLACEHOLDER]: Placeholder } => typeof n === 'object' && n !== null && PLACEHOLDER in n;
const isTextNode = (n: TemplateNode): n is { [TEXT]: TextPart[] } => typeof n === 'object' && n !== null && TEXT in n;

/** A manifest must be an object with apiVersion, kind and metadata.name (placeholders allowed). */
function checkObjectShape(tree: TemplateNode): void {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree) || isPlaceholderNode(tree) || isTextNode(tree)) {
    throw new TemplateError('must be a Kubernetes object (a mapping with apiVersion, kind and metadata)');
  }
  const o = tree as { [key: string]: TemplateNode };
  for (const f of ['apiVersion', 'kind'] as const) {
    if (typeof o[f] !== 'string' || o[f] === '') throw new TemplateError(`${f} must be a literal non-empty string`);
  }
  const meta = o.metadata;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta) || isPlaceholderNode(meta) || isTextNode(meta)) {
    throw new TemplateError('metadata must be a mapping');
  }
  const name = (meta as { [key: string]: TemplateNode }).name;
  if (!(typeof name === 'string' && name !== '') && !isTextNode(name ?? null) && !isPlaceholderNode(name ?? null)) {
    throw new TemplateError('metadata.name is required');
  }
}

// ---------- rendering ----------

export class RenderError extends Error {}

function lookup(ctx: RenderContext, p: Placeholder): unknown {
  let cur: unknown = ctx[p.root];
  for (const seg of p.path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

const show = (p: Placeholder) => `\${${p.root}.${p.path.join('.')}}`;

/** Replaces the placeholders of one document; returns plain JSON. Throws RenderError. */
export function renderDoc(doc: TemplateDoc, ctx: RenderContext): Record<string, unknown> {
  return render(doc.tree, ctx) as Record<string, unknown>;
}

const DROP = Symbol('drop');

function render(node: TemplateNode, ctx: RenderContext): unknown {
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) return node.map((n) => render(n, ctx)).filter((v) => v !== DROP);
  if (isPlaceholderNode(node)) {
    const v = lookup(ctx, node[PLACEHOLDER]);
    return v === undefined ? DROP : structuredClone(v);
  }
  if (isTextNode(node)) {
    return node[TEXT].map((part) => {
      if (typeof part === 'string') return part;
      const v = lookup(ctx, part);
      if (v === undefined || v === null) throw new RenderError(`${part.where}: ${show(part)} is not set`);
      if (typeof v === 'object') throw new RenderError(`${part.where}: ${show(part)} is an object or list; it can only stand alone as a whole value`);
      return String(v);
    }).join('');
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    const r = render(v, ctx);
    if (r !== DROP) out[k] = r;
  }
  return out;
}

// ---------- checking placeholders against what will be there ----------

type JsonSchema = Record<string, unknown>;

/** The schema of `values.<path>`, or undefined when the values schema does not describe it. */
function schemaAt(schema: JsonSchema | undefined, path: string[]): { found: boolean; schema?: JsonSchema } {
  let cur = schema;
  for (const seg of path) {
    if (!cur) return { found: false };
    const props = cur.properties as Record<string, JsonSchema> | undefined;
    if (props && Object.prototype.hasOwnProperty.call(props, seg)) {
      cur = props[seg];
      continue;
    }
    // An object schema without named properties (a free map) accepts any key below it.
    if (!props && (cur.type === 'object' || cur.additionalProperties !== undefined)) return { found: true };
    return { found: false };
  }
  return { found: true, schema: cur };
}

/**
 * Placeholders that cannot resolve: unknown `cluster.`/`addon.` fields, `values.` paths the values
 * schema does not declare, objects or lists used inside text.
 */
export function checkPlaceholders(placeholders: readonly Placeholder[], valuesSchema: JsonSchema | undefined, field = 'spec.manifests'): FieldCause[] {
  const causes: FieldCause[] = [];
  const seen = new Set<string>();
  for (const p of placeholders) {
    const key = `${p.where}|${show(p)}|${p.typed}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (p.root !== 'values') {
      const known: readonly string[] = CONTEXT_FIELDS[p.root];
      if (p.path.length !== 1 || !known.includes(p.path[0]!)) {
        causes.push({ field, message: `${p.where}: unknown placeholder ${show(p)}; ${p.root} has ${known.join(', ')}` });
      }
      continue;
    }
    const at = schemaAt(valuesSchema, p.path);
    if (!at.found) {
      causes.push({ field, message: `${p.where}: ${show(p)} is not declared in spec.valuesSchema` });
      continue;
    }
    const type = at.schema?.type;
    if (!p.typed && (type === 'object' || type === 'array')) {
      causes.push({ field, message: `${p.where}: ${show(p)} is an ${type}; it can only stand alone as a whole (unquoted) value` });
    }
  }
  return causes;
}
