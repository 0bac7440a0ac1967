// A lock held by one test process at a time on this host, for what test runs cannot each have
// their own of: Octavia's no-op network driver gives every load balancer the same VIP
// (198.51.100.1) unless one is asked for, and the hypervisor test plays that load balancer on the
// host, so two runs at once would relay each other's clusters. A lock left by a process that died
// is taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isProcessAlive } from '../../src/proc/index.js';

const LOCK_ROOT = '/run/lock';

/** Waits until this process holds the lock `name`; resolves with its release. */
export async function acquireHostLock(name: string, onWait: (holder: number) => void, signal?: AbortSignal): Promise<() => void> {
  const dir = join(LOCK_ROOT, `marina-test-${name}`);
  let reported = 0;
  for (;;) {
    signal?.throwIfAborted();
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      return () => rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileOr(join(dir, 'pid')));
    if (holder && !isProcessAlive(holder)) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    // No pid yet: the holder is between mkdir and write; look again shortly.
    if (holder && holder !== reported) {
      onWait(holder);
      reported = holder;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function readFileOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
