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
  /** Resolves once a connection is open; rejects after `timeoutMs` (default 10 s). */
  connected(timeoutMs?: number): Promise<void>;
  /** Resolves once every accepted connection was closed by its client; rejects after `timeoutMs` (default 10 s). */
  allClosed(timeoutMs?: number): Promise<void>;
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
  const until = async (cond: () => boolean, what: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`black hole: no ${what} within ${timeoutMs} ms (accepted ${accepted}, open ${open.size})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        waiters.push(() => (clearTimeout(t), r()));
      });
    }
  };
  const server = createServer((sock) => {
    accepted++;
    open.add(sock);
    sock.on('error', () => undefined);
    // Read (and drop) what comes: that is how the end of the connection is noticed.
    sock.resume();
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
    connected: (timeoutMs) => until(() => open.size > 0, 'connection', timeoutMs),
    allClosed: (timeoutMs) => until(() => accepted > 0 && open.size === 0, 'close of every connection', timeoutMs),
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
