// Generic resource verbs: get, describe, delete, apply, watch.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Resource } from '../../api/meta.js';
import { isNotFound, RESOURCES, type MarinaClient, type ResourceRef, type WatchEvent } from '../../client/index.js';
import { applyObject, applyOrder, prepareObject, readSources } from '../apply.js';
import { followCluster } from '../cluster.js';
import { describeResource } from '../describe.js';
import { about, CliError, describeError, EXIT } from '../errors.js';
import { objectRef, splitKindArgs } from '../kinds.js';
import { columnsFor, formatResources, formatWatchEvent, humanDuration, parseOutputFormat, StreamingTable, type OutputFormat } from '../output.js';
import { collect, err, out, parseDuration, Session } from '../session.js';

const PAGE_SIZE = 500;

export function outputOption(formats = 'table|json|yaml|name'): Option {
  return new Option('-o, --output <format>', `output format: ${formats}`).default('table');
}

export function projectOption(): Option {
  return new Option('-p, --project <project>', 'project (default: MARINA_PROJECT, the context\'s project, or your only project)');
}

/** Runs per-name work, printing each failure, and fails with the first failure's exit code. */
export async function eachName(names: string[], fn: (name: string) => Promise<void>): Promise<void> {
  let first: number | undefined;
  for (const name of names) {
    try {
      await fn(name);
    } catch (e) {
      if (names.length === 1) throw e;
      const d = describeError(e);
      err(`error: ${d.message}`);
      first ??= d.exitCode;
    }
  }
  if (first !== undefined) throw new CliError('', first);
}

// ---------- get ----------

interface GetOpts {
  output: string;
  project?: string;
  selector?: string;
  allProjects?: boolean;
  watch?: boolean;
  chunkSize: number;
}

export function getCommand(): Command {
  return new Command('get')
    .description('list objects of a kind, or show some by name')
    .argument('<kind>', 'cluster|nodepool|machine|project|user|secret|alert|channel (singular, plural or short: cl, np, m); KIND/NAME works too')
    .argument('[names...]', 'object names')
    .addOption(outputOption())
    .addOption(projectOption())
    .option('-l, --selector <selector>', 'label selector, e.g. env=prod,tier!=db')
    .option('-A, --all-projects', 'list across every project you can see')
    .option('-w, --watch', 'after listing, stream changes')
    .addOption(new Option('--chunk-size <n>', 'page size for lists').default(PAGE_SIZE).argParser((v) => Number(v)).hideHelp())
    .action(async (kindArg: string, nameArgs: string[], opts: GetOpts, cmd: Command) => {
      const { ref, names } = splitKindArgs(kindArg, nameArgs);
      await getObjects(Session.of(cmd), ref, names, opts);
    });
}

/** The body of `marina get` (also behind `cluster list`, `project list`, ...). */
export async function getObjects(s: Session, ref: ResourceRef, names: string[], opts: Partial<GetOpts>): Promise<void> {
  const format = parseOutputFormat(opts.output);
  const allProjects = opts.allProjects === true && ref.scope === 'project';
  if (allProjects && names.length > 0) throw new CliError('-A cannot be combined with names; give -p instead', EXIT.usage);
  const project = allProjects ? undefined : await s.projectFor(ref, opts.project);

  if (opts.watch) {
    await streamWatch(s.client, ref, { project, names, selector: opts.selector, format, initial: true, withProject: allProjects });
    return;
  }
  if (names.length > 0) {
    const found: Resource[] = [];
    let failure: unknown;
    for (const name of names) {
      try {
        found.push(await about({ kind: ref.kind, name }, () => s.client.get(ref, name, project)));
      } catch (e) {
        failure ??= e;
        if (names.length > 1) err(`error: ${describeError(e).message}`);
      }
    }
    if (found.length > 0) out(formatResources(format, ref.kind, found, { single: names.length === 1 }));
    if (failure) {
      if (names.length === 1) throw failure;
      throw new CliError('', describeError(failure).exitCode);
    }
    return;
  }
  const list = await s.client.listAll(ref, { project, labelSelector: opts.selector, limit: opts.chunkSize ?? PAGE_SIZE });
  if (format === 'table' && list.items.length === 0) {
    err(`No ${ref.plural} found${project ? ` in project ${project}` : ''}.`);
    return;
  }
  out(formatResources(format, ref.kind, list.items, { withProject: allProjects, resourceVersion: list.metadata.resourceVersion }));
}

// ---------- watch ----------

interface StreamOpts {
  project?: string;
  names: string[];
  selector?: string;
  format: OutputFormat;
  initial: boolean;
  withProject: boolean;
}

