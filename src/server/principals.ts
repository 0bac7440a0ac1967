// What authenticating a request needs, without a store read per request: verified tokens are kept
// in memory (a revocation through this server takes effect at once: the entry goes with it), and
// every user's platform-admin flag is kept current by a watch on Users (a deleted or demoted user
// loses it at once too).
import type { Resource } from '../api/meta.js';
import type { IssuedToken, Store, TokenInfo, TokenStore, Watch } from '../store/types.js';

interface Verified {
  id: string;
  user: string;
  /** Checked on every use: an expired token is refused even while cached. */
  expiresAt?: number;
  /** Re-read from the store after this (a safety net for changes made outside this server). */
  freshUntil: number;
}

export interface TokenCacheOptions {
  /** Most tokens kept (the least recently verified go first). Default 10,000. */
  maxEntries?: number;
  /** How long a verification is trusted before the store is asked again. Default 60 s. */
  ttlMs?: number;
  now?: () => number;
}

/** A TokenStore that remembers successful verifications; issue, revoke and list go to the store. */
export class CachingTokenStore implements TokenStore {
  private readonly cache = new Map<string, Verified>();
  private readonly max: number;
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(
    private readonly inner: TokenStore,
    opts: TokenCacheOptions = {},
  ) {
    this.max = opts.maxEntries ?? 10_000;
    this.ttl = opts.ttlMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  async verify(token: string): Promise<{ id: string; user: string } | undefined> {
    const now = this.now();
    const hit = this.cache.get(token);
    if (hit && hit.freshUntil > now) {
      if (hit.expiresAt !== undefined && hit.expiresAt <= now) {
        this.cache.delete(token);
        return undefined;
      }
      // Most recently used last: Map order is the eviction order.
      this.cache.delete(token);
      this.cache.set(token, hit);
      return { id: hit.id, user: hit.user };
    }
    this.cache.delete(token);
    const verified = await this.inner.verify(token);
    // Unknown tokens are not remembered: guessing must not fill the cache.
    if (!verified) return undefined;
    const info = (await this.inner.list(verified.user)).find((t) => t.id === verified.id);
    const expiresAt = info?.expiresAt ? Date.parse(info.expiresAt) : undefined;
    this.cache.set(token, { ...verified, ...(expiresAt !== undefined ? { expiresAt } : {}), freshUntil: now + this.ttl });
    if (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value!);
    return verified;
  }

  issue(opts: { user: string; description?: string; expiresAt?: string }): Promise<IssuedToken> {
    return this.inner.issue(opts);
  }

  list(user?: string): Promise<TokenInfo[]> {
    return this.inner.list(user);
  }

  async revoke(id: string): Promise<boolean> {
    for (const [token, v] of this.cache) if (v.id === id) this.cache.delete(token);
    return this.inner.revoke(id);
  }

  async revokeUser(user: string): Promise<number> {
    this.forgetUser(user);
    return this.inner.revokeUser(user);
  }

  /** Drops every cached token of `user`. */
  forgetUser(user: string): void {
    for (const [token, v] of this.cache) if (v.user === user) this.cache.delete(token);
  }
}

/** Every user and whether it is a platform admin, kept current by a watch on Users. */
export class UserIndex {
  private readonly admins = new Map<string, boolean>();
  private watch?: Watch;

  private constructor() {}

  /** `onChange` hears of every user that changed or went (to drop what was derived from it). */
  static async start(store: Store, onChange?: (user: string) => void): Promise<UserIndex> {
    const index = new UserIndex();
    const apply = (u: Resource, deleted: boolean) => {
      if (deleted) index.admins.delete(u.metadata.name);
      else index.admins.set(u.metadata.name, (u.spec as { platformAdmin?: boolean } | undefined)?.platformAdmin === true);
    };
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await store.list('User', { limit: 500, continue: cont });
      rv ??= page.resourceVersion;
      for (const u of page.items) apply(u, false);
      cont = page.continue;
    } while (cont);
    index.watch = store.watch({ kind: 'User', resourceVersion: rv }, (ev) => {
      apply(ev.object, ev.type === 'DELETED');
      onChange?.(ev.object.metadata.name);
    });
    return index;
  }

  /** undefined: no such user. */
  platformAdmin(user: string): boolean | undefined {
    return this.admins.get(user);
  }

  stop(): void {
    this.watch?.stop();
  }
}
