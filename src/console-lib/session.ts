// The console's login: the API token lives in sessionStorage (gone with the tab), is checked with
// whoami before it is kept, and is sent as `Authorization: Bearer` by the client.
import { MarinaApiError, MarinaClient, type WhoAmI } from '../client/index.js';

/** The part of the Web Storage API the session needs (sessionStorage in the browser). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const TOKEN_KEY = 'marina.console.token';

export function loadToken(storage: KeyValueStorage): string | undefined {
  try {
    return storage.getItem(TOKEN_KEY)?.trim() || undefined;
  } catch {
    return undefined; // storage disabled
  }
}

export function saveToken(storage: KeyValueStorage, token: string): void {
  storage.setItem(TOKEN_KEY, token.trim());
}

export function clearToken(storage: KeyValueStorage): void {
  try {
    storage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}

export interface Session {
  token: string;
  client: MarinaClient;
  me: WhoAmI;
}

/**
 * Checks a token against the server (`whoami`). Answers the session, or throws a human message:
 * a wrong token is the API's 401 message, an unreachable server says so.
 */
export async function login(server: string, token: string, fetchImpl?: typeof fetch): Promise<Session> {
  const t = token.trim();
  if (!t) throw new Error('enter an API token');
  const client = new MarinaClient({ server, token: t, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  try {
    const me = await client.whoami();
    return { token: t, client, me };
  } catch (err) {
    if (err instanceof MarinaApiError && err.code === 401) throw new Error(`the server refused the token: ${err.message}`);
    throw err;
  }
}
