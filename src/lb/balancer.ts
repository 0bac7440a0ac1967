// A TCP load balancer for a cluster's API endpoint: TLS passes through untouched (clients verify
// the apiserver's own certificate), connections go round-robin to backends whose /readyz answers.
// Marina's own rather than HAProxy so that a fresh machine needs no system package and the
// backend set can be changed on the fly by the provider.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { request } from 'node:https';

export interface BalancerOptions {
  host: string;
  port: number;
  /** More `host:port` addresses to accept connections on (e.g. a node network's gateway). */
  extraListen?: string[];
  backends: string[];
  /** Path probed over HTTPS on every backend; apiservers serve /readyz to anonymous clients. */
  healthPath?: string;
  healthIntervalMs?: number;
  /** Probe timeout; a backend that does not answer in time counts as down. */
  healthTimeoutMs?: number;
  log?: (msg: string) => void;
}

interface Backend {
  address: string;
  host: string;
  port: number;
  healthy: boolean;
}

export function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`backend must be host:port, got ${JSON.stringify(s)}`);
  return { host: s.slice(0, i), port };
}

export class TcpBalancer {
  private server?: Server;
  /** Extra listeners by `host:port`. */
  private readonly extra = new Map<string, Server>();
  private backends: Backend[] = [];
  private next = 0;
  private timer?: NodeJS.Timeout;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: BalancerOptions) {
    this.setBackends(opts.backends);
  }

  /** Replaces the backend set; backends that stay keep their health state. */
  setBackends(addresses: string[]): void {
    const old = new Map(this.backends.map((b) => [b.address, b]));
    this.backends = [...new Set(addresses)].map((address) => old.get(address) ?? { address, ...parseHostPort(address), healthy: false });
    void this.checkAll();
  }

  healthyBackends(): string[] {
    return this.backends.filter((b) => b.healthy).map((b) => b.address);
  }

  async start(): Promise<void> {
    this.server = await this.listen(this.opts.host, this.opts.port);
    await this.setExtraListeners(this.opts.extraListen ?? []);
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.opts.healthIntervalMs ?? 2000);
  }

  /** Accepts connections on exactly these extra addresses (besides host:port) from now on. */
  async setExtraListeners(addresses: string[]): Promise<void> {
    const want = new Set(addresses);
    for (const [address, server] of this.extra) {
      if (want.has(address)) continue;
      this.extra.delete(address);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    for (const address of want) {
      if (this.extra.has(address)) continue;
      const { host, port } = parseHostPort(address);
      this.extra.set(address, await this.listen(host, port));
    }
  }

  private listen(host: string, port: number): Promise<Server> {
    const server = createServer((client) => this.forward(client));
    return new Promise<Server>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const s of this.sockets) s.destroy();
    const servers = [this.server, ...this.extra.values()].filter((s): s is Server => s !== undefined);
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  private pick(exclude: Set<string>): Backend | undefined {
    // Prefer healthy backends; when none is known healthy (e.g. right after start) try any.
    const candidates = this.backends.filter((b) => !exclude.has(b.address));
    const pool = candidates.some((b) => b.healthy) ? candidates.filter((b) => b.healthy) : candidates;
    if (pool.length === 0) return undefined;
    this.next = (this.next + 1) % pool.length;
    return pool[this.next];
  }

  private forward(client: Socket): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const tried = new Set<string>();
    const attempt = () => {
      const backend = this.pick(tried);
      if (!backend) {
        client.destroy();
        return;
      }
      tried.add(backend.address);
      const upstream = connect({ host: backend.host, port: backend.port });
      this.sockets.add(upstream);
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once('error', () => {
        backend.healthy = false;
        upstream.destroy();
        attempt();
      });
      upstream.on('close', (hadError) => {
        this.sockets.delete(upstream);
        // A backend that closed cleanly (after its response: clients without keep-alive ask it to)
        // may still have bytes in the client's write buffer: end() sends them first, destroy()
        // would drop them — and the client would see a reset instead of its response.
        if (hadError) client.destroy();
        else client.end();
      });
      client.on('close', () => upstream.destroy());
    };
    attempt();
  }

  private async checkAll(): Promise<void> {
    await Promise.all(
      this.backends.map(async (b) => {
        const healthy = await this.probe(b);
        if (healthy !== b.healthy) this.opts.log?.(`backend ${b.address} is ${healthy ? 'healthy' : 'down'}`);
        b.healthy = healthy;
      }),
    );
  }

  private probe(b: Backend): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request(
        {
          host: b.host,
          port: b.port,
          path: this.opts.healthPath ?? '/readyz',
          method: 'GET',
          // Only liveness is judged here; the client's own TLS session verifies the server.
          rejectUnauthorized: false,
          timeout: this.opts.healthTimeoutMs ?? 1500,
          agent: false,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }
}
