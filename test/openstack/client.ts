// A thin OpenStack HTTP client for the integration test: Keystone v3 token from an application
// credential (or a password), then JSON requests to the catalog's public endpoints.
export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export type ServiceType = 'identity' | 'compute' | 'network' | 'image' | 'load-balancer' | 'placement';

export interface Session {
  token: string;
  /** The token body Keystone returned (user, project, roles, catalog, expires_at, ...). */
  tokenBody: any;
  request<T = any>(service: ServiceType, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply<T>>;
}

export async function http<T = any>(method: string, url: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  if (opts.token) headers['X-Auth-Token'] = opts.token;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON (e.g. an HTML error page): keep the text */
  }
  return { status: res.status, headers: res.headers, body: parsed as T };
}

export type Credentials =
  | { applicationCredential: { id: string; secret: string } }
  | { password: { username: string; password: string; projectName: string } };

export async function authenticate(keystone: string, creds: Credentials): Promise<Session> {
  const identity =
    'applicationCredential' in creds
      ? { methods: ['application_credential'], application_credential: creds.applicationCredential }
      : { methods: ['password'], password: { user: { name: creds.password.username, domain: { id: 'default' }, password: creds.password.password } } };
  const scope = 'password' in creds ? { project: { name: creds.password.projectName, domain: { id: 'default' } } } : undefined;
  const reply = await http('POST', `${keystone}/auth/tokens`, { body: { auth: { identity, ...(scope ? { scope } : {}) } } });
  if (reply.status !== 201) throw new Error(`Keystone auth failed: ${reply.status} ${JSON.stringify(reply.body)}`);
  const token = reply.headers.get('x-subject-token');
  if (!token) throw new Error('Keystone reply without X-Subject-Token');
  const tokenBody = reply.body.token;
  const endpointOf = (type: ServiceType): string => {
    const service = tokenBody.catalog.find((s: any) => s.type === type);
    const ep = service?.endpoints.find((e: any) => e.interface === 'public');
    if (!ep) throw new Error(`no public ${type} endpoint in the catalog`);
    return String(ep.url).replace(/\/$/, '');
  };
  return {
    token,
    tokenBody,
    request: (service, method, path, body, headers) => http(method, `${endpointOf(service)}${path}`, { token, body, headers }),
  };
}

/** Polls fn until it returns a value other than undefined, or fails after timeoutMs. */
export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
