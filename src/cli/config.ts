// The CLI's configuration file, shaped like a kubeconfig: named contexts (server URL, token,
// default project) and the current one. `$MARINA_CONFIG` or `${XDG_CONFIG_HOME:-~/.config}/marina/config.yaml`,
// written with mode 0600 because it holds bearer tokens.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { CliError, EXIT } from './errors.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:7443';

export interface Context {
  name: string;
  server: string;
  token?: string;
  /** Project used when a command gets no -p. */
  project?: string;
  /** The user the token belonged to at login (informational). */
  user?: string;
  /** PEM of the CA the server's certificate chains to (Marina's own with --tls auto). */
  certificateAuthority?: string;
}

export interface CliConfig {
  apiVersion: string;
  kind: 'Config';
  'current-context'?: string;
  contexts: Context[];
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MARINA_CONFIG) return env.MARINA_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'marina', 'config.yaml');
}

export function emptyConfig(): CliConfig {
  return { apiVersion: 'marina.dev/v1alpha1', kind: 'Config', contexts: [] };
}

export function loadConfig(path: string = configPath()): CliConfig {
  if (!existsSync(path)) return emptyConfig();
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read the CLI config ${path}: ${(err as Error).message}`, EXIT.error);
  }
  if (raw === null || raw === undefined) return emptyConfig();
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new CliError(`the CLI config ${path} is not a YAML mapping`, EXIT.error);
  const r = raw as Partial<CliConfig>;
  const contexts = Array.isArray(r.contexts) ? r.contexts.filter((c): c is Context => typeof c?.name === 'string' && typeof c.server === 'string') : [];
  const cfg: CliConfig = { ...emptyConfig(), contexts };
  if (typeof r['current-context'] === 'string') cfg['current-context'] = r['current-context'];
  return cfg;
}

export function saveConfig(cfg: CliConfig, path: string = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, toYaml(cfg), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function findContext(cfg: CliConfig, name: string): Context | undefined {
  return cfg.contexts.find((c) => c.name === name);
}

/** Adds or replaces a context by name. */
export function upsertContext(cfg: CliConfig, ctx: Context): CliConfig {
  const contexts = cfg.contexts.filter((c) => c.name !== ctx.name);
  contexts.push(ctx);
  return { ...cfg, contexts };
}

/** `http://127.0.0.1:7443/` → `127.0.0.1-7443`, a default context name. */
export function contextNameFor(server: string): string {
  try {
    const u = new URL(server);
    return `${u.hostname}${u.port ? `-${u.port}` : ''}`.replace(/[^A-Za-z0-9._-]/g, '-');
  } catch {
    return 'default';
  }
}

export function normalizeServer(server: string): string {
  let s = server.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = `http://${s}`;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new CliError(`not a server URL: ${JSON.stringify(server)}`, EXIT.usage);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError(`server URL must be http or https: ${server}`, EXIT.usage);
  return s.replace(/\/+$/, '');
}

/** Global flags that override the config file. */
export interface ConnectionFlags {
  server?: string;
  token?: string;
  context?: string;
}

export interface Connection {
  server: string;
  token?: string;
  /** PEM of an extra CA to trust: MARINA_CA_FILE, else the context's. */
  ca?: string;
  project?: string;
  contextName?: string;
}

/**
 * Where to connect, by precedence: flags (--server, --token, --context), then the environment
 * (MARINA_URL, MARINA_TOKEN, MARINA_PROJECT, MARINA_CONTEXT), then the selected context, then the default server.
 */
export function resolveConnection(cfg: CliConfig, flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Connection {
  const ctxName = flags.context ?? env.MARINA_CONTEXT ?? cfg['current-context'];
  let ctx: Context | undefined;
  if (ctxName !== undefined) {
    ctx = findContext(cfg, ctxName);
    if (!ctx && (flags.context ?? env.MARINA_CONTEXT)) {
      throw new CliError(`no context ${JSON.stringify(ctxName)} in ${configPath(env)}; see \`marina config get-contexts\``, EXIT.usage);
    }
  }
  const server = normalizeServer(flags.server ?? env.MARINA_URL ?? ctx?.server ?? DEFAULT_SERVER);
  // A token from the config belongs to that context's server; do not send it to another one.
  const ctxToken = ctx && normalizeServer(ctx.server) === server ? ctx.token : undefined;
  const ctxCa = ctx && normalizeServer(ctx.server) === server ? ctx.certificateAuthority : undefined;
  const ca = env.MARINA_CA_FILE ? readCaFile(env.MARINA_CA_FILE) : ctxCa;
  return {
    server,
    ...(ca ? { ca } : {}),
    token: flags.token ?? env.MARINA_TOKEN ?? ctxToken,
    project: env.MARINA_PROJECT ?? ctx?.project,
    contextName: ctx?.name,
  };
}

/** A PEM CA file (MARINA_CA_FILE, --certificate-authority). */
export function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the CA file ${path}: ${(err as Error).message}`, EXIT.usage);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`${path} holds no PEM certificate`, EXIT.usage);
  return pem;
}
