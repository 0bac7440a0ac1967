// A `fetch` for the API client that trusts one more CA (Marina's own, `marina server --tls auto`).
// Node 20's global fetch cannot take a CA per request without an undici dispatcher, so this small
// adapter speaks HTTPS through node:https and hands back a standard Response (streaming bodies
// included, for watches).
import https from 'node:https';
import { Readable } from 'node:stream';

export function fetchTrusting(caPem: string): typeof fetch {
  const agent = new https.Agent({ ca: caPem, keepAlive: true });
  return (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (url.protocol !== 'https:') return fetch(input, init);
    return new Promise<Response>((resolve, reject) => {
      const signal = init?.signal ?? undefined;
      if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
      const req = https.request(url, { method: init?.method ?? 'GET', headers, agent }, (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) for (const x of v) h.append(k, x);
          else if (v !== undefined) h.set(k, v);
        }
        const status = res.statusCode ?? 0;
        const empty = status === 204 || status === 304 || (init?.method ?? 'GET') === 'HEAD';
        if (empty) res.resume();
        resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: h }));
      });
      const onAbort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.on('error', reject);
      const body = init?.body;
      if (body === undefined || body === null) req.end();
      else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
      else reject(new TypeError('fetchTrusting: only string or byte bodies are supported'));
    });
  };
}
