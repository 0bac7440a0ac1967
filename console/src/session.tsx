// Who is logged in, the API client with their token, and the shared live collections.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, useSyncExternalStore, type ReactNode } from 'react';
import { FunctionsApi, type MarinaClient, type WhoAmI } from '../../src/client/index.js';
import type { Resource } from '../../src/api/meta.js';
import { LiveCollection, LiveRegistry, type LiveSnapshot } from '../../src/console-lib/live.js';
import { clearToken, loadToken, login as checkToken, saveToken } from '../../src/console-lib/session.js';

export interface SessionValue {
  client: MarinaClient;
  me: WhoAmI;
  registry: LiveRegistry;
  logout(reason?: string): void;
}

interface AuthValue {
  session?: SessionValue;
  /** True while a stored token is being checked at start-up. */
  restoring: boolean;
  /** Why the last session ended (token expired...), shown on the login page. */
  ended?: string;
  login(token: string): Promise<void>;
}

const AuthContext = createContext<AuthValue | undefined>(undefined);
const SessionContext = createContext<SessionValue | undefined>(undefined);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<{ token: string; client: MarinaClient; me: WhoAmI } | undefined>();
  const [restoring, setRestoring] = useState(() => loadToken(window.sessionStorage) !== undefined);
  const [ended, setEnded] = useState<string>();

  const login = useCallback(async (token: string) => {
    const s = await checkToken(window.location.origin, token);
    saveToken(window.sessionStorage, s.token);
    setEnded(undefined);
    setState(s);
  }, []);

  useEffect(() => {
    const stored = loadToken(window.sessionStorage);
    if (!stored) return;
    let cancelled = false;
    checkToken(window.location.origin, stored)
      .then((s) => !cancelled && setState(s))
      .catch((err: Error) => {
        if (cancelled) return;
        clearToken(window.sessionStorage);
        setEnded(err.message);
      })
      .finally(() => !cancelled && setRestoring(false));
    return () => {
      cancelled = true;
    };
  }, []);

  const logout = useCallback((reason?: string) => {
    clearToken(window.sessionStorage);
    setEnded(reason);
    setState(undefined);
  }, []);

  const session = useMemo<SessionValue | undefined>(() => {
    if (!state) return undefined;
    const registry = new LiveRegistry(
      (kind, project, pollIntervalMs) =>
        new LiveCollection<Resource>(state.client, kind, {
          ...(project ? { project } : {}),
          ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
          onFatal: (err) => {
            if (err.code === 401) logout(`Your session ended: ${err.message}`);
          },
        }),
      3_000,
    );
    return { client: state.client, me: state.me, registry, logout };
  }, [state, logout]);

  // A session's watches end with it.
  useEffect(() => () => session?.registry.stopAll(), [session]);

  const auth = useMemo(() => ({ session, restoring, ended, login }), [session, restoring, ended, login]);
  return (
    <AuthContext.Provider value={auth}>
      <SessionContext.Provider value={session}>{children}</SessionContext.Provider>
    </AuthContext.Provider>
  );
}

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error('useAuth outside AuthProvider');
  return v;
}

export function useSession(): SessionValue {
  const v = useContext(SessionContext);
  if (!v) throw new Error('useSession outside a session');
  return v;
}

const EMPTY: LiveSnapshot<never> = { items: [], state: 'connecting', synced: false };
const noSubscribe = () => () => undefined;
const emptySnapshot = () => EMPTY;

/** The live list of one kind in one project (shared between the components that ask for it). */
export function useLive<T extends Resource>(kind: string, project: string | undefined): LiveSnapshot<T> {
  const { registry } = useSession();
  const [collection, setCollection] = useState<LiveCollection<T>>();
  useEffect(() => {
    const c = registry.acquire<T>(kind, project);
    setCollection(c);
    return () => registry.release(c);
  }, [registry, kind, project]);
  const current = collection && collection.kind === kind ? collection : undefined;
  return useSyncExternalStore(current?.subscribe ?? noSubscribe, current?.getSnapshot ?? emptySnapshot) as LiveSnapshot<T>;
}

/** Tells the shared collection about an object the caller just wrote (before the watch does). */
export function useApplyLocally(): (obj: Resource, type?: 'ADDED' | 'MODIFIED') => void {
  const { registry } = useSession();
  return useCallback(
    (obj: Resource, type: 'ADDED' | 'MODIFIED' = 'MODIFIED') => {
      const c = registry.acquire(obj.kind, obj.metadata.project);
      c.apply({ type, object: obj });
      registry.release(c);
    },
    [registry],
  );
}

/** The current time, refreshed every `ms` (ages in tables). */
export function useNow(ms = 5_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** The function service's calls (invoke, activations, dead letters, runs) with the session's client. */
export function useFunctionsApi(): FunctionsApi {
  const { client } = useSession();
  return useMemo(() => new FunctionsApi(client), [client]);
}

/** The caller's role in a project (`platform admin` for platform admins without one). */
export function useRole(project: string): string | undefined {
  const { me } = useSession();
  return me.projects.find((p) => p.name === project)?.role ?? (me.platformAdmin ? 'platform admin' : undefined);
}
