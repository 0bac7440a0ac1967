// Authentication and authorization of every API request, as hooks:
//   onRequest  — the bearer token names a user; the membership index gives the user's roles
//   preHandler — the access the route declares (config.access) is decided by `decideAccess`
// A route under the API prefix that declares no access is refused at start-up, so a new route
// cannot forget authorization. Routes outside the prefix (the functions' HTTP trigger) may decide
// per request that no token is needed ('public'); otherwise the token is checked there too.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
import { findKind } from '../api/registry.js';
import type { AuditLog, Store, TokenStore } from '../store/types.js';
import { decideAccess, denial, type Access, type Principal, type Verb } from './authz.js';
import { API_PREFIX } from './http.js';
import type { MembershipIndex } from './membership.js';

/**
 * What a route needs: 'public' (no token; only outside the API prefix), 'authenticated' (any
 * signed-in user; lists judge each item with `visibleTo`), or the access to decide. Outside the
 * API prefix the decision may also be 'public' for this one request (a public function).
 */
export type RouteAccess = 'public' | 'authenticated' | ((req: FastifyRequest) => Access | 'public' | Promise<Access | 'public'>);

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export interface AuthOptions {
  store: Store;
  tokens: TokenStore;
  audit: AuditLog;
  membership: MembershipIndex;
}

/** Installs the hooks on the root instance (before any route is registered). */
export function registerAuth(app: FastifyInstance, opts: AuthOptions): void {
  const { store, tokens, audit, membership } = opts;

  app.addHook('onRoute', (route) => {
    const access = (route.config as { access?: RouteAccess } | undefined)?.access;
    if (route.url.startsWith(API_PREFIX) && (access === undefined || access === 'public')) {
      throw new Error(`route ${route.method} ${route.url} declares no access (config.access)`);
    }
  });

  const authenticate = async (req: FastifyRequest): Promise<Principal> => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) throw ApiError.unauthorized();
    const verified = await tokens.verify(match[1]!);
    if (!verified) throw ApiError.unauthorized('token is invalid, revoked or expired');
    const user = await store.get({ kind: 'User', project: '', name: verified.user });
    if (!user) throw ApiError.unauthorized(`token's user ${JSON.stringify(verified.user)} no longer exists`);
    return {
      user: verified.user,
      platformAdmin: (user.spec as { platformAdmin?: boolean }).platformAdmin === true,
      roles: membership.rolesOf(verified.user),
      tokenId: verified.id,
    };
  };

  // /healthz, /metrics, /openapi and the console stay open so that probes, scrapers and browsers
  // need no token.
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith(API_PREFIX)) req.principal = await authenticate(req);
  });

  app.addHook('preHandler', async (req) => {
    const access = req.routeOptions.config.access;
    if (typeof access !== 'function') return;
    const wanted = await access(req);
    if (wanted === 'public') {
      if (req.principal) throw new Error(`route ${req.routeOptions.url} under ${API_PREFIX} decided 'public'`);
      return;
    }
    req.principal ??= await authenticate(req);
    const p = req.principal;
    const decision = decideAccess(p, wanted);
    if (decision === 'allow') return;
    if (decision === 'forbidden') {
      await audit.append({ time: new Date().toISOString(), user: p.user, verb: wanted.verb, kind: wanted.kind, project: wanted.project ?? '', name: wanted.name ?? '', code: 403 });
    }
    throw denial(p, wanted, decision);
  });
}

/** The authenticated caller (set by the onRequest hook for every API route). */
export function principal(req: FastifyRequest): Principal {
  if (!req.principal) throw ApiError.unauthorized();
  return req.principal;
}

/** For lists without a project: whether the caller may `verb` each object of `kind`. */
export function visibleTo(p: Principal, verb: Verb, kind: string): (obj: Resource) => boolean {
  const inProject = findKind(kind)?.scope === 'project';
  return (obj) => {
    const name = obj.metadata.name;
    const project = inProject ? obj.metadata.project ?? '' : kind === 'Project' ? name : undefined;
    return decideAccess(p, { verb, kind, project, name }) === 'allow';
  };
}
