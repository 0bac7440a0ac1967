// HTTP ↔ function mapping: the request an HTTP trigger receives becomes the handler's event, the
// handler's result becomes the response, and a CloudEvent arrives in structured or binary mode
// (CloudEvents HTTP protocol binding 1.0).
import type { FastifyReply } from 'fastify';
import { ApiError } from '../api/errors.js';
import type { Activation, CloudEvent } from '../api/functions.js';

/** What the handler of an HTTP-triggered function receives. */
export interface HttpEvent {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  /** Parsed JSON, text, or base64 (isBase64Encoded) for other content. */
  body: unknown;
  isBase64Encoded?: boolean;
}

export interface RawRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

const isJson = (ct: string) => /^[^;]*[/+]json\s*(;|$)/i.test(ct);
const isText = (ct: string) => /^\s*text\/|^[^;]*[/+]xml\s*(;|$)|^\s*application\/x-www-form-urlencoded/i.test(ct);

export function requestEvent(req: RawRequest, path: string, query: Record<string, string | string[]>): HttpEvent {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    // The caller's credentials are Marina's business, not the function's.
    if (k === 'authorization' || k === 'cookie' || v === undefined) continue;
    headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  const event: HttpEvent = { method: req.method, path: `/${path}`, query, headers, body: null };
  const raw = Buffer.isBuffer(req.body) ? req.body : undefined;
  if (raw && raw.length > 0) {
    const ct = headers['content-type'] ?? '';
    if (isJson(ct)) event.body = parseJson(raw, 'body');
    else if (isText(ct)) event.body = raw.toString('utf8');
    else {
      event.body = raw.toString('base64');
      event.isBase64Encoded = true;
    }
  }
  return event;
}

const FAILURE_CODE: Record<string, number> = { timeout: 504, error: 502, oom: 502, crashed: 502, canceled: 503 };

/** The HTTP status of a failed activation: 504 deadline, 503 no capacity or canceled, 502 otherwise. */
export function failureCode(a: Activation): number {
  const capacity = a.error?.startsWith('no instance of') || a.error?.startsWith('functions cannot run');
  return capacity ? 503 : (FAILURE_CODE[a.outcome] ?? 502);
}

/**
 * Sends the function's answer: `{statusCode, headers?, body?, isBase64Encoded?}` is a full
 * response, anything else a 200 JSON body; a failed activation is a Status naming it.
 */
export function sendResult(reply: FastifyReply, a: Activation, value: unknown): FastifyReply {
  void reply.header('x-marina-activation-id', a.id).header('x-marina-cold-start', String(a.coldStart));
  if (a.outcome !== 'success') {
    const code = failureCode(a);
    return reply.code(code).type('application/json').send({ kind: 'Status', code, reason: 'FunctionFailed', message: `${a.outcome}: ${(a.error ?? '').split('\n')[0]}`, activation: a.id });
  }
  const r = value as { statusCode?: unknown; headers?: Record<string, unknown>; body?: unknown; isBase64Encoded?: boolean } | null;
  if (r && typeof r === 'object' && typeof r.statusCode === 'number' && Number.isInteger(r.statusCode) && r.statusCode >= 200 && r.statusCode <= 599) {
    void reply.code(r.statusCode);
    for (const [k, v] of Object.entries(r.headers ?? {})) if (typeof v === 'string' && validHeader(k, v)) void reply.header(k, v);
    if (r.body === undefined || r.body === null) return reply.send();
    if (typeof r.body === 'string') return reply.send(r.isBase64Encoded ? Buffer.from(r.body, 'base64') : r.body);
    return reply.type('application/json').send(JSON.stringify(r.body));
  }
  return reply.type('application/json').send(JSON.stringify(value ?? null));
}

/** A header a function may set: a valid token name and a value without control characters. */
function validHeader(name: string, value: string): boolean {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) && !/[\0-\x08\x0a-\x1f\x7f]/.test(value);
}

/** Structured mode (the whole event as JSON) or binary mode (ce-* headers, the body is data). */
export function parseCloudEvent(req: RawRequest): CloudEvent {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  const ct = header('content-type') ?? '';
  const binary = header('ce-specversion') !== undefined;
  if (/^\s*application\/cloudevents\+json\s*(;|$)/i.test(ct) || (!binary && isJson(ct))) return parseJson(raw, 'body') as CloudEvent;
  if (!binary) throw ApiError.badRequest('send a CloudEvent: application/cloudevents+json (structured mode) or ce-* headers (binary mode)');
  const event: Record<string, unknown> = {};
  for (const k of Object.keys(req.headers)) if (k.startsWith('ce-')) event[k.slice(3)] = header(k);
  if (ct) event.datacontenttype = ct;
  if (raw.length) {
    if (isJson(ct)) event.data = parseJson(raw, 'data');
    else if (/^\s*text\//i.test(ct)) event.data = raw.toString('utf8');
    else event.data_base64 = raw.toString('base64');
  }
  return event as CloudEvent;
}

function parseJson(raw: Buffer, what: string): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw ApiError.badRequest(`malformed JSON ${what}: ${(err as Error).message}`, what);
  }
}
