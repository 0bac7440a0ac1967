// Identity and tenancy: login/logout/config/whoami, projects, users, tokens, the audit log.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { stringify as toYaml } from 'yaml';
import type { Project, Role, User } from '../../api/kinds.js';
import { API_VERSION, MarinaClient, resourceRef } from '../../client/index.js';
import { parseKeyValues } from '../cluster.js';
import {
  configPath,
  contextNameFor,
  findContext,
  loadConfig,
  normalizeServer,
  readCaFile,
  saveConfig,
  upsertContext,
  type Context,
} from '../config.js';
import { about, CliError, EXIT } from '../errors.js';
import { fetchTrusting } from '../https-fetch.js';
import { objectRef } from '../kinds.js';
import { formatTable, parseOutputFormat } from '../output.js';
import { collect, connectionFlags, err, intArg, out, parseDuration, Session, USER_AGENT } from '../session.js';
import { getObjects, outputOption, projectOption } from './resources.js';

/** Prints `v` as JSON or YAML, or calls `table()` for the human form. */
function printAs(format: string, v: unknown, table: () => string): void {
  if (format === 'json') out(JSON.stringify(v, null, 2) + '\n');
  else if (format === 'yaml') out(toYaml(v));
  else out(table());
}

// ---------- login / logout / config / whoami ----------

export function loginCommand(): Command {
  return new Command('login')
    .description('check a token against a server and save both as a context (the current one)')
    .argument('[url]', 'server URL (default: --server, MARINA_URL or http://127.0.0.1:7443)')
    .option('--token-file <path>', 'read the token from a file (e.g. <data-dir>/admin-token)')
    .option('--name <context>', 'context name (default: derived from the URL)')
    .option('--project <project>', 'default project for this context')
    .option('--certificate-authority <file>', "trust this CA for the server (Marina's own: <data-dir>/tls/ca.crt); saved in the context")
    .addHelpText('after', '\nThe token comes from --token, --token-file or MARINA_TOKEN. `--context NAME` also names the context.')
    .action(async (url: string | undefined, opts: { tokenFile?: string; name?: string; project?: string; certificateAuthority?: string }, cmd: Command) => {
      const g = connectionFlags(cmd);
      const server = normalizeServer(url ?? g.server ?? process.env.MARINA_URL ?? 'http://127.0.0.1:7443');
      let token = g.token ?? (opts.tokenFile ? readFileSync(opts.tokenFile, 'utf8').trim() : undefined) ?? process.env.MARINA_TOKEN;
      if (!token) throw new CliError('login needs a token: --token T, --token-file PATH or MARINA_TOKEN', EXIT.usage);
      token = token.trim();
      const ca = opts.certificateAuthority ? readCaFile(opts.certificateAuthority) : process.env.MARINA_CA_FILE ? readCaFile(process.env.MARINA_CA_FILE) : undefined;
      const client = new MarinaClient({ server, token, userAgent: USER_AGENT, ...(ca ? { fetch: fetchTrusting(ca) } : {}) });
      const me = await client.whoami();
      const path = configPath();
      let cfg = loadConfig(path);
      const name = opts.name ?? g.context ?? contextNameFor(server);
      const ctx: Context = { name, server, token, user: me.user, ...(ca ? { certificateAuthority: ca } : {}) };
      const project = opts.project ?? (me.projects.length === 1 ? me.projects[0]!.name : findContext(cfg, name)?.project);
      if (project) ctx.project = project;
      cfg = upsertContext(cfg, ctx);
      cfg['current-context'] = name;
      saveConfig(cfg, path);
      out(`Logged in to ${server} as ${me.user}${me.platformAdmin ? ' (platform admin)' : ''}; context "${name}" saved in ${path}\n`);
    });
}

export function logoutCommand(): Command {
  return new Command('logout')
    .description('forget the token of a context (default: the current one)')
    .argument('[context]', 'context name')
    .action((name: string | undefined, _opts: unknown, cmd: Command) => {
      const g = connectionFlags(cmd);
      const path = configPath();
      const cfg = loadConfig(path);
      const target = name ?? g.context ?? cfg['current-context'];
      if (!target || !findContext(cfg, target)) throw new CliError(target ? `no context ${JSON.stringify(target)}` : 'not logged in', EXIT.notFound);
      cfg.contexts = cfg.contexts.filter((c) => c.name !== target);
      if (cfg['current-context'] === target) delete cfg['current-context'];
      saveConfig(cfg, path);
      out(`Logged out: removed context "${target}"\n`);
    });
}

