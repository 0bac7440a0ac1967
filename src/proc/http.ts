// HTTPS probes with a private CA and optional client certificate (node:https).
import { request } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TlsClientOptions {
  /** PEM of the CA(s) that signed the server certificate. */
  ca?: string | Buffer;
  /** Client certificate and key PEM. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Per-request timeout (default 5 s). */
  requestTimeoutMs?: number;
}

export interface HttpsResponse {
  status: number;
  body: string;
}

/** One HTTPS request (no agent, no keep-alive). Rejects on network/TLS errors or timeout. */
export function httpsRequest(
  url: string,
  options: TlsClientOptions & { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(options.cert !== undefined ? { cert: options.cert } : {}),
        ...(options.key !== undefined ? { key: options.key } : {}),
        headers: options.headers,
        agent: false,
        timeout: options.requestTimeoutMs ?? 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${options.requestTimeoutMs ?? 5000} ms: ${url}`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface WaitForHttpsOptions extends TlsClientOptions {
  /** Overall deadline (default 60 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 200 ms). */
  intervalMs?: number;
  /** Expected status (default 200). */
  expectStatus?: number;
  /** If given, the body must equal this (trimmed), e.g. "ok". */
  expectBody?: string;
  /** Called between attempts; return false to give up early (e.g. the server process died). */
  keepWaiting?: () => boolean;
}

/**
 * Polls an HTTPS URL (e.g. https://127.0.10.1:6443/readyz) until it answers with the expected
 * status (and body). Returns the final response; throws with the last error/response on timeout.
 */
export async function waitForHttps(url: string, options: WaitForHttpsOptions = {}): Promise<HttpsResponse> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const intervalMs = options.intervalMs ?? 200;
  const expectStatus = options.expectStatus ?? 200;
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  for (;;) {
    try {
      const res = await httpsRequest(url, {
        ...options,
        requestTimeoutMs: Math.max(100, Math.min(options.requestTimeoutMs ?? 5000, deadline - Date.now())),
      });
      if (res.status === expectStatus && (options.expectBody === undefined || res.body.trim() === options.expectBody)) {
        return res;
      }
      last = `HTTP ${res.status}: ${res.body.slice(0, 2000)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (options.keepWaiting && !options.keepWaiting()) throw new Error(`gave up waiting for ${url}: ${last}`);
    if (Date.now() + intervalMs >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${url}: ${last}`);
    await sleep(intervalMs);
  }
}
