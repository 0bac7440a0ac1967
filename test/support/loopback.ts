// Loopback address blocks for tests that run machines or agents on their own 127.x.y.z addresses.
import { isPortListening } from '../../src/proc/index.js';

/**
 * A loopback /16 for one test run's machines (MARINA_LOCAL_ADDRESS_BASE): picked at random from
 * 127.100.0.0 – 127.199.0.0, a range no other test and no default uses, and skipped if something
 * already answers on its first addresses. Random rather than fixed, so that two runs of the suite
 * on one host (two checkouts, two terminals) do not hand the same addresses to two Marinas.
 */
export async function pickAddressBase(): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = `127.${100 + Math.floor(Math.random() * 100)}.0.0`;
    const prefix = base.slice(0, -3);
    let busy = false;
    for (let host = 1; host <= 4 && !busy; host++) {
      for (const port of [10250, 6443, 2379]) if (await isPortListening(`${prefix}0.${host}`, port, 200)) busy = true;
    }
    if (!busy) return base;
  }
  throw new Error('no free loopback /16 in 127.100-199');
}
