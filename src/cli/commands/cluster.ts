// `marina cluster ...`: the common cluster workflows in one place.
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Cluster } from '../../api/kinds.js';
import { resourceRef } from '../../client/index.js';
import { parseDocuments, prepareObject } from '../apply.js';
import { buildCluster, followCluster, parseKeyValues, scalePool } from '../cluster.js';
import { about, CliError, EXIT } from '../errors.js';
import { objectRef } from '../kinds.js';
import { formatTable, humanDuration } from '../output.js';
import { collect, err, intArg, out, parseDuration, Session } from '../session.js';
import { addClusterOperationCommands } from './operations.js';
import { deleteOne, eachName, getObjects, outputOption, projectOption } from './resources.js';
import { approveCommand, joinTokenCommand } from './join.js';

const CLUSTER = resourceRef('Cluster');

interface CreateOpts {
  project?: string;
  version?: string;
  provider?: string;
  etcd: number;
  controlplanes: number;
  workers: number;
  podCidr?: string;
  serviceCidr?: string;
  label: string[];
  wait: boolean;
  timeout: number;
  filename?: string;
}

function timeoutOption(def: string): Option {
  return new Option('--timeout <duration>', 'how long to wait').default(parseDuration(def), def).argParser(parseDuration);
}

/**
 * Runs `fn` with a signal that aborts on Ctrl-C / SIGTERM; an interrupted wait leaves the
 * operation running on the server and says so.
 */
