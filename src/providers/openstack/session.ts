// One authenticated connection to an OpenStack project: a Keystone v3 token from an application
// credential, the service catalog it comes with, and JSON requests to the services.
//
// The token is cached and renewed before it expires (Keystone issues them for an hour by default);
// a 401 from any service (a revoked token, a Keystone restart with rotated keys) drops it and the
// request is repeated once with a fresh one. Concurrent callers share one authentication.
//
// Failures are OpenStackError (the service answered with an error: its status and message) or
// OpenStackUnreachable (no answer). ./errors.ts turns both into ProviderErrors for the controllers.

/** The catalog service types Marina calls. */
export type ServiceType = 'compute' | 'network' | 'image' | 'load-balancer';

/** Nova microversion: tags at boot (2.52), `policy` as a string (2.64), `server_groups` in a server (2.71). */
const NOVA_MICROVERSION = '2.71';

export interface SessionOptions {
  /** Keystone v3 URL (`…/v3` is appended when missing). */
  authURL: string;
  applicationCredential: { id: string; secret: string };
  region?: string;
  interface?: 'public' | 'internal';
  /** Per request (default 30 s). */
  timeoutMs?: number;
  /** Renew this long before the token expires (default 5 min). */
  renewBeforeMs?: number;
  /** Injected in tests to move time forward. */
  now?: () => number;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Statuses that are answers, not errors (e.g. 404 when looking something up). */
  accept?: number[];
}

export interface Reply<T> {
  status: number;
  body: T;
}

/** A service answered with an error status. */
export class OpenStackError extends Error {
  constructor(
    readonly service: ServiceType | 'identity',
    readonly status: number,
    /** The service's own message (Nova's `message`, Neutron's `NeutronError.message`, Octavia's `faultstring`). */
    readonly detail: string,
    /** Neutron's error type (`OverQuota`, `SecurityGroupInUse`, …) when it gave one. */
    readonly type?: string,
  ) {
    super(`OpenStack ${service} answered ${status}: ${detail}`);
    this.name = 'OpenStackError';
  }
}

/** No answer: connection refused, DNS, TLS or a timeout. */
export class OpenStackUnreachable extends Error {
  constructor(
    readonly service: ServiceType | 'identity',
    readonly url: string,
    reason: string,
  ) {
    super(`cannot reach OpenStack ${service} at ${url}: ${reason}`);
    this.name = 'OpenStackUnreachable';
  }
}

interface Token {
  value: string;
  expiresAt: number;
  /** service type → base URL without a trailing slash. */
  endpoints: Map<string, string>;
}

export class OpenStackSession {
  private token: Token | undefined;
  private pending: Promise<Token> | undefined;
  /** Authentications so far (tests check renewals with it). */
  authentications = 0;
  private readonly now: () => number;

  constructor(private readonly o: SessionOptions) {
    this.now = o.now ?? Date.now;
  }

  get keystoneURL(): string {
    const base = this.o.authURL.replace(/\/+$/, '');
    return /\/v3$/.test(base) ? base : `${base}/v3`;
  }

  async request<T = unknown>(service: ServiceType, method: string, path: string, opts: RequestOptions = {}): Promise<Reply<T>> {
    let token = await this.currentToken(opts.signal);
    for (let attempt = 0; ; attempt++) {
      const base = token.endpoints.get(service);
      if (!base) throw new OpenStackError(service, 0, `the catalog has no ${this.o.interface ?? 'public'} ${service} endpoint${this.o.region ? ` in region ${this.o.region}` : ''}`);
      const headers: Record<string, string> = { 'X-Auth-Token': token.value, ...(service === 'compute' ? { 'OpenStack-API-Version': `compute ${NOVA_MICROVERSION}` } : {}), ...opts.headers };
      const reply = await this.send<T>(service, method, `${base}${path}`, { ...opts, headers });
      if (reply.status === 401 && attempt === 0) {
        // A revoked or expired token: authenticate again, once.
        if (this.token === token) this.token = undefined;
        token = await this.currentToken(opts.signal);
        continue;
      }
      if (reply.status >= 400 && !(opts.accept ?? []).includes(reply.status)) throw new OpenStackError(service, reply.status, errorDetail(reply.body), errorType(reply.body));
      return reply;
    }
  }

