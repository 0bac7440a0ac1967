// A TCP server on loopback that accepts connections and never says a word (not even a TLS
// handshake): a call to it hangs until its own deadline or an abort ends it. Tests use it to show
// that an abort ends a hanging call, and that the caller closed its connection.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';

export interface BlackHole {
  /** https://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Resolves once a connection is open (at least one accepted and not closed). */
  connected(): Promise<void>;
  /** Resolves once every accepted connection was closed by its client. */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

export async function blackHole(): Promise<BlackHole> {
  const open = new Set<Socket>();
  let accepted = 0;
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise<void>((r) => waiters.push(r));
  };
  const server = createServer((sock) => {
    accepted++;
    open.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => {
      open.delete(sock);
      wake();
    });
    wake();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    get accepted() {
      return accepted;
    },
    connected: () => until(() => open.size > 0),
    allClosed: () => until(() => accepted > 0 && open.size === 0),
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
