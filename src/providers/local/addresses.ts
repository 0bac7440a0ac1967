// Loopback address allocation: every local machine and endpoint gets its own 127.x.y.z so that
// members use their standard ports without colliding. Linux routes all of 127.0.0.0/8 to lo.
import { formatIPv4, parseIPv4 } from '../../api/cidr.js';

/** Default block: 127.77.0.0/16, far from 127.0.0.1 where other local services live. */
export const DEFAULT_ADDRESS_BASE = '127.77.0.0';
const BLOCK_SIZE = 65536;

export function nextFreeAddress(used: Iterable<string>, base = DEFAULT_ADDRESS_BASE): string {
  const start = parseIPv4(base);
  if (start === undefined) throw new Error(`invalid address base ${base}`);
  const taken = new Set(used);
  for (let i = 1; i < BLOCK_SIZE - 1; i++) {
    const n = start + i;
    const last = n % 256;
    if (last === 0 || last === 255) continue; // skip network/broadcast-looking addresses
    const candidate = formatIPv4(n);
    if (!taken.has(candidate)) return candidate;
  }
  throw new Error(`no free loopback address left in ${base}/16`);
}
