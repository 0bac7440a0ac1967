// `marina cluster join-token create|list|revoke` and `marina cluster approve`: letting users'
// servers join a cluster's import pool.
import { Command, Option } from 'commander';
import type { Machine } from '../../api/kinds.js';
import { ANNOTATION_APPROVAL, ANNOTATION_APPROVED } from '../../api/wellknown.js';
import { resourceRef } from '../../client/index.js';
import { about, CliError, EXIT } from '../errors.js';
import { formatTable, humanDuration } from '../output.js';
import { err, out, parseDuration, Session } from '../session.js';
import { outputOption, projectOption } from './resources.js';

export function joinTokenCommand(): Command {
  const cmd = new Command('join-token').description("tokens that let users' own servers join a cluster's import pool as workers");

  cmd
    .command('create')
    .description('create a join token; prints the one command to run on the server (the token is never shown again)')
    .argument('<cluster>')
    .requiredOption('--pool <pool>', 'the import pool the server joins (provider: import)')
    .addOption(new Option('--ttl <duration>', 'how long the token is valid').default(parseDuration('1h'), '1h').argParser(parseDuration))
    .option('--single-use', 'refuse the token after one server joined with it')
    .option('--approval', "servers joining with it wait for an operator's `marina cluster approve`")
    .option('--description <text>', 'what the token is for')
    .addOption(projectOption())
    .action(async (cluster: string, opts: { pool: string; ttl: number; singleUse?: boolean; approval?: boolean; description?: string; project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      if (opts.ttl < 1000) throw new CliError('--ttl must be at least 1s', EXIT.usage);
      const created = await about({ kind: 'Cluster', name: cluster }, () =>
        s.client.createJoinToken(project, cluster, {
          pool: opts.pool,
          ttlSeconds: Math.round(opts.ttl / 1000),
          ...(opts.singleUse ? { singleUse: true } : {}),
          ...(opts.approval ? { approval: true } : {}),
          ...(opts.description ? { description: opts.description } : {}),
        }),
      );
      err(
        `join token ${created.id} for pool ${created.pool} of cluster ${cluster}, valid until ${created.expiresAt}${created.singleUse ? ', single use' : ''}${created.approval ? ', joins wait for approval' : ''}. Run on the server (as root):`,
      );
      out(`${created.command}\n`);
    });

  cmd
    .command('list')
    .alias('ls')
    .description("a cluster's join tokens (never their secrets)")
    .argument('<cluster>')
    .addOption(outputOption('table|json'))
    .addOption(projectOption())
    .action(async (cluster: string, opts: { output: string; project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const items = await about({ kind: 'Cluster', name: cluster }, () => s.client.listJoinTokens(project, cluster));
      if (opts.output === 'json') return out(`${JSON.stringify({ items }, null, 2)}\n`);
      const now = Date.now();
      out(
        formatTable(
          ['ID', 'POOL', 'FOR-MACHINE', 'STATE', 'EXPIRES', 'SINGLE-USE', 'APPROVAL', 'USED-BY', 'CREATED-BY'],
          items.map((t) => [
            t.id,
            t.pool,
            t.machine?.name ?? '-',
            t.state,
            Date.parse(t.expiresAt) > now ? `in ${humanDuration(Date.parse(t.expiresAt) - now)}` : `${humanDuration(now - Date.parse(t.expiresAt))} ago`,
            t.singleUse ? 'yes' : 'no',
            t.approval ? 'yes' : 'no',
            t.usedBy.join(',') || '-',
            t.createdBy,
          ]),
        ),
      );
    });

  cmd
    .command('revoke')
    .description('revoke a join token (servers that joined with it stay)')
    .argument('<cluster>')
    .argument('<id>', 'the token id (the part before the dot)')
    .addOption(projectOption())
    .action(async (cluster: string, id: string, opts: { project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const t = await about({ kind: 'Cluster', name: cluster }, () => s.client.revokeJoinToken(project, cluster, id.split('.')[0]!));
      out(`join token ${t.id} of cluster ${cluster} revoked\n`);
    });
  return cmd;
}

export function approveCommand(): Command {
  return new Command('approve')
    .description('admit a server that joined with a token asking for approval (its Node may then join)')
    .argument('<cluster>')
    .argument('<machine>')
    .addOption(projectOption())
    .action(async (cluster: string, machine: string, opts: { project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const ref = resourceRef('Machine');
      const m = await about({ kind: 'Machine', name: machine }, () => s.client.get<Machine>(ref, machine, project));
      if (m.spec.cluster !== cluster) throw new CliError(`machine ${machine} belongs to cluster ${m.spec.cluster}, not ${cluster}`, EXIT.notFound);
      if (m.metadata.annotations?.[ANNOTATION_APPROVAL] !== 'required') {
        out(`machine ${machine} needs no approval\n`);
        return;
      }
      await s.client.patch(ref, machine, project, { metadata: { annotations: { [ANNOTATION_APPROVED]: 'true' } } });
      out(`machine ${machine} approved; its Node joins cluster ${cluster} now\n`);
    });
}
