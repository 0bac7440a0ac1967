// Loopback address allocation: every local machine and endpoint gets its own 127.x.y.z so that
// members use their standard ports without colliding. Linux routes all of 127.0.0.0/8 to lo.
import { formatIPv4, parseIPv4 } from '../../api/cidr.js';

/** Default block: 127.77.0.0/16, far from 127.0.0.1 where other local services live. */
export const DEFAULT_ADDRESS_BASE = '127.77.0.0';
const BLOCK_SIZE = 65536;

/**
 * The first free address of the /16 at `base`, scanning from just after `after` (the previous
 * allocation) and wrapping around. Not reusing a just-freed address right away, as clouds do with
 * IPs, keeps stale connections, caches and etcd peer entries from meeting a different machine.
 */
export function nextFreeAddress(used: Iterable<string>, base = DEFAULT_ADDRESS_BASE, after?: string): string {
  const start = parseIPv4(base);
  if (start === undefined) throw new Error(`invalid address base ${base}`);
  const taken = new Set(used);
  const prev = after !== undefined ? parseIPv4(after) : undefined;
  const offset = prev !== undefined && prev > start && prev < start + BLOCK_SIZE ? prev - start : 0;
  for (let k = 1; k < BLOCK_SIZE; k++) {
    const i = ((offset + k) % BLOCK_SIZE);
    if (i === 0) continue;
    const n = start + i;
    const last = n % 256;
    if (last === 0 || last === 255) continue; // skip network/broadcast-looking addresses
    const candidate = formatIPv4(n);
    if (!taken.has(candidate)) return candidate;
  }
  throw new Error(`no free loopback address left in ${base}/16`);
}
