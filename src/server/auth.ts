// Authentication and authorization of every API request, as hooks:
//   onRequest  — the bearer token names a user; the membership index gives the user's roles
//   preHandler — the access the route declares (config.access) is decided by `decideAccess`
// A route under the API prefix that declares no access is refused at start-up, so a new route
// cannot forget authorization. Routes outside the prefix (the functions' HTTP trigger) may decide
// per request that no token is needed ('public'); otherwise the token is checked there too. A
// route outside the prefix may also be authenticated by a credential of its own instead of an API
// token (the join protocol: a join token, an imported server's machine credential): it declares
// which (`{ credential }`) and documents it as the OpenAPI security scheme of that name.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
import { findKind } from '../api/registry.js';
import type { AuditLog, Store, TokenStore } from '../store/types.js';
import { decideAccess, denial, type Access, type Principal, type Verb } from './authz.js';
import { API_PREFIX } from './http.js';
import type { MembershipIndex } from './membership.js';

/** Bearer credentials other than users' API tokens, as the OpenAPI document names and explains them. */
export const CREDENTIAL_SCHEMES = {
  joinToken: 'a join token (`marina cluster join-token create`): lets one server join one pool of one cluster, until it expires, is revoked or (single use) used',
  machineCredential: "an imported server's credential, handed to its agent once by the join",
} as const;
export type CredentialScheme = keyof typeof CREDENTIAL_SCHEMES;

/**
 * A route authenticated by its own kind of bearer credential (outside the API prefix only): the
 * token goes to `verify`, which throws a 401 ApiError when it refuses it. The route documents it
 * with `security: [{ <scheme>: [] }]` (checked at start-up).
 */
export interface CredentialAccess {
  credential: CredentialScheme;
  verify(token: string, req: FastifyRequest): Promise<void> | void;
}

/**
 * What a route needs: 'public' (no token; only outside the API prefix), 'authenticated' (any
 * signed-in user; lists judge each item with `visibleTo`), its own credential, or the access to
 * decide. Outside the API prefix the decision may also be 'public' for this one request (a public
 * function).
 */
export type RouteAccess = 'public' | 'authenticated' | CredentialAccess | ((req: FastifyRequest) => Access | 'public' | Promise<Access | 'public'>);

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
    if (typeof access === 'object') {
      if (route.url.startsWith(API_PREFIX)) throw new Error(`route ${route.method} ${route.url}: API routes take API tokens, not a ${access.credential}`);
      const security = (route.schema as { security?: Record<string, unknown>[] } | undefined)?.security;
      if (!security?.some((s) => access.credential in s)) throw new Error(`route ${route.method} ${route.url} takes a ${access.credential} but does not document it (schema.security)`);
    }
  });

  const authenticate = async (req: FastifyRequest): Promise<Principal> => {
    const token = bearerToken(req);
    if (!token) throw ApiError.unauthorized();
    const verified = await tokens.verify(token);
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
    if (typeof access === 'object') {
      const token = bearerToken(req);
      if (!token) throw ApiError.unauthorized(`missing bearer token (${access.credential})`);
      await access.verify(token, req);
      return;
    }
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

/** The token of an `Authorization: Bearer <token>` header, if the request has one. */
export function bearerToken(req: FastifyRequest): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
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