  /** A valid token, authenticating when there is none or it is about to expire. */
  private async currentToken(signal?: AbortSignal): Promise<Token> {
    const t = this.token;
    if (t && this.now() < t.expiresAt - (this.o.renewBeforeMs ?? 5 * 60_000)) return t;
    // Not passed on to the shared authentication: one caller's abort must not fail the others.
    this.pending ??= this.authenticate().finally(() => (this.pending = undefined));
    const pending = this.pending;
    if (!signal) return pending;
    signal.throwIfAborted();
    return Promise.race([pending, new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))]);
  }

  private async authenticate(): Promise<Token> {
    const url = `${this.keystoneURL}/auth/tokens`;
    const body = { auth: { identity: { methods: ['application_credential'], application_credential: this.o.applicationCredential } } };
    const reply = await this.send<{ token?: KeystoneToken }>('identity', 'POST', url, { body });
    if (reply.status !== 201 || !reply.body.token) {
      throw new OpenStackError('identity', reply.status, `authentication with application credential ${this.o.applicationCredential.id} failed: ${errorDetail(reply.body)}`);
    }
    const value = reply.headers.get('x-subject-token');
    if (!value) throw new OpenStackError('identity', reply.status, 'Keystone answered without X-Subject-Token');
    const tb = reply.body.token;
    const endpoints = new Map<string, string>();
    const wanted = this.o.interface ?? 'public';
    for (const service of tb.catalog ?? []) {
      const ep = service.endpoints.find((e) => e.interface === wanted && (!this.o.region || e.region_id === this.o.region || e.region === this.o.region));
      if (ep) endpoints.set(service.type, ep.url.replace(/\/+$/, ''));
    }
    this.authentications++;
    const token: Token = { value, expiresAt: Date.parse(tb.expires_at), endpoints };
    this.token = token;
    return token;
  }

  private async send<T>(service: ServiceType | 'identity', method: string, url: string, opts: RequestOptions): Promise<Reply<T> & { headers: Headers }> {
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 30_000);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, signal, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
      text = await res.text();
    } catch (err) {
      opts.signal?.throwIfAborted();
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = timeout.aborted ? `no answer within ${(this.o.timeoutMs ?? 30_000) / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new OpenStackUnreachable(service, new URL(url).origin, reason);
    }
    let body: unknown = text;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        /* an HTML or text error page (Glance, a proxy): keep the text */
      }
    }
    return { status: res.status, headers: res.headers, body: body as T };
  }
}

interface KeystoneToken {
  expires_at: string;
  catalog?: { type: string; endpoints: { interface: string; region_id?: string; region?: string; url: string }[] }[];
}

/** The message of an OpenStack error body, whichever service's shape it has. */
export function errorDetail(body: unknown): string {
  if (typeof body === 'string') return body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 1000) || 'no message';
  if (typeof body !== 'object' || body === null) return 'no message';
  const b = body as Record<string, unknown>;
  // Octavia: {"faultcode", "faultstring"}; Keystone: {"error": {"message"}}; Neutron: {"NeutronError": {"message"}};
  // Nova: {"badRequest" | "forbidden" | "itemNotFound" | "conflictingRequest" | "computeFault" | …: {"message"}}.
  if (typeof b.faultstring === 'string') return b.faultstring;
  for (const v of Object.values(b)) {
    if (typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string') return (v as { message: string }).message;
  }
  if (typeof b.message === 'string') return b.message;
  return JSON.stringify(body).slice(0, 1000);
}

function errorType(body: unknown): string | undefined {
  const ne = (body as { NeutronError?: { type?: unknown } } | undefined)?.NeutronError;
  return typeof ne?.type === 'string' ? ne.type : undefined;
}
