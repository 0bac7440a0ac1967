// The store contract's rules that do not depend on where objects are kept: envelope checks, the
// update/delete preconditions, what an update or a status update changes (and whether it changes
// anything), selector matching with the labels before a change, and continue tokens. Both
// backends (SQLite and the Kubernetes API) run every mutation through these functions, so they
// answer the same input with the same object or the same error.
import { ApiError } from '../api/errors.js';
import { jsonEqual } from '../api/json.js';
import { API_VERSION, type ObjectKey, type ObjectMeta, type Resource } from '../api/meta.js';
import { kindInfo, type KindInfo } from '../api/registry.js';
import type { LabelSelector } from './selector.js';
import type { WatchEventType } from './types.js';

export type Labels = Record<string, string>;

export interface Admitted {
  info: KindInfo;
  key: ObjectKey;
  /** A normalised private copy of the argument (JSON round trip; empty maps and lists absent). */
  inc: Resource;
}

/** Validates the envelope and returns a normalised deep copy of the argument. */
export function admit(obj: Resource): Admitted {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw ApiError.badRequest('object required');
  const info = kindInfo(obj.kind);
  // JSON round trip: a private copy without `undefined` members, so later caller mutations and
  // deep comparisons behave.
  const inc = JSON.parse(JSON.stringify(obj)) as Resource;
  const md = inc.metadata as ObjectMeta | undefined;
  if (typeof md !== 'object' || md === null || Array.isArray(md)) throw ApiError.invalidField('metadata', 'required');
  if (typeof md.name !== 'string' || md.name === '') throw ApiError.invalidField('metadata.name', 'required');
  const project = md.project ?? '';
  if (typeof project !== 'string') throw ApiError.invalidField('metadata.project', 'must be a string');
  if (info.scope === 'project' && project === '') {
    throw ApiError.invalidField('metadata.project', `required: ${info.kind} is a project-scoped kind`);
  }
  if (info.scope === 'global' && project !== '') {
    throw ApiError.invalidField('metadata.project', `must be empty: ${info.kind} is a global kind`);
  }
  md.labels = stringMap(md.labels, 'metadata.labels');
  md.annotations = stringMap(md.annotations, 'metadata.annotations');
  if (md.finalizers !== undefined) {
    if (!Array.isArray(md.finalizers) || md.finalizers.some((f) => typeof f !== 'string' || f === '')) {
      throw ApiError.invalidField('metadata.finalizers', 'must be a list of non-empty strings');
    }
    if (md.finalizers.length === 0) md.finalizers = undefined;
  }
  return { info, key: { kind: info.kind, project, name: md.name }, inc };
}

/** The resourceVersion an update must carry (422 without one). */
export function requiredResourceVersion(inc: Resource): string {
  const rv = inc.metadata.resourceVersion;
  if (rv === undefined || rv === null || rv === '') {
    throw ApiError.invalidField('metadata.resourceVersion', 'required for an update: read the object first');
  }
  return String(rv);
}

/** The update/updateStatus preconditions against the stored object `cur` (404, 409). */
export function checkPreconditions(key: ObjectKey, inc: Resource, cur: Resource | undefined): Resource {
  const rv = requiredResourceVersion(inc);
  if (!cur) throw ApiError.notFound(key.kind, key.name);
  if (rv !== cur.metadata.resourceVersion) {
    throw ApiError.conflict(
      key.kind,
      key.name,
      `the object has been modified (resourceVersion ${cur.metadata.resourceVersion}, request has ${rv}); read it again and retry`,
    );
  }
  if (inc.metadata.uid && inc.metadata.uid !== cur.metadata.uid) {
    throw ApiError.conflict(key.kind, key.name, `uid ${inc.metadata.uid} does not match the stored object's ${cur.metadata.uid}`);
  }
  return cur;
}

/** The delete precondition (409 when the stored resourceVersion differs). */
export function checkDeletePrecondition(key: ObjectKey, cur: Resource, resourceVersion: string | undefined): void {
  if (resourceVersion !== undefined && String(resourceVersion) !== cur.metadata.resourceVersion) {
    throw ApiError.conflict(key.kind, key.name, `precondition failed: resourceVersion is ${cur.metadata.resourceVersion}, not ${resourceVersion}`);
  }
}

/** A new object as create() stores it, before the backend assigns its revision. */
export function newObject(a: Admitted, identity: { uid: string; resourceVersion: string; creationTimestamp: string }): Resource {
  const md = a.inc.metadata;
  return envelope(
    a.inc.apiVersion ?? API_VERSION,
    a.info.kind,
    {
      name: a.key.name,
      project: a.key.project || undefined,
      uid: identity.uid,
      resourceVersion: identity.resourceVersion,
      generation: 1,
      creationTimestamp: identity.creationTimestamp,
      labels: md.labels,
      annotations: md.annotations,
      finalizers: md.finalizers,
    },
    a.inc.spec,
    a.inc.status,
  );
}

export interface PlannedChange {
  /** The object after the change, still carrying the stored object's resourceVersion. */
  next: Resource;
  type: WatchEventType;
  /** Labels before the change, when it altered them (for selector watches). */
  oldLabels?: Labels;
}

/**
 * What update() does to the stored object `cur`: undefined when it changes nothing. Refuses (422)
 * to add finalizers to an object that is being deleted; an update that empties the finalizers of
 * such an object removes it (type DELETED).
 */
