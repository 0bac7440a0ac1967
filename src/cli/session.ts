// What every command needs: the connection (flags > env > config), a client, the project, and
// small parsing helpers for flags.
import { InvalidArgumentError, type Command } from 'commander';
import { MarinaClient, type ResourceRef } from '../client/index.js';
import { configPath, loadConfig, resolveConnection, type CliConfig, type Connection, type ConnectionFlags } from './config.js';
import { CliError, EXIT } from './errors.js';
import { fetchTrusting } from './https-fetch.js';

export const USER_AGENT = 'marina-cli/0.1';

export class Session {
  private cachedClient?: MarinaClient;
  readonly config: CliConfig;
  readonly connection: Connection;

  constructor(readonly flags: ConnectionFlags, readonly env: NodeJS.ProcessEnv = process.env) {
    this.config = loadConfig(configPath(env));
    this.connection = resolveConnection(this.config, flags, env);
  }

  /** Session from a command's own and inherited (global) options. */
  static of(cmd: Command): Session {
    return new Session(connectionFlags(cmd));
  }

  get client(): MarinaClient {
    if (!this.cachedClient) {
      if (!this.connection.token) {
        throw new CliError(
          `no token for ${this.connection.server}: log in with \`marina login ${this.connection.server} --token T\`, or pass --token / set MARINA_TOKEN`,
          EXIT.unauthorized,
        );
      }
      const ca = this.connection.ca;
      this.cachedClient = new MarinaClient({ server: this.connection.server, token: this.connection.token, userAgent: USER_AGENT, ...(ca ? { fetch: fetchTrusting(ca) } : {}) });
    }
    return this.cachedClient;
  }

  /**
   * The project for a project-scoped command: -p, else MARINA_PROJECT / the context's project,
   * else the caller's only project (from whoami; for a platform admin who is no member anywhere,
   * the only project there is). Usage error when it stays ambiguous.
   */
  async project(flag: string | undefined): Promise<string> {
    if (flag) return flag;
    if (this.connection.project) return this.connection.project;
    const me = await this.client.whoami();
    if (me.projects.length === 1) return me.projects[0]!.name;
    if (me.projects.length === 0 && me.platformAdmin) {
      const all = await this.client.list('Project', { limit: 2 });
      if (all.items.length === 1 && !all.metadata.continue) return all.items[0]!.metadata.name;
    }
    const hint = me.projects.length > 0 ? ` (yours: ${me.projects.map((p) => p.name).join(', ')})` : '';
    throw new CliError(`no project given: pass -p PROJECT${hint}, or set a default with \`marina config set-context --project P\``, EXIT.usage);
  }

  /** Project for `ref` (undefined for global kinds). */
  async projectFor(ref: ResourceRef, flag: string | undefined): Promise<string | undefined> {
    return ref.scope === 'project' ? this.project(flag) : undefined;
  }
}

/** The connection flags are on the root and on every leaf command; the one nearest the leaf wins. */
export const CONNECTION_FLAGS = ['server', 'token', 'context'] as const;

export function connectionFlags(cmd: Command): ConnectionFlags {
  const flags: ConnectionFlags = {};
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.opts() as ConnectionFlags;
    for (const k of CONNECTION_FLAGS) if (flags[k] === undefined && typeof o[k] === 'string') flags[k] = o[k];
  }
  return flags;
}

// ---------- flag parsers (commander `argParser`s: throw InvalidArgumentError → exit 2) ----------

export function intArg(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`not an integer: ${v}`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
    return n;
  };
}

/** Repeatable option: `--member a=admin --member b=viewer`. */
export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** `90s`, `10m`, `1h30m`, `2d`, `500ms`; a plain number is seconds. */
export function parseDuration(v: string): number {
  const t = v.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    const n = Number(m[1]);
    total += n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
    pos = re.lastIndex;
  }
  if (pos !== t.length || t.length === 0) throw new InvalidArgumentError(`not a duration: ${v} (use e.g. 90s, 10m, 1h30m)`);
  return Math.round(total);
}

/** Writes to stdout (main.ts turns a closed pipe, as in `marina get | head`, into a quiet exit). */
export function out(text: string): void {
  process.stdout.write(text);
}

export function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}
