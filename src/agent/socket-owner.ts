// Which process, and which machine, opened a TCP connection to this host: from /proc/net/tcp (the
// socket's inode) and /proc/<pid>/fd (who holds it). Used by the loopback relay to send each
// kube-apiserver's probe to its own machine's components. Linux only, like the rest of the agent;
// processes of other users are invisible (and not Marina's).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { commandLine } from '../proc/cmdline.js';

export interface TcpSocket {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  inode: number;
}

/** IPv4 `0100007F:1F90` (little-endian hex address, big-endian hex port) → ['127.0.0.1', 8080]. */
function hexEndpoint(s: string): [string, number] | undefined {
  const [addr, port] = s.split(':');
  if (!addr || !port || addr.length !== 8) return undefined;
  const n = Number.parseInt(addr, 16);
  return [[n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.'), Number.parseInt(port, 16)];
}

/** The sockets of a /proc/net/tcp text (IPv4; the header line and malformed lines are skipped). */
export function parseProcNetTcp(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const local = f[1] ? hexEndpoint(f[1]) : undefined;
    const remote = f[2] ? hexEndpoint(f[2]) : undefined;
    const inode = Number(f[9]);
    if (!local || !remote || !Number.isInteger(inode) || inode <= 0) continue;
    out.push({ localAddress: local[0], localPort: local[1], remoteAddress: remote[0], remotePort: remote[1], inode });
  }
  return out;
}

/**
 * The command line of the process that holds the client end of a connection from
 * `clientAddress:clientPort` to `serverAddress:serverPort` on this host, or undefined when it
 * cannot be found (gone meanwhile, another user's). Only processes whose command line `matches`
 * are looked at, which keeps the scan of /proc/<pid>/fd short.
 */
export function connectionOwner(
  client: { address: string; port: number },
  server: { address: string; port: number },
  matches: (args: string[]) => boolean,
): string[] | undefined {
  let table: string;
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return undefined;
  }
  const socket = parseProcNetTcp(table).find(
    (s) => s.localAddress === client.address && s.localPort === client.port && s.remoteAddress === server.address && s.remotePort === server.port,
  );
  if (!socket) return undefined;
  const link = `socket:[${socket.inode}]`;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const args = commandLine(pid);
    if (!args || !matches(args)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return args;
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return undefined;
}