export function planUpdate(cur: Resource, inc: Resource): PlannedChange | undefined {
  const md = inc.metadata;
  const cm = cur.metadata;
  if (cm.deletionTimestamp && md.finalizers) {
    const had = new Set(cm.finalizers ?? []);
    const added = md.finalizers.filter((f) => !had.has(f));
    if (added.length > 0) {
      throw ApiError.invalidField('metadata.finalizers', `cannot add finalizers ${JSON.stringify(added)} to an object that is being deleted`);
    }
  }
  const specChanged = !jsonEqual(cur.spec, inc.spec);
  if (!specChanged && jsonEqual(cm.labels, md.labels) && jsonEqual(cm.annotations, md.annotations) && jsonEqual(cm.finalizers, md.finalizers)) {
    return undefined;
  }
  const next = envelope(
    cur.apiVersion,
    cur.kind,
    {
      ...cm,
      generation: (cm.generation ?? 0) + (specChanged ? 1 : 0),
      labels: md.labels,
      annotations: md.annotations,
      finalizers: md.finalizers,
    },
    inc.spec,
    cur.status,
  );
  const type: WatchEventType = cm.deletionTimestamp && !md.finalizers ? 'DELETED' : 'MODIFIED';
  const change: PlannedChange = { next, type };
  if (!jsonEqual(cm.labels, md.labels)) change.oldLabels = cm.labels ?? {};
  return change;
}

/** What updateStatus() does to `cur`: undefined when the status is unchanged. */
export function planUpdateStatus(cur: Resource, inc: Resource): Resource | undefined {
  if (jsonEqual(cur.status, inc.status)) return undefined;
  return envelope(cur.apiVersion, cur.kind, { ...cur.metadata }, cur.spec, inc.status);
}

/** Builds an object with a stable key order and without absent/empty optional members. */
export function envelope(apiVersion: string, kind: string, md: ObjectMeta, spec: unknown, status: unknown): Resource {
  const metadata: ObjectMeta = { name: md.name };
  if (md.project) metadata.project = md.project;
  metadata.uid = md.uid;
  metadata.resourceVersion = md.resourceVersion;
  metadata.generation = md.generation;
  metadata.creationTimestamp = md.creationTimestamp;
  if (md.deletionTimestamp) metadata.deletionTimestamp = md.deletionTimestamp;
  if (md.labels && Object.keys(md.labels).length > 0) metadata.labels = md.labels;
  if (md.annotations && Object.keys(md.annotations).length > 0) metadata.annotations = md.annotations;
  if (md.finalizers && md.finalizers.length > 0) metadata.finalizers = md.finalizers;
  const obj: Resource = { apiVersion, kind, metadata };
  if (spec !== undefined) obj.spec = spec;
  if (status !== undefined) obj.status = status;
  return obj;
}

/** The same object with another resourceVersion (a private copy). */
export function withRevision(obj: Resource, resourceVersion: string): Resource {
  return envelope(obj.apiVersion, obj.kind, { ...obj.metadata, resourceVersion }, obj.spec, obj.status);
}

function stringMap(v: unknown, field: string): Labels | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw ApiError.invalidField(field, 'must be a map of strings');
  }
  return Object.keys(v).length > 0 ? (v as Labels) : undefined;
}

/**
 * A selector watch gets an event when the object matches after the change or matched before it
 * (so it learns that an object left its set, including a DELETED whose update also changed labels).
 */
export function matchesSelector(sel: LabelSelector, labels: Labels | undefined, oldLabels: Labels | undefined): boolean {
  return sel.matches(labels) || (oldLabels !== undefined && sel.matches(oldLabels));
}

/** Additional authenticated data of an encrypted spec: the object's key. */
export function aadOf(key: ObjectKey): string {
  return `${key.kind}/${key.project}/${key.name}`;
}

const REV_RE = /^\d{1,15}$/;

/** A watch's resourceVersion: undefined when absent, a number otherwise (400 when malformed). */
export function parseRevision(rv: string | undefined): number | undefined {
  if (rv === undefined || rv === '') return undefined;
  if (!REV_RE.test(String(rv))) throw ApiError.badRequest(`resourceVersion ${JSON.stringify(rv)} is not a revision`, 'resourceVersion');
  return Number(rv);
}

/** The non-negative page size of a list (400 otherwise). */
export function parseLimit(limit: number | undefined): number {
  const n = limit ?? 0;
  if (!Number.isInteger(n) || n < 0) throw ApiError.badRequest('limit must be a non-negative integer', 'limit');
  return n;
}

export interface ContinueToken {
  /** kind */
  k: string;
  /** project and name of the last item returned */
  p: string;
  n: string;
  /** revision of the first page */
  rv: number;
}

export function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t), 'utf8').toString('base64url');
}

/** A continue token of a list of `kind` (400 when malformed, from another kind or from the future). */
export function decodeContinue(s: string, kind: string, currentRev: number): ContinueToken {
  let t: unknown;
  try {
    t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    t = undefined;
  }
  const c = t as ContinueToken | undefined;
  if (
    typeof c !== 'object' || c === null ||
    typeof c.k !== 'string' || typeof c.p !== 'string' || typeof c.n !== 'string' ||
    !Number.isSafeInteger(c.rv) || c.rv < 0 || c.rv > currentRev
  ) {
    throw ApiError.badRequest('malformed continue token', 'continue');
  }
  if (c.k !== kind) throw ApiError.badRequest(`continue token belongs to a list of ${c.k}, not ${kind}`, 'continue');
  return c;
}

/** (project, name) order of list results. */
export function compareKeys(a: { p: string; n: string }, b: { p: string; n: string }): number {
  if (a.p !== b.p) return a.p < b.p ? -1 : 1;
  if (a.n !== b.n) return a.n < b.n ? -1 : 1;
  return 0;
}
