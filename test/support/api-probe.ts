// A client of a cluster's API that lists ConfigMaps through the cluster's endpoint every 200 ms and
// counts the requests that fail: the "failed requests" of an upgrade or a certificate rotation
// (the e2e test test/e2e/upgrade.test.ts and bench/upgrade.ts).
//
// Each request opens its own TLS connection (no keep-alive agent) so that every request goes
// through the endpoint's choice of backend and a full handshake against the current certificates:
// a request fails if the balancer hands it to an apiserver that is going away, or if the client's
// trust and the server's certificate (or the server's trust and the client's certificate) do not
// match. A request fails on a network or TLS error, a non-2xx status, or no answer within 10 s.
import https from 'node:https';
import { parseKubeconfig, type KubeConnection } from '../../src/kube/client.js';

export interface ProbeFailure {
  /** When the failed request started, and how long it took to fail. */
  at: string;
  ms: number;
  error: string;
}

export interface ProbeReport {
  requests: number;
  failures: number;
  /** The first failures, with when they happened. */
  firstFailures: ProbeFailure[];
}

const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_FAILURES = 20;

function listOnce(conn: KubeConnection, path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const url = new URL(path, conn.server);
    const req = https.request(
      url,
      {
        method: 'GET',
        agent: false,
        ...(conn.ca ? { ca: conn.ca } : {}),
        ...(conn.cert ? { cert: conn.cert } : {}),
        ...(conn.key ? { key: conn.key } : {}),
        ...(conn.tlsServerName ? { servername: conn.tlsServerName } : {}),
        headers: { accept: 'application/json', 'user-agent': 'marina-api-probe' },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body.length < 512 ? (body += d.toString('utf8')) : undefined));
        res.on('end', () => resolve(res.statusCode && res.statusCode < 300 ? undefined : `HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        res.on('error', (err) => resolve(err.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`${err.code ?? 'error'}: ${err.message}`));
    req.end();
  });
}

export class ApiProbe {
  private conn: KubeConnection;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private requests = 0;
  private failures: ProbeFailure[] = [];
  private failureCount = 0;

  constructor(
    kubeconfig: string,
    private readonly intervalMs = 200,
    private readonly path = '/api/v1/namespaces/default/configmaps?limit=5',
  ) {
    this.conn = parseKubeconfig(kubeconfig);
  }

  /** Starts listing; a no-op when running. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops after the request in flight (if any) and returns the counts. */
  async stop(): Promise<ProbeReport> {
    this.running = false;
    this.wake?.();
    await this.loop;
    return this.report();
  }

  report(): ProbeReport {
    return { requests: this.requests, failures: this.failureCount, firstFailures: [...this.failures] };
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = Date.now();
      const error = await listOnce(this.conn, this.path);
      this.requests++;
      if (error) {
        this.failureCount++;
        if (this.failures.length < KEEP_FAILURES) this.failures.push({ at: new Date(started).toISOString(), ms: Date.now() - started, error });
      }
      const rest = this.intervalMs - (Date.now() - started);
      if (rest > 0 && this.running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, rest);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }
}

/** One line for logs and reports: `N failed of M requests (first: …)`. */
export function describeProbe(r: ProbeReport): string {
  const first = r.firstFailures.slice(0, 5).map((f) => `${f.at} (+${f.ms} ms) ${f.error}`).join(' | ');
  return `${r.failures} failed of ${r.requests} requests${first ? ` (first: ${first})` : ''}`;
}
