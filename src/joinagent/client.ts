// The agent's side of the join protocol (src/server/routes/joins.ts), over HTTPS that trusts only
// Marina's CA — and only after that CA's pin matched the one the join command carries: the CA is
// fetched once without verification, its pin compared, and nothing (no token) is sent before.
import { chmodSync, createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import { sha256File, type Artifact } from '../joins/artifacts.js';
import { caPin, pinsEqual } from '../joins/pin.js';
import { JOIN_PREFIX as JOIN, type JoinAnswer, type SyncAnswer } from '../server/join-schemas.js';

export class JoinError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'JoinError';
  }
}

export class PinMismatchError extends Error {
  constructor(url: string, got: string, want: string) {
    super(`the server at ${url} presented a CA with pin ${got}, but the join command pins ${want}: refusing to talk to it (nothing was sent)`);
    this.name = 'PinMismatchError';
  }
}

/** Marina's CA, fetched without verifying the server (it is verified by its pin next). */
export function fetchCaUnverified(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(new URL(`${JOIN}/ca`, url), { rejectUnauthorized: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 && body.includes('-----BEGIN CERTIFICATE-----') ? resolve(body) : reject(new JoinError(res.statusCode ?? 0, `no CA at ${url}${JOIN}/ca (HTTP ${res.statusCode}): ${body.slice(0, 300)}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 15 s`)));
    req.on('error', reject);
  });
}

/** Fetches Marina's CA and checks it against the pin; throws PinMismatchError otherwise. */
export async function pinnedCa(url: string, pin: string): Promise<string> {
  const pem = await fetchCaUnverified(url);
  const got = caPin(pem);
  if (!pinsEqual(got, pin)) throw new PinMismatchError(url, got, pin);
  return pem;
}

export class JoinClient {
  private readonly agent: https.Agent;

  constructor(
    readonly url: string,
    caPem: string,
  ) {
    this.agent = new https.Agent({ ca: caPem, keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  join(token: string, facts: { hostname: string; address: string }): Promise<JoinAnswer> {
    return this.call('POST', `${JOIN}/machines`, token, facts);
  }

  sync(credential: string, health?: { ok: boolean; message: string }): Promise<SyncAnswer> {
    return this.call('POST', `${JOIN}/machine/sync`, credential, health ? { health } : {});
  }

  left(credential: string): Promise<unknown> {
    return this.call('POST', `${JOIN}/machine/left`, credential, {});
  }

  /** Downloads an artifact to `dest` unless a file with its checksum is there; checks size and SHA-256. */
  async download(credential: string, a: Artifact, dest: string, mode: number): Promise<void> {
    if (existsSync(dest) && statSync(dest).size === a.size && (await sha256File(dest)) === a.sha256) return;
    const tmp = `${dest}.part`;
    await new Promise<void>((resolve, reject) => {
      const req = https.get(new URL(`${JOIN}/artifacts/${encodeURIComponent(a.name)}`, this.url), { agent: this.agent, headers: { authorization: `Bearer ${credential}` } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new JoinError(res.statusCode ?? 0, `download of ${a.name} failed: HTTP ${res.statusCode}`));
        }
        const out = createWriteStream(tmp, { mode });
        res.pipe(out);
        out.on('finish', () => resolve());
        out.on('error', reject);
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    const size = statSync(tmp).size;
    const sum = await sha256File(tmp);
    if (size !== a.size || sum !== a.sha256) {
      rmSync(tmp, { force: true });
      throw new Error(`${a.name}: checksum mismatch (got ${size} bytes sha256 ${sum}, want ${a.size} bytes sha256 ${a.sha256}); not used`);
    }
    chmodSync(tmp, mode);
    renameSync(tmp, dest);
  }

  private call<T>(method: string, path: string, bearer: string, body: unknown): Promise<T> {
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        new URL(path, this.url),
        {
          method,
          agent: this.agent,
          timeout: 30_000,
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', 'content-length': payload.length, accept: 'application/json' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            let json: { message?: string } | undefined;
            try {
              json = JSON.parse(text) as { message?: string };
            } catch {
              json = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(json as T);
            else reject(new JoinError(status, json?.message ?? `HTTP ${status}: ${text.slice(0, 300)}`));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
