// Pre-forked generic sandboxes. Starting a sandbox (bubblewrap, namespaces, Node) costs 100–200 ms;
// loading a function into a running one costs a few. So a few empty sandboxes per profile (memory
// limit, network or not) wait here, and a function's cold start takes one and loads its code.
import type { SandboxProfile } from './sandbox/command.js';
import type { SandboxHost } from './sandbox/host.js';
import { SandboxInstance, UidPool } from './sandbox/instance.js';

export const profileKey = (p: SandboxProfile): string => `${p.memoryMiB}Mi${p.network ? '+net' : ''}`;

export interface WarmPoolOptions {
  host: SandboxHost;
  /** Empty sandboxes kept per profile in use (default 2). */
  spares?: number;
  onError?: (err: Error) => void;
}

export class WarmPool {
  readonly uids: UidPool;
  private readonly spares = new Map<string, SandboxInstance[]>();
  private readonly wanted = new Map<string, SandboxProfile>();
  private readonly perProfile: number;
  private closed = false;
  /** Consecutive failed starts; refilling pauses after a few so a broken host is not hammered. */
  private failures = 0;

  constructor(private readonly opts: WarmPoolOptions) {
    this.perProfile = opts.spares ?? 2;
    this.uids = new UidPool(opts.host.uidBase ?? 0);
  }

  /** Keeps spares for exactly these profiles; spares of others are stopped. */
  setProfiles(profiles: SandboxProfile[]): void {
    this.wanted.clear();
    for (const p of profiles) this.wanted.set(profileKey(p), p);
    for (const [key, list] of this.spares) {
      if (this.wanted.has(key)) continue;
      this.spares.delete(key);
      for (const i of list) void i.stop();
    }
    for (const p of this.wanted.values()) this.refill(p);
  }

  /** A sandbox for `profile`: a spare if there is one (warm), else a new one (cold). Refills. */
  take(profile: SandboxProfile): { instance: SandboxInstance; prestarted: boolean } {
    const list = this.spares.get(profileKey(profile)) ?? [];
    // Prefer a spare that is already up; one still starting is still ahead of a new start.
    const idx = list.findIndex((i) => i.state === 'idle');
    const at = idx >= 0 ? idx : list.findIndex((i) => i.state === 'starting');
    const instance = at >= 0 ? list.splice(at, 1)[0]! : this.start(profile);
    this.refill(profile);
    return { instance, prestarted: at >= 0 };
  }

  size(): number {
    let n = 0;
    for (const list of this.spares.values()) n += list.length;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.spares.values()].flat();
    this.spares.clear();
    await Promise.all(all.map((i) => i.stop()));
  }

  private start(profile: SandboxProfile): SandboxInstance {
    return SandboxInstance.start({ host: this.opts.host, profile, uids: this.uids });
  }

  private refill(profile: SandboxProfile): void {
    if (this.closed || this.failures >= 3) return;
    const key = profileKey(profile);
    if (!this.wanted.has(key)) return;
    const list = this.spares.get(key) ?? [];
    this.spares.set(key, list);
    while (list.length < this.perProfile) {
      const inst = this.start(profile);
      list.push(inst);
      inst.ready.then(
        () => (this.failures = 0),
        (err: Error) => {
          this.failures++;
          const i = list.indexOf(inst);
          if (i >= 0) list.splice(i, 1);
          this.opts.onError?.(err);
          // Try again later rather than in a tight loop.
          setTimeout(() => {
            this.failures = Math.max(0, this.failures - 1);
            this.refill(profile);
          }, 5000).unref();
        },
      );
      // A spare that dies while waiting (killed from outside) is replaced.
      void inst.exited.then(() => {
        const i = list.indexOf(inst);
        if (i < 0) return;
        list.splice(i, 1);
        this.refill(profile);
      });
    }
  }
}