/** Prints events until interrupted; reconnects and relists as needed (see watchResumable). */
async function streamWatch(client: MarinaClient, ref: ResourceRef, o: StreamOpts): Promise<void> {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const cols = columnsFor(ref.kind, { withProject: o.withProject });
  const table = new StreamingTable(['EVENT', ...cols.map((c) => c.header)]);
  if (o.format === 'table') out(table.headerLine());
  const wanted = new Set(o.names);
  try {
    for await (const ev of client.watchResumable(ref, {
      project: o.project,
      labelSelector: o.selector,
      initial: o.initial,
      signal: ctl.signal,
      onReconnect: (info) =>
        err(info.relist ? `watch: ${info.reason}; listing again` : `watch: connection lost (${info.reason}); resuming from resourceVersion ${info.resourceVersion}`),
    })) {
      if (wanted.size > 0 && !wanted.has(ev.object.metadata.name)) continue;
      out(formatWatchEvent(o.format, ev as WatchEvent, { table, cols }));
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export function watchCommand(): Command {
  return new Command('watch')
    .description('stream changes to objects of a kind (resumes after disconnects)')
    .argument('<kind>', 'resource type')
    .argument('[names...]', 'only these objects')
    .addOption(outputOption())
    .addOption(projectOption())
    .option('-l, --selector <selector>', 'label selector')
    .option('-A, --all-projects', 'watch every project you can see')
    .option('--initial', 'print the current objects (as ADDED) before the changes')
    .action(async (kindArg: string, nameArgs: string[], opts: { output: string; project?: string; selector?: string; allProjects?: boolean; initial?: boolean }, cmd: Command) => {
      const { ref, names } = splitKindArgs(kindArg, nameArgs);
      const format = parseOutputFormat(opts.output);
      const s = Session.of(cmd);
      const allProjects = opts.allProjects === true && ref.scope === 'project';
      const project = allProjects ? undefined : await s.projectFor(ref, opts.project);
      await streamWatch(s.client, ref, { project, names, selector: opts.selector, format, initial: opts.initial === true, withProject: allProjects });
    });
}

// ---------- describe ----------

export function describeCommand(): Command {
  return new Command('describe')
    .description('show one object in detail: metadata, spec, status, conditions')
    .argument('<kind>', 'resource type')
    .argument('[names...]', 'object names')
    .addOption(projectOption())
    .action(async (kindArg: string, nameArgs: string[], opts: { project?: string }, cmd: Command) => {
      const { ref, names } = splitKindArgs(kindArg, nameArgs);
      if (names.length === 0) throw new CliError(`describe needs a name: marina describe ${ref.kind.toLowerCase()} NAME`, EXIT.usage);
      const s = Session.of(cmd);
      const project = await s.projectFor(ref, opts.project);
      let firstDone = false;
      await eachName(names, async (name) => {
        const obj = await about({ kind: ref.kind, name }, () => s.client.get(ref, name, project));
        let machines: Resource[] | undefined;
        if (ref.kind === 'Cluster' && project) {
          const list = await s.client.listAll('Machine', { project, limit: PAGE_SIZE });
          machines = list.items.filter((m) => (m.spec as { cluster?: string } | undefined)?.cluster === name);
        }
        out((firstDone ? '\n' : '') + describeResource(obj, { machines }));
        firstDone = true;
      });
    });
}

// ---------- delete ----------

interface DeleteOpts {
  project?: string;
  wait?: boolean;
  timeout: number;
  ignoreNotFound?: boolean;
  signal?: AbortSignal;
}

export function deleteCommand(): Command {
  return new Command('delete')
    .description('delete objects; --wait follows the deletion until they are gone')
    .argument('<kind>', 'resource type')
    .argument('[names...]', 'object names')
    .addOption(projectOption())
    .option('--wait', 'wait until the objects are gone (finalizers done)')
    .addOption(new Option('--timeout <duration>', 'how long --wait waits').default(parseDuration('10m'), '10m').argParser(parseDuration))
    .option('--ignore-not-found', 'succeed when the object does not exist')
    .action(async (kindArg: string, nameArgs: string[], opts: DeleteOpts, cmd: Command) => {
      const { ref, names } = splitKindArgs(kindArg, nameArgs);
      if (names.length === 0) throw new CliError(`delete needs a name: marina delete ${ref.kind.toLowerCase()} NAME`, EXIT.usage);
      const s = Session.of(cmd);
      const project = await s.projectFor(ref, opts.project);
      await eachName(names, (name) => deleteOne(s.client, ref, name, project, opts));
    });
}

export async function deleteOne(client: MarinaClient, ref: ResourceRef, name: string, project: string | undefined, opts: DeleteOpts): Promise<void> {
  const start = Date.now();
  const label = objectRef(ref.kind, name);
  let res;
  try {
    res = await about({ kind: ref.kind, name }, () => client.delete(ref, name, project));
  } catch (e) {
    if (opts.ignoreNotFound && isNotFound((e as { inner?: unknown }).inner ?? e)) return;
    throw e;
  }
  if (res.removed) {
    out(`${label} deleted\n`);
    return;
  }
  const fin = res.object.metadata.finalizers ?? [];
  out(`${label} deletion started${fin.length > 0 ? ` (finalizers: ${fin.join(', ')})` : ''}\n`);
  if (!opts.wait) return;
  if (ref.kind === 'Cluster' && project) {
    await followCluster({
      client,
      project,
      name,
      until: 'deleted',
      initial: res.object,
      resourceVersion: res.object.metadata.resourceVersion,
      timeoutMs: opts.timeout,
      start,
      print: (l) => out(`${l}\n`),
      signal: opts.signal,
    });
  } else {
    await waitGone(client, ref, name, project, res.object, opts.timeout, start, opts.signal);
  }
  out(`${label} deleted (${humanDuration(Date.now() - start)})\n`);
}

/** Watches one object until DELETED, printing finalizer changes. */
async function waitGone(client: MarinaClient, ref: ResourceRef, name: string, project: string | undefined, obj: Resource, timeoutMs: number, start: number, signal?: AbortSignal): Promise<void> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const stop = () => ctl.abort();
  signal?.addEventListener('abort', stop, { once: true });
  let finalizers = (obj.metadata.finalizers ?? []).join(', ');
  try {
    for await (const ev of client.watchResumable(ref, { project, resourceVersion: obj.metadata.resourceVersion, initial: true, signal: ctl.signal })) {
      if (ev.object.metadata.name !== name) continue;
      if (ev.type === 'DELETED') return;
      const f = (ev.object.metadata.finalizers ?? []).join(', ');
      if (f !== finalizers) {
        finalizers = f;
        out(`[${((Date.now() - start) / 1000).toFixed(1)}s] ${objectRef(ref.kind, name)} finalizers: ${f || '<none>'}\n`);
      }
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', stop);
  }
  if (signal?.aborted) throw new CliError('interrupted', 130);
  throw new CliError(`timed out after ${humanDuration(timeoutMs)} waiting for ${objectRef(ref.kind, name)} to be deleted (finalizers: ${finalizers || '<none>'})`, EXIT.timeout);
}

// ---------- apply ----------

export function applyCommand(): Command {
  return new Command('apply')
    .description('create or update objects from YAML/JSON files (several documents per file; - reads stdin)')
    .requiredOption('-f, --filename <file>', 'file, directory or - (repeatable)', collect)
    .addOption(projectOption())
    .addOption(new Option('-o, --output <format>', 'output: text (kind/name outcome) or name|json|yaml').default('text'))
    .action(async (opts: { filename: string[]; project?: string; output: string }, cmd: Command) => {
      const format = opts.output === 'text' ? 'text' : parseOutputFormat(opts.output, ['name', 'json', 'yaml']);
      const docs = applyOrder(readSources(opts.filename, () => readFileSync(0, 'utf8')));
      if (docs.length === 0) throw new CliError('no objects found in the given files', EXIT.invalid);
      const s = Session.of(cmd);
      // Ask for the default project only when some object needs one.
      let project = opts.project ?? s.connection.project;
      const needsProject = docs.some((d) => d.object.metadata.project === undefined && RESOURCES.some((r) => r.kind === d.object.kind && r.scope === 'project'));
      if (!project && needsProject) project = await s.project(undefined);
      const prepared = docs.map((d) => ({ doc: d, obj: prepareObject(d, project) }));
      let first: number | undefined;
      const results: Resource[] = [];
      for (const { obj } of prepared) {
        try {
          const r = await about({ kind: obj.kind, name: obj.metadata.name }, () => applyObject(s.client, obj));
          results.push(r.object);
          if (format === 'text') out(`${objectRef(obj.kind, obj.metadata.name)} ${r.outcome}\n`);
          else if (format === 'name') out(`${objectRef(obj.kind, obj.metadata.name)}\n`);
        } catch (e) {
          const d = describeError(e);
          err(`error: ${d.message}`);
          first ??= d.exitCode;
        }
      }
      if (format === 'json' || format === 'yaml') {
        out(formatResources(format, '', results, { single: results.length === 1, listKind: 'List' }));
      }
      if (first !== undefined) throw new CliError('', first);
    });
}
