// `marina alerts` and `marina channel ...`: what Marina noticed, and where it tells you.
import { Command, Option } from 'commander';
import type { Alert, NotificationChannel } from '../../api/kinds.js';
import { API_VERSION, resourceRef } from '../../client/index.js';
import { about } from '../errors.js';
import { objectRef } from '../kinds.js';
import { formatResources, parseOutputFormat } from '../output.js';
import { collect, err, out, Session } from '../session.js';
import { deleteOne, eachName, getObjects, outputOption, projectOption } from './resources.js';

const ALERT = resourceRef('Alert');
const CHANNEL = resourceRef('NotificationChannel');
const SEVERITIES = ['critical', 'warning', 'info'];

interface AlertsOpts {
  project?: string;
  allProjects?: boolean;
  state?: 'firing' | 'resolved';
  cluster?: string;
  rule?: string;
  output: string;
}

/** Firing first; within a state, the most recent start first. */
export function sortAlerts(items: Alert[]): Alert[] {
  const rank = (a: Alert) => (a.status?.state === 'firing' ? 0 : 1);
  return [...items].sort(
    (a, b) =>
      rank(a) - rank(b) ||
      (Date.parse(b.status?.startsAt ?? '') || 0) - (Date.parse(a.status?.startsAt ?? '') || 0) ||
      (a.metadata.project ?? '').localeCompare(b.metadata.project ?? '') ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

export function filterAlerts(items: Alert[], f: { state?: string; cluster?: string; rule?: string }): Alert[] {
  return items.filter(
    (a) =>
      (!f.state || a.status?.state === f.state) &&
      (!f.cluster || a.spec.cluster === f.cluster) &&
      (!f.rule || a.spec.rule.toLowerCase() === f.rule.toLowerCase()),
  );
}

export function alertsCommand(): Command {
  return new Command('alerts')
    .description('alerts of a project, firing first: NAME CLUSTER RULE SEVERITY STATE STARTED ENDED SUMMARY')
    .addOption(projectOption())
    .option('-A, --all-projects', 'alerts of every project you can see')
    .addOption(new Option('--state <state>', 'only firing or only resolved alerts').choices(['firing', 'resolved']))
    .option('--cluster <name>', 'only alerts about this cluster')
    .option('--rule <rule>', 'only this rule, e.g. NodeConditionUnhealthy')
    .addOption(outputOption())
    .addHelpText('after', '\nDetails and the delivery log of one alert: marina describe alert NAME')
    .action(async (opts: AlertsOpts, cmd: Command) => {
      const format = parseOutputFormat(opts.output);
      const s = Session.of(cmd);
      const project = opts.allProjects ? undefined : await s.project(opts.project);
      const list = await s.client.listAll<Alert>(ALERT, { project });
      const items = sortAlerts(filterAlerts(list.items, opts));
      if (format === 'table' && items.length === 0) {
        err(`No ${opts.state ? `${opts.state} ` : ''}alerts found${project ? ` in project ${project}` : ''}.`);
        return;
      }
      out(formatResources(format, 'Alert', items, { withProject: opts.allProjects === true, resourceVersion: list.metadata.resourceVersion }));
    });
}

export interface ChannelFlags {
  type: 'webhook' | 'slack';
  url: string;
  rule: string[];
  minSeverity?: string;
  sendResolved: boolean;
}

export function buildChannel(name: string, project: string, f: ChannelFlags): NotificationChannel {
  const spec: NotificationChannel['spec'] = { type: f.type, url: f.url };
  if (f.sendResolved === false) spec.sendResolved = false;
  if (f.rule.length > 0) spec.rules = [...new Set(f.rule)];
  if (f.minSeverity) spec.minSeverity = f.minSeverity as NotificationChannel['spec']['minSeverity'];
  return { apiVersion: API_VERSION as NotificationChannel['apiVersion'], kind: 'NotificationChannel', metadata: { name, project }, spec };
}

export function channelCommand(): Command {
  const cmd = new Command('channel').alias('channels').description('notification channels: where the alerts of a project are sent');
  cmd
    .command('create')
    .description('create a channel (project admins); alerts are POSTed to its URL as they fire and resolve')
    .argument('<name>')
    .addOption(projectOption())
    .addOption(
      new Option('--type <type>', 'webhook: Alertmanager webhook payload (version 4); slack: Slack-compatible incoming webhook')
        .choices(['webhook', 'slack'])
        .makeOptionMandatory(),
    )
    .requiredOption('--url <url>', 'http(s) URL to POST to; user:password@ becomes Basic auth')
    .option('--rule <rule>', 'only alerts of this rule, e.g. HealingHeldBack; repeatable (default: all rules)', collect, [])
    .addOption(new Option('--min-severity <severity>', 'only alerts at least this severe').choices(SEVERITIES))
    .option('--no-send-resolved', 'do not notify when an alert resolves')
    .action(async (name: string, opts: ChannelFlags & { project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      await about({ kind: 'NotificationChannel', name }, () => s.client.create(buildChannel(name, project, opts), project));
      out(`${objectRef('NotificationChannel', name)} created in project ${project}\n`);
    });
  cmd
    .command('list')
    .alias('ls')
    .description('list channels with their delivery counts (project members)')
    .addOption(projectOption())
    .option('-A, --all-projects', 'channels of every project you can see')
    .addOption(outputOption())
    .action(async (opts: { project?: string; allProjects?: boolean; output: string }, sub: Command) => {
      await getObjects(Session.of(sub), CHANNEL, [], opts);
    });
  cmd
    .command('delete')
    .description('delete channels (project admins)')
    .argument('<names...>')
    .addOption(projectOption())
    .option('--ignore-not-found', 'succeed when the channel does not exist')
    .action(async (names: string[], opts: { project?: string; ignoreNotFound?: boolean }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      await eachName(names, (name) => deleteOne(s.client, CHANNEL, name, project, { ...opts, timeout: 0 }));
    });
  return cmd;
}
