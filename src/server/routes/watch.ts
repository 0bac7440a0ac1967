// A watch: the list routes with ?watch=true answer a stream of JSON events, one per line
// (application/x-ndjson), from the store's watch, with a BOOKMARK heartbeat so that idle
// connections stay open and clients learn the current revision.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_VERSION, type Resource } from '../../api/meta.js';
import type { Store, WatchEvent } from '../../store/types.js';
import type { ListQuery } from '../schemas.js';

const WATCH_HEARTBEAT_MS = 15_000;
/** A watcher that lets this much output pile up is too slow to follow and is disconnected. */
const WATCH_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface WatchTarget {
  store: Store;
  kind: string;
  /** Only this project's objects; undefined: every object the caller may see. */
  project?: string;
  /** Whether the caller may see an object (lists without a project are judged per object). */
  visible: (obj: Resource) => boolean;
  query: ListQuery;
}

export function streamWatch(req: FastifyRequest, reply: FastifyReply, t: WatchTarget): void {
  const raw = reply.raw;
  let lastRv = t.query.resourceVersion ?? '0';
  /** The newest event not read yet: its revision is needed only for the next bookmark. */
  let newest: WatchEvent | undefined;
  let closed = false;
  // store.watch throws 410 Gone (or 400) synchronously, before anything is written, so the client
  // gets a proper error response instead of a broken stream.
  const buffered: string[] = [];
  let started = false;
  const watch = t.store.watch({ kind: t.kind, project: t.project, labelSelector: t.query.labelSelector, resourceVersion: t.query.resourceVersion }, (ev) => {
    newest = ev;
    if (!t.visible(ev.object)) return;
    // The store's JSON of the object goes out as it is: no parse and stringify per watcher.
    const line = ev.json !== undefined ? `{"type":"${ev.type}","object":${ev.json}}\n` : JSON.stringify({ type: ev.type, object: ev.object }) + '\n';
    if (!started) buffered.push(line);
    else write(line);
  });
  reply.hijack();
  raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  // Send the headers now: a client waits for them before it does anything else.
  raw.flushHeaders();
  started = true;
  for (const line of buffered) write(line);
  const heartbeat = setInterval(() => {
    if (newest) lastRv = newest.object.metadata.resourceVersion ?? lastRv;
    newest = undefined;
    write(JSON.stringify({ type: 'BOOKMARK', object: { apiVersion: API_VERSION, kind: t.kind, metadata: { resourceVersion: lastRv } } }) + '\n');
  }, WATCH_HEARTBEAT_MS);
  // timeoutSeconds ends the stream as in Kubernetes; the client resumes from the last revision.
  const deadline = t.query.timeoutSeconds === undefined ? undefined : setTimeout(stop, t.query.timeoutSeconds * 1000);
  function stop() {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    clearTimeout(deadline);
    watch.stop();
    raw.end();
  }
  raw.on('close', stop);
  raw.on('error', stop);
  function write(line: string) {
    if (closed) return;
    raw.write(line);
    if (raw.writableLength > WATCH_MAX_BUFFERED_BYTES) {
      req.log.warn({ kind: t.kind }, 'watcher too slow, disconnecting');
      stop();
    }
  }
}