async function interruptible(note: string, fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await fn(ctl.signal);
  } catch (e) {
    if (ctl.signal.aborted) throw new CliError(`interrupted; ${note}`, 130);
    throw e;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Follows a cluster until it is Ready at (at least) the generation of `cluster`, printing progress. */
function waitUntilReady(s: Session, project: string, cluster: Cluster, timeoutMs: number, start: number, note: string): Promise<void> {
  return interruptible(note, (signal) =>
    followCluster({
      client: s.client,
      project,
      name: cluster.metadata.name,
      until: 'ready',
      initial: cluster,
      resourceVersion: cluster.metadata.resourceVersion,
      minGeneration: cluster.metadata.generation ?? 1,
      timeoutMs,
      start,
      print: (l) => out(`${l}\n`),
      signal,
    }),
  );
}

export function clusterCommand(): Command {
  const cmd = new Command('cluster').alias('clusters').description('create, inspect, scale and delete clusters');

  cmd
    .command('create')
    .description('create a cluster with pools etcd, controlplane and workers, and follow it until Ready')
    .argument('<name>')
    .addOption(projectOption())
    .option('--version <version>', 'Kubernetes version, e.g. v1.36.3 (default: the server\'s newest)')
    .option('--provider <provider>', 'local|openstack|import|sim (default: local)')
    .addOption(new Option('--etcd <n>', 'etcd members (odd)').default(3).argParser(intArg(0, 500)))
    .addOption(new Option('--controlplanes <n>', 'control-plane machines').default(1).argParser(intArg(0, 500)))
    .addOption(new Option('--workers <n>', 'worker machines').default(2).argParser(intArg(0, 500)))
    .option('--pod-cidr <cidr>', 'pod network (default 10.244.0.0/16)')
    .option('--service-cidr <cidr>', 'service network (default 10.96.0.0/16)')
    .option('--label <key=value>', 'cluster label; repeatable', collect, [])
    .option('-f, --filename <file>', 'take the Cluster from a YAML/JSON file (flags given explicitly override it)')
    .option('--wait', 'follow progress until the cluster is Ready (default)', true)
    .option('--no-wait', 'return once the cluster is accepted')
    .addOption(timeoutOption('15m'))
    .action(async (name: string, opts: CreateOpts, sub: Command) => {
      const start = Date.now();
      const s = Session.of(sub);
      const explicit = (flag: string) => sub.getOptionValueSource(flag) === 'cli';
      let cluster: Cluster;
      if (opts.filename) {
        const text = readFileSync(opts.filename === '-' ? 0 : opts.filename, 'utf8');
        const docs = parseDocuments(text, opts.filename).filter((d) => d.object.kind === 'Cluster');
        if (docs.length !== 1) throw new CliError(`${opts.filename}: expected exactly one Cluster, found ${docs.length}`, EXIT.invalid);
        const project = opts.project ?? (docs[0]!.object.metadata.project || undefined) ?? (await s.project(undefined));
        cluster = prepareObject(docs[0]!, project) as Cluster;
        cluster.metadata.name = name;
        if (opts.project) cluster.metadata.project = opts.project;
        const flags = buildCluster({ ...opts, name, project, labels: parseKeyValues(opts.label), podCIDR: opts.podCidr, serviceCIDR: opts.serviceCidr });
        if (explicit('version')) cluster.spec.kubernetesVersion = flags.spec.kubernetesVersion;
        if (explicit('provider')) cluster.spec.provider = flags.spec.provider;
        const pools = ['etcd', 'controlplanes', 'workers'] as const;
        pools.forEach((flag, i) => {
          if (!explicit(flag)) return;
          const want = flags.spec.nodePools[i]!;
          const at = cluster.spec.nodePools.findIndex((p) => p.name === want.name);
          if (at >= 0) cluster.spec.nodePools[at]!.replicas = want.replicas;
          else cluster.spec.nodePools.push(want);
        });
        if (opts.label.length > 0) cluster.metadata.labels = { ...cluster.metadata.labels, ...flags.metadata.labels };
      } else {
        const project = await s.project(opts.project);
        cluster = buildCluster({ ...opts, name, project, labels: parseKeyValues(opts.label), podCIDR: opts.podCidr, serviceCIDR: opts.serviceCidr });
      }
      const project = cluster.metadata.project!;
      const created = await about({ kind: 'Cluster', name }, () => s.client.create<Cluster>(cluster));
      out(`${objectRef('Cluster', name)} created in project ${project}\n`);
      if (!opts.wait) return;
      await waitUntilReady(s, project, created, opts.timeout, start, `cluster "${name}" keeps provisioning; follow it with \`marina get cluster ${name} -p ${project} -w\``);
      out(`cluster "${name}" is Ready (${humanDuration(Date.now() - start)}); kubeconfig: marina cluster kubeconfig ${name} -p ${project}\n`);
    });

  cmd
    .command('list')
    .alias('ls')
    .description('list clusters (same as `marina get clusters`)')
    .addOption(outputOption())
    .addOption(projectOption())
    .option('-A, --all-projects', 'every project you can see')
    .option('-l, --selector <selector>', 'label selector')
    .action(async (opts: { output: string; project?: string; allProjects?: boolean; selector?: string }, sub: Command) => {
      await getObjects(Session.of(sub), CLUSTER, [], opts);
    });

  cmd
    .command('get')
    .description('show clusters by name (same as `marina get cluster NAME`)')
    .argument('[names...]')
    .addOption(outputOption())
    .addOption(projectOption())
    .option('-w, --watch', 'stream changes')
    .action(async (names: string[], opts: { output: string; project?: string; watch?: boolean }, sub: Command) => {
      await getObjects(Session.of(sub), CLUSTER, names, opts);
    });

  cmd
    .command('kubeconfig')
    .description('print the admin kubeconfig of a cluster')
    .argument('<name>')
    .addOption(projectOption())
    .option('--output-file <path>', 'write it to a file (mode 0600) instead of stdout')
    .action(async (name: string, opts: { project?: string; outputFile?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const kubeconfig = await about({ kind: 'Cluster', name }, () => s.client.kubeconfig(project, name));
      if (opts.outputFile) {
        writeFileSync(opts.outputFile, kubeconfig, { mode: 0o600 });
        err(`kubeconfig of cluster "${name}" written to ${opts.outputFile}`);
      } else {
        out(kubeconfig.endsWith('\n') ? kubeconfig : `${kubeconfig}\n`);
      }
    });

  cmd
    .command('health')
    .description("show a cluster's newest health check: components, Nodes and metrics")
    .argument('<name>')
    .addOption(projectOption())
    .addOption(new Option('-o, --output <format>', 'table or json').default('table').choices(['table', 'json']))
    .action(async (name: string, opts: { project?: string; output: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const h = await about({ kind: 'Cluster', name }, () => s.client.clusterHealth(project, name));
      if (opts.output === 'json') return out(`${JSON.stringify(h, null, 2)}\n`);
      const r = h.latest;
      if (!r) return out(`cluster "${name}": no health check has finished yet\n`);
      out(`cluster "${name}" ${r.healthy ? 'healthy' : 'UNHEALTHY'} (checked ${humanDuration(Date.now() - Date.parse(r.at))} ago in ${r.durationMs} ms)\n\n`);
      out(formatTable(['COMPONENT', 'MACHINE', 'OK', 'LATENCY', 'MESSAGE'], r.checks.map((c) => [c.component, c.machine ?? '-', c.ok ? 'yes' : 'NO', c.latencyMs !== undefined ? `${c.latencyMs}ms` : '-', c.message.slice(0, 80)])));
      out('\n');
      out(formatTable(['NODE', 'READY', 'PROBLEMS'], r.nodes.map((n) => [n.name, n.ready, n.problems.map((p) => `${p.type}=${p.status}${p.reason ? ` (${p.reason})` : ''}`).join(', ') || '-'])));
      const m = r.metrics;
      if (m) {
        out('\n');
        const mib = (b: number) => `${Math.round(b / 1048576)}Mi`;
        const rows = [
          ...m.etcd.map((e) => [`etcd/${e.machine}`, `leader=${e.isLeader ? 'self' : e.hasLeader ? 'yes' : 'NONE'} db=${mib(e.dbSizeBytes)} fsync-p99=${e.walFsyncP99Seconds !== undefined ? `${(e.walFsyncP99Seconds * 1000).toFixed(1)}ms` : '-'} leader-changes=${e.leaderChangesTotal}`]),
          ...m.apiservers.map((a) => [`apiserver/${a.machine}`, `p99=${a.requestP99Seconds !== undefined ? `${(a.requestP99Seconds * 1000).toFixed(1)}ms` : '-'} inflight=${a.inflightRequests}`]),
          ...m.machines.map((u) => [`machine/${u.machine}`, `cpu=${u.cpuCores !== undefined ? u.cpuCores.toFixed(2) : '-'} rss=${mib(u.rssBytes)} disk=${mib(u.diskUsedBytes)}`]),
        ];
        out(formatTable(['METRICS', `AT ${m.at}`], rows));
      }
    });

  cmd
    .command('scale')
    .description('set the replica count of one node pool')
    .argument('<name>')
    .requiredOption('--pool <pool>', 'node pool name, e.g. workers')
    .requiredOption('--replicas <n>', 'new replica count', intArg(0, 500))
    .addOption(projectOption())
    .option('--wait', 'follow progress until the cluster is Ready at the new size')
    .addOption(timeoutOption('15m'))
    .action(async (name: string, opts: { pool: string; replicas: number; project?: string; wait?: boolean; timeout: number }, sub: Command) => {
      const start = Date.now();
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const { cluster, from } = await about({ kind: 'Cluster', name }, () => scalePool(s.client, project, name, opts.pool, opts.replicas));
      out(from === opts.replicas
        ? `${objectRef('Cluster', name)} unchanged (pool ${opts.pool} already has ${from} replicas)\n`
        : `${objectRef('Cluster', name)} scaled (pool ${opts.pool}: ${from} → ${opts.replicas})\n`);
      if (!opts.wait) return;
      await waitUntilReady(s, project, cluster, opts.timeout, start, `the scale-out continues; follow it with \`marina get cluster ${name} -p ${project} -w\``);
      out(`cluster "${name}" is Ready (${humanDuration(Date.now() - start)})\n`);
    });

  cmd
    .command('wait')
    .description('follow a cluster until it is Ready at its current generation')
    .argument('<name>')
    .addOption(projectOption())
    .addOption(timeoutOption('15m'))
    .action(async (name: string, opts: { project?: string; timeout: number }, sub: Command) => {
      const start = Date.now();
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const cluster = await about({ kind: 'Cluster', name }, () => s.client.get<Cluster>(CLUSTER, name, project));
      await waitUntilReady(s, project, cluster, opts.timeout, start, 'nothing was changed');
      out(`cluster "${name}" is Ready\n`);
    });

  cmd
    .command('delete')
    .description('delete clusters (machines, processes and files go with them)')
    .argument('<names...>')
    .addOption(projectOption())
    .option('--wait', 'follow the teardown until the cluster is gone')
    .addOption(timeoutOption('10m'))
    .option('--ignore-not-found', 'succeed when the cluster does not exist')
    .action(async (names: string[], opts: { project?: string; wait?: boolean; timeout: number; ignoreNotFound?: boolean }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      await eachName(names, (name) =>
        interruptible(`the deletion of cluster "${name}" continues`, (signal) => deleteOne(s.client, CLUSTER, name, project, { ...opts, signal })),
      );
    });

  cmd.addCommand(joinTokenCommand());
  cmd.addCommand(approveCommand());
  addClusterOperationCommands(cmd);
  return cmd;
}