export function configCommand(): Command {
  const cmd = new Command('config').description('contexts of the CLI config file ($MARINA_CONFIG or ~/.config/marina/config.yaml)');
  cmd
    .command('use-context')
    .description('make a context the current one')
    .argument('<name>')
    .action((name: string) => {
      const path = configPath();
      const cfg = loadConfig(path);
      if (!findContext(cfg, name)) throw new CliError(`no context ${JSON.stringify(name)}; known: ${cfg.contexts.map((c) => c.name).join(', ') || '<none>'}`, EXIT.notFound);
      cfg['current-context'] = name;
      saveConfig(cfg, path);
      out(`Switched to context "${name}".\n`);
    });
  cmd
    .command('get-contexts')
    .description('list contexts')
    .action(() => {
      const cfg = loadConfig();
      out(
        formatTable(
          ['CURRENT', 'NAME', 'SERVER', 'USER', 'PROJECT'],
          cfg.contexts.map((c) => [c.name === cfg['current-context'] ? '*' : '', c.name, c.server, c.user ?? '', c.project ?? '']),
        ),
      );
    });
  cmd
    .command('current-context')
    .description('print the current context name')
    .action(() => {
      const cur = loadConfig()['current-context'];
      if (!cur) throw new CliError('no current context; run `marina login`', EXIT.notFound);
      out(`${cur}\n`);
    });
  cmd
    .command('set-context')
    .description('change a context (default: the current one)')
    .argument('[name]')
    .option('--project <project>', 'default project ("" clears it)')
    .option('--server <url>', 'server URL')
    .action((name: string | undefined, opts: { project?: string; server?: string }) => {
      const path = configPath();
      const cfg = loadConfig(path);
      const target = name ?? cfg['current-context'];
      const ctx = target ? findContext(cfg, target) : undefined;
      if (!ctx) throw new CliError(target ? `no context ${JSON.stringify(target)}` : 'no current context; run `marina login`', EXIT.notFound);
      const server = opts.server;
      if (opts.project !== undefined) {
        if (opts.project === '') delete ctx.project;
        else ctx.project = opts.project;
      }
      if (server) ctx.server = normalizeServer(server);
      saveConfig(cfg, path);
      out(`Context "${ctx.name}" modified.\n`);
    });
  cmd
    .command('view')
    .description('print the config with tokens redacted')
    .option('--raw', 'show tokens')
    .action((opts: { raw?: boolean }) => {
      const cfg = loadConfig();
      if (!opts.raw) cfg.contexts = cfg.contexts.map((c) => ({ ...c, ...(c.token ? { token: 'REDACTED' } : {}) }));
      out(toYaml(cfg));
    });
  return cmd;
}

export function whoamiCommand(): Command {
  return new Command('whoami')
    .description('show the user behind the token and its projects')
    .addOption(outputOption('table|json|yaml'))
    .action(async (opts: { output: string }, cmd: Command) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const s = Session.of(cmd);
      const me = await s.client.whoami();
      printAs(format, me, () => {
        let text = `User:      ${me.user}${me.platformAdmin ? ' (platform admin)' : ''}\nServer:    ${s.connection.server}\n`;
        if (s.connection.contextName) text += `Context:   ${s.connection.contextName}\n`;
        text += `Projects:  ${me.projects.length === 0 ? '<none>' : me.projects.map((p) => `${p.name} (${p.role})`).join(', ')}\n`;
        return text;
      });
    });
}

// ---------- projects & users ----------

const ROLES: readonly Role[] = ['admin', 'operator', 'member', 'viewer'];

/** `alice=admin` → a member; usage error for a bad role. */
export function parseMembers(values: string[]): { user: string; role: Role }[] {
  return Object.entries(parseKeyValues(values, 'member')).map(([user, role]) => {
    if (!ROLES.includes(role as Role)) throw new CliError(`member ${user}: unknown role ${JSON.stringify(role)}; roles: ${ROLES.join(', ')}`, EXIT.usage);
    return { user, role: role as Role };
  });
}

export function buildProject(name: string, members: { user: string; role: Role }[], displayName?: string): Project {
  const spec: Project['spec'] = { members };
  if (displayName) spec.displayName = displayName;
  return { apiVersion: API_VERSION as Project['apiVersion'], kind: 'Project', metadata: { name }, spec };
}

export function buildUser(name: string, platformAdmin: boolean, displayName?: string): User {
  const spec: User['spec'] = {};
  if (platformAdmin) spec.platformAdmin = true;
  if (displayName) spec.displayName = displayName;
  return { apiVersion: API_VERSION as User['apiVersion'], kind: 'User', metadata: { name }, spec };
}

