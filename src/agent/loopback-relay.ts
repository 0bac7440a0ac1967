// The loopback relay: kube-apiserver's ComponentStatus (`kubectl get componentstatuses`) probes
// kube-controller-manager and kube-scheduler at https://127.0.0.1:10257 and :10259, fixed in its
// code, while a Marina machine's components serve on the machine's own address. A control-plane
// agent therefore listens on 127.0.0.1:<port> as well and passes each connection through (TCP,
// TLS untouched) to <caller's machine>:<port>.
//
// Several machines share one host (the local provider: one loopback address each, but a single
// 127.0.0.1), so only one agent can hold 127.0.0.1:<port>, and it serves every cluster's probes:
// the caller is the kube-apiserver process holding the connection's other end (found in /proc),
// and its --advertise-address is its machine. A connection from anything else goes to this
// agent's own machine. The agents that could not bind try again every `retryMs`, so the relay
// survives the machine that held it. On a host of its own (a cloud VM) the caller is simply the
// machine's own apiserver.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { flagValue } from '../proc/cmdline.js';
import { connectionOwner } from './socket-owner.js';
import type { KubeletLog } from './virtual-kubelet.js';

const LOOPBACK = '127.0.0.1';

export interface LoopbackRelayOptions {
  port: number;
  /** This machine's address: where connections go whose caller is not a kube-apiserver. */
  ownAddress: string;
  log: KubeletLog;
  /** How often an agent that could not bind tries again (default 10 s). */
  retryMs?: number;
  /** Finds the caller's machine address (tests replace the /proc lookup). */
  callerAddress?: (clientPort: number, relayPort: number) => string | undefined;
}

/** The --advertise-address of the kube-apiserver that opened 127.0.0.1:clientPort → 127.0.0.1:relayPort. */
export function apiserverCallerAddress(clientPort: number, relayPort: number): string | undefined {
  const args = connectionOwner(
    { address: LOOPBACK, port: clientPort },
    { address: LOOPBACK, port: relayPort },
    (a) => Boolean(a[0]?.endsWith('kube-apiserver')),
  );
  return args && (flagValue(args, '--advertise-address') ?? flagValue(args, '--bind-address'));
}

export class LoopbackRelay {
  private server: Server | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly sockets = new Set<Socket>();
  private stopped = false;

  constructor(private readonly o: LoopbackRelayOptions) {}

  /** Whether this agent holds 127.0.0.1:<port> right now. */
  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  start(): void {
    if (this.stopped) return;
    const server = createServer((client) => this.relay(client));
    server.once('error', (err: NodeJS.ErrnoException) => {
      server.close();
      if (this.stopped) return;
      if (err.code !== 'EADDRINUSE') this.o.log.warn({ err, port: this.o.port }, 'loopback relay cannot listen');
      this.retry = setTimeout(() => this.start(), this.o.retryMs ?? 10_000);
      this.retry.unref();
    });
    server.listen({ host: LOOPBACK, port: this.o.port }, () => {
      this.o.log.info({ port: this.o.port }, `relaying ${LOOPBACK}:${this.o.port} to the calling apiserver's machine`);
    });
    this.server = server;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private relay(client: Socket): void {
    let target = this.o.ownAddress;
    try {
      target = (this.o.callerAddress ?? apiserverCallerAddress)(client.remotePort ?? 0, this.o.port) ?? target;
    } catch (err) {
      this.o.log.debug({ err }, 'loopback relay: caller unknown; relaying to this machine');
    }
    const upstream = connect({ host: target, port: this.o.port });
    // pipe() passes each side's end on; an error on either side ends both.
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => this.sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
