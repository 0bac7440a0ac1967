// The watch stream: one JSON event per line (application/x-ndjson).
import type { Status } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
import { MarinaApiError, isStatus } from './errors.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchEvent<T extends Resource = Resource> {
  type: WatchEventType;
  object: T;
}

export function parseWatchLine(line: string): WatchEvent {
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    throw new MarinaApiError({ kind: 'Status', code: 500, reason: 'InternalError', message: `malformed watch event: ${line.slice(0, 200)}` });
  }
  const e = ev as { type?: string; object?: unknown };
  if (e.type === 'ERROR' && isStatus(e.object)) throw new MarinaApiError(e.object as unknown as Status);
  if (typeof e.type !== 'string' || typeof e.object !== 'object' || e.object === null) {
    throw new MarinaApiError({ kind: 'Status', code: 500, reason: 'InternalError', message: `malformed watch event: ${line.slice(0, 200)}` });
  }
  return e as unknown as WatchEvent;
}

/** Splits a byte stream into lines (NDJSON); a trailing partial line is yielded at the end. */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const onAbort = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield line;
      }
    }
    buf += decoder.decode();
    if (buf.trim()) yield buf.trim();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    reader.releaseLock();
  }
}
