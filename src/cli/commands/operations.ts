// `marina operation ...`, `marina cluster snapshot|snapshots|restore` and `marina machine replace`:
// day-2 operations as Operation objects, followed with their steps until they end.
import { Command, Option } from 'commander';
import type { Machine } from '../../api/kinds.js';
import type { Operation, OperationSpec } from '../../api/operations.js';
import { resourceRef } from '../../client/index.js';
import { about } from '../errors.js';
import { objectRef } from '../kinds.js';
import { buildOperation, describeOperation, followOperation } from '../operations.js';
import { err, out, parseDuration, Session } from '../session.js';
import { getObjects, outputOption, projectOption } from './resources.js';

const OPERATION = resourceRef('Operation');
const SNAPSHOT = resourceRef('Snapshot');

function timeoutOption(def: string): Option {
  return new Option('--timeout <duration>', 'how long to wait').default(parseDuration(def), def).argParser(parseDuration);
}

function waitOptions(c: Command, def: string): Command {
  return c.option('--wait', 'follow the operation and its steps until it ends (default)', true).option('--no-wait', 'return once the operation is accepted').addOption(timeoutOption(def));
}

/** Runs `fn` with a signal that aborts on Ctrl-C: an interrupted follow leaves the operation running. */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await fn(ctl.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Creates the operation, prints its name, and follows it unless --no-wait. */
async function run(s: Session, project: string, spec: OperationSpec, opts: { wait: boolean; timeout: number }): Promise<void> {
  const start = Date.now();
  const created = await about({ kind: 'Operation', name: spec.cluster }, () => s.client.create<Operation>(buildOperation(project, spec)));
  const name = created.metadata.name;
  out(`${objectRef('Operation', name)} created (${spec.type} of cluster ${spec.cluster}${created.status?.approvalRequired ? '; it waits for another operator to approve it' : ''})\n`);
  if (!opts.wait) return;
  const done = await interruptible((signal) => followOperation({ client: s.client, project, name, timeoutMs: opts.timeout, start, print: (l) => out(`${l}\n`), signal }));
  const result = Object.entries(done.status?.result ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');
  out(`operation "${name}" Succeeded${result ? ` (${result})` : ''} in ${((Date.now() - start) / 1000).toFixed(1)}s\n`);
}

export function operationCommand(): Command {
  const cmd = new Command('operation').alias('operations').alias('op').description('day-2 operations: list, follow, approve, reject, cancel');

  cmd
    .command('list')
    .alias('ls')
    .description('list operations (newest last)')
    .addOption(outputOption())
    .addOption(projectOption())
    .option('-A, --all-projects', 'every project you can see')
    .option('--cluster <name>', 'only the operations of this cluster')
    .option('-w, --watch', 'stream changes')
    .action(async (opts: { output: string; project?: string; allProjects?: boolean; cluster?: string; watch?: boolean }, sub: Command) => {
      await getObjects(Session.of(sub), OPERATION, [], { ...opts, ...(opts.cluster ? { selector: `marina.dev/cluster=${opts.cluster}` } : {}) });
    });

  cmd
    .command('describe')
    .alias('get')
    .description('show an operation with its steps; -w follows it until it ends')
    .argument('<name>')
    .addOption(projectOption())
    .option('-w, --watch', 'follow the steps until the operation ends')
    .addOption(timeoutOption('60m'))
    .action(async (name: string, opts: { project?: string; watch?: boolean; timeout: number }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const op = await about({ kind: 'Operation', name }, () => s.client.get<Operation>(OPERATION, name, project));
      if (!opts.watch) return out(describeOperation(op));
      const done = await interruptible((signal) => followOperation({ client: s.client, project, name, timeoutMs: opts.timeout, start: Date.now(), print: (l) => out(`${l}\n`), signal }));
      out(`\n${describeOperation(done)}`);
    });

  for (const action of ['approve', 'reject', 'cancel'] as const) {
    cmd
      .command(action)
      .description(
        action === 'cancel'
          ? 'cancel an operation before its first disruptive step'
          : `${action} an operation that waits for approval (operator role; not your own)`,
      )
      .argument('<name>')
      .addOption(projectOption())
      .option('--comment <text>', 'why (recorded with the decision)')
      .action(async (name: string, opts: { project?: string; comment?: string }, sub: Command) => {
        const s = Session.of(sub);
        const project = await s.project(opts.project);
        const path = `${s.client.path(OPERATION, { project, name })}/${action}`;
        const op = await about({ kind: 'Operation', name }, () => s.client.request<Operation>('POST', path, { body: opts.comment ? { comment: opts.comment } : {} }));
        const past = { approve: 'approved', reject: 'rejected', cancel: 'cancel requested' }[action];
        out(`${objectRef('Operation', name)} ${past} (phase ${op.status?.phase ?? 'Pending'})\n`);
      });
  }
  return cmd;
}

/** `marina cluster snapshot|snapshots|restore|upgrade|rotate-certificates`, added to the cluster command. */
export function addClusterOperationCommands(cluster: Command): void {
  waitOptions(
    cluster
      .command('snapshot')
      .description('take an etcd snapshot of a cluster now (encrypted, verified, in its backup target)')
      .argument('<name>')
      .addOption(projectOption())
      .option('--target <backuptarget>', "a BackupTarget of the project (default: the cluster's, else Marina's data directory)"),
    '30m',
  ).action(async (name: string, opts: { project?: string; target?: string; wait: boolean; timeout: number }, sub: Command) => {
    const s = Session.of(sub);
    const project = await s.project(opts.project);
    await run(s, project, { cluster: name, type: 'Snapshot', ...(opts.target ? { snapshot: { target: opts.target } } : {}) }, opts);
  });

  cluster
    .command('snapshots')
    .description("list a cluster's snapshots")
    .argument('<name>')
    .addOption(outputOption())
    .addOption(projectOption())
    .action(async (name: string, opts: { output: string; project?: string }, sub: Command) => {
      await getObjects(Session.of(sub), SNAPSHOT, [], { ...opts, selector: `marina.dev/cluster=${name}` });
    });

  waitOptions(
    cluster
      .command('restore')
      .description('restore the whole cluster from a snapshot (stops its control plane and etcd, restores every member, starts them again)')
      .argument('<name>')
      .requiredOption('--snapshot <snapshot>', 'the Snapshot to restore from (marina cluster snapshots NAME)')
      .option('--allow-other-cluster', "restore a snapshot another cluster took (its uid differs)")
      .addOption(projectOption()),
    '30m',
  ).action(async (name: string, opts: { project?: string; snapshot: string; allowOtherCluster?: boolean; wait: boolean; timeout: number }, sub: Command) => {
    const s = Session.of(sub);
    const project = await s.project(opts.project);
    if (opts.allowOtherCluster) err('warning: --allow-other-cluster: the snapshot may come from another cluster');
    await run(s, project, { cluster: name, type: 'Restore', restore: { snapshot: opts.snapshot, ...(opts.allowOtherCluster ? { allowOtherCluster: true } : {}) } }, opts);
  });

  addRollingCommands(cluster);
}

/** `marina cluster upgrade|rotate-certificates`: rolling every machine of a cluster, followed step by step. */
function addRollingCommands(cluster: Command): void {
  waitOptions(
    cluster
      .command('upgrade')
      .description('upgrade a cluster to another Kubernetes version: preflight, a snapshot, then etcd, control planes and workers machine by machine')
      .argument('<name>')
      .requiredOption('--version <version>', 'the Kubernetes version, e.g. v1.36.3 (marina toolchain list shows what is installed)')
      .addOption(projectOption()),
    '2h',
  ).action(async (name: string, opts: { project?: string; version: string; wait: boolean; timeout: number }, sub: Command) => {
    const s = Session.of(sub);
    const project = await s.project(opts.project);
    const version = opts.version.startsWith('v') ? opts.version : `v${opts.version}`;
    await run(s, project, { cluster: name, type: 'Upgrade', upgrade: { version } }, opts);
  });

  waitOptions(
    cluster
      .command('rotate-certificates')
      .description("re-issue every certificate of a cluster, machine by machine; --ca replaces the CAs too, in two phases")
      .argument('<name>')
      .option('--ca', 'also replace the certificate authorities: phase 1 trusts old and new, phase 2 drops the old (kubeconfigs from before stop working then)')
      .addOption(projectOption()),
    '2h',
  ).action(async (name: string, opts: { project?: string; ca?: boolean; wait: boolean; timeout: number }, sub: Command) => {
    const s = Session.of(sub);
    const project = await s.project(opts.project);
    if (opts.ca) err('note: kubeconfigs downloaded before this rotation keep working until its phase 2 (dropOldCAs); download the kubeconfig again once phase 1 is done');
    await run(s, project, { cluster: name, type: 'RotateCertificates', ...(opts.ca ? { rotateCertificates: { ca: true } } : {}) }, opts);
  });
}

export function machineCommand(): Command {
  const cmd = new Command('machine').alias('machines').description('day-2 actions on machines');
  waitOptions(
    cmd
      .command('replace')
      .description('replace a machine: its successor comes up first, then it is drained (PodDisruptionBudgets hold) and removed')
      .argument('<name>')
      .addOption(projectOption()),
    '30m',
  ).action(async (name: string, opts: { project?: string; wait: boolean; timeout: number }, sub: Command) => {
    const s = Session.of(sub);
    const project = await s.project(opts.project);
    const machine = await about({ kind: 'Machine', name }, () => s.client.get<Machine>('Machine', name, project));
    await run(s, project, { cluster: machine.spec.cluster, type: 'ReplaceMachine', replaceMachine: { machine: name } }, opts);
  });
  return cmd;
}