export function projectCommand(): Command {
  const cmd = new Command('project').description('projects (tenants)');
  cmd
    .command('create')
    .description('create a project')
    .argument('<name>')
    .option('--member <user=role>', 'member and role (admin|operator|member|viewer); repeatable', collect, [])
    .option('--display-name <text>')
    .action(async (name: string, opts: { member: string[]; displayName?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = buildProject(name, parseMembers(opts.member), opts.displayName);
      await about({ kind: 'Project', name }, () => s.client.create(project));
      out(`${objectRef('Project', name)} created\n`);
    });
  cmd
    .command('list')
    .alias('ls')
    .description('list the projects you can see')
    .addOption(outputOption())
    .action(async (opts: { output: string }, sub: Command) => {
      await getObjects(Session.of(sub), resourceRef('Project'), [], { output: opts.output });
    });
  return cmd;
}

export function userCommand(): Command {
  const cmd = new Command('user').description('users (platform admins only)');
  cmd
    .command('create')
    .description('create a user; then issue a token with `marina token create --user NAME`')
    .argument('<name>')
    .option('--platform-admin', 'may manage users and every project')
    .option('--display-name <text>')
    .action(async (name: string, opts: { platformAdmin?: boolean; displayName?: string }, sub: Command) => {
      const s = Session.of(sub);
      await about({ kind: 'User', name }, () => s.client.create(buildUser(name, opts.platformAdmin === true, opts.displayName)));
      out(`${objectRef('User', name)} created\n`);
    });
  cmd
    .command('list')
    .alias('ls')
    .description('list users')
    .addOption(outputOption())
    .action(async (opts: { output: string }, sub: Command) => {
      await getObjects(Session.of(sub), resourceRef('User'), [], { output: opts.output });
    });
  return cmd;
}

// ---------- tokens ----------

export function tokenCommand(): Command {
  const cmd = new Command('token').description('API tokens (the secret is shown once, at creation)');
  cmd
    .command('create')
    .description('issue a token (for yourself, or with --user for another user: platform admins)')
    .option('--user <user>', 'owner of the token')
    .option('--description <text>')
    .addOption(new Option('--expires-in <duration>', 'lifetime, e.g. 30d, 12h').argParser(parseDuration))
    .option('--expires-at <time>', 'RFC 3339 expiry time')
    .addOption(new Option('-o, --output <format>', 'table|json|yaml|token (just the secret)').default('table'))
    .action(async (opts: { user?: string; description?: string; expiresIn?: number; expiresAt?: string; output: string }, sub: Command) => {
      const format = opts.output === 'token' ? 'token' : parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      if (opts.expiresIn !== undefined && opts.expiresAt) throw new CliError('give --expires-in or --expires-at, not both', EXIT.usage);
      const expiresAt = opts.expiresIn !== undefined ? new Date(Date.now() + opts.expiresIn).toISOString() : opts.expiresAt;
      const s = Session.of(sub);
      const issued = await s.client.createToken({ user: opts.user, description: opts.description, expiresAt });
      if (format === 'token') {
        out(`${issued.token}\n`);
        return;
      }
      printAs(format, issued, () => formatTable(['ID', 'TOKEN'], [[issued.id, issued.token]]));
      if (format === 'table') err('Store the token now: it cannot be shown again.');
    });
  cmd
    .command('list')
    .alias('ls')
    .description('list tokens (yours; platform admins see all)')
    .addOption(outputOption('table|json|yaml'))
    .action(async (opts: { output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const s = Session.of(sub);
      const tokens = await s.client.listTokens();
      printAs(format, { items: tokens }, () =>
        tokens.length === 0
          ? ''
          : formatTable(
              ['ID', 'USER', 'DESCRIPTION', 'CREATED', 'EXPIRES'],
              tokens.map((t) => [t.id, t.user, t.description ?? '', t.createdAt ?? '', t.expiresAt ?? 'never']),
            ),
      );
      if (format === 'table' && tokens.length === 0) err('No tokens found.');
    });
  cmd
    .command('revoke')
    .description('revoke a token by id')
    .argument('<ids...>')
    .action(async (ids: string[], _opts: unknown, sub: Command) => {
      const s = Session.of(sub);
      for (const id of ids) {
        await s.client.revokeToken(id);
        out(`token ${id} revoked\n`);
      }
    });
  return cmd;
}

// ---------- audit ----------

export function auditCommand(): Command {
  return new Command('audit')
    .description('the audit log, newest first (whole log: platform admins; -p: project admins)')
    .addOption(projectOption())
    .option('--user <user>', 'only this user\'s requests')
    .option('--kind <kind>', 'only this kind (e.g. Cluster)')
    .addOption(new Option('--limit <n>', 'at most n entries').default(50).argParser(intArg(1, 10_000)))
    .addOption(outputOption('table|json|yaml'))
    .action(async (opts: { project?: string; user?: string; kind?: string; limit: number; output: string }, cmd: Command) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const s = Session.of(cmd);
      const items = await s.client.audit({ project: opts.project, user: opts.user, kind: opts.kind, limit: opts.limit });
      printAs(format, { items }, () =>
        items.length === 0
          ? ''
          : formatTable(
              ['TIME', 'USER', 'VERB', 'KIND', 'PROJECT', 'NAME', 'GEN', 'CODE'],
              items.map((e) => [e.time, e.user, e.verb, e.kind, e.project || '-', e.name, e.generation === undefined ? '-' : String(e.generation), e.code === undefined ? '-' : String(e.code)]),
            ),
      );
      if (format === 'table' && items.length === 0) err('No audit entries found.');
    });
}

/** Every command of this module, in help order. */
export function accountCommands(): Command[] {
  return [loginCommand(), logoutCommand(), configCommand(), whoamiCommand(), projectCommand(), userCommand(), tokenCommand(), auditCommand()];
}
