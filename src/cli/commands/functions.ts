// `marina function deploy|invoke|logs|activations|dlq` and `marina pipeline apply|run|runs|describe`.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { stringify as toYaml } from 'yaml';
import type { Resource } from '../../api/meta.js';
import { FunctionsApi, sleep, type MarinaClient, type PipelineRun } from '../../client/index.js';
import { applyObject, prepareObject, readSources, type SourceDoc } from '../apply.js';
import { about, CliError, describeError, EXIT } from '../errors.js';
import {
  activationLogs,
  activationSummary,
  activationTable,
  deadLetterTable,
  functionFromSource,
  isSourceFile,
  parseEventData,
  resultText,
  runSummary,
  runTable,
  runTrace,
  stepLine,
} from '../functions.js';
import { objectRef } from '../kinds.js';
import { formatResources, humanDuration, parseOutputFormat } from '../output.js';
import { collect, err, intArg, out, parseDuration, Session } from '../session.js';
import { outputOption, projectOption } from './resources.js';

const RECORD_FORMATS = ['table', 'json', 'yaml'];
const POLL_MS = 250;

const recordsOption = () => outputOption('table|json|yaml');
const limitOption = (what: string, dflt: number) => new Option('--limit <n>', `at most this many ${what}, newest first`).argParser(intArg(1, 1000)).default(dflt);
const readStdin = () => readFileSync(0, 'utf8');

function printJsonOrYaml(format: string, value: unknown): void {
  out(format === 'json' ? JSON.stringify(value, null, 2) + '\n' : toYaml(value));
}

/** The event of `--data` / `-f FILE|-`. */
function eventOf(opts: { data?: string; filename?: string }): unknown {
  const text = opts.filename === undefined ? undefined : opts.filename === '-' ? readStdin() : readFileOrFail(opts.filename);
  return parseEventData(opts.data, text);
}

function readFileOrFail(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`, EXIT.invalid);
  }
}

/** Applies objects one by one like `marina apply`, printing each outcome; fails with the first error's exit code. */
async function applyAll(client: MarinaClient, objects: Resource[], format: string): Promise<Resource[]> {
  const results: Resource[] = [];
  let first: number | undefined;
  for (const obj of objects) {
    try {
      const r = await about({ kind: obj.kind, name: obj.metadata.name }, () => applyObject(client, obj));
      results.push(r.object);
      if (format === 'text') out(`${objectRef(obj.kind, obj.metadata.name)} ${r.outcome}\n`);
      else if (format === 'name') out(`${objectRef(obj.kind, obj.metadata.name)}\n`);
    } catch (e) {
      const d = describeError(e);
      err(`error: ${d.message}`);
      first ??= d.exitCode;
    }
  }
  if (format === 'json' || format === 'yaml') out(formatResources(format, '', results, { single: results.length === 1, listKind: 'List' }));
  if (first !== undefined) throw new CliError('', first);
  return results;
}

/** Manifests of the allowed kinds from `-f` sources, in the order given. */
function manifests(paths: string[], kinds: string[], project: string): Resource[] {
  const docs: SourceDoc[] = readSources(paths, readStdin);
  if (docs.length === 0) throw new CliError('no objects found in the given files', EXIT.invalid);
  for (const d of docs) {
    if (!kinds.includes(d.object.kind)) throw new CliError(`${d.source}: ${d.object.kind} is not a ${kinds.join(' or ')}; use \`marina apply -f\` for other kinds`, EXIT.invalid);
  }
  // Functions first: a pipeline names them.
  return [...docs].sort((a, b) => kinds.indexOf(a.object.kind) - kinds.indexOf(b.object.kind)).map((d) => prepareObject(d, project));
}

/**
 * Waits until the service runs the Function's current generation (status.revision) and says
 * Ready, printing what it waits for; a Ready=False condition (the source does not load) fails.
 */
async function waitReady(s: Session, fn: Resource, timeoutMs: number): Promise<void> {
  const project = fn.metadata.project!;
  const name = fn.metadata.name;
  const want = fn.metadata.generation ?? 1;
  err(`waiting for ${objectRef('Function', name)} revision ${want} ...`);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const cur = await s.client.getOptional(fn.kind, name, project);
    if (!cur) throw new CliError(`${objectRef('Function', name)} was deleted while waiting`, EXIT.notFound);
    const st = (cur.status ?? {}) as { revision?: number; url?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
    const ready = st.conditions?.find((c) => c.type === 'Ready');
    const current = (cur.metadata.generation ?? 1) === want;
    if (current && st.revision === want && ready?.status === 'True') {
      const url = st.url ? `, ${s.connection.server}${st.url}` : '';
      out(`${objectRef('Function', name)} ready: revision ${want}${url}\n`);
      return;
    }
    if (current && ready?.status === 'False') throw new CliError(`${objectRef('Function', name)} is not ready: ${ready.reason}: ${ready.message ?? ''}`, EXIT.invalid);
    if (Date.now() > end) throw new CliError(`timed out after ${humanDuration(timeoutMs)} waiting for ${objectRef('Function', name)} revision ${want} to be ready`, EXIT.timeout);
    await sleep(POLL_MS);
  }
}

export function functionCommand(): Command {
  const cmd = new Command('function').alias('fn').alias('functions').description('functions: deploy, invoke, and read their activations, logs and dead letters');

  cmd
    .command('deploy')
    .description('create or update functions from a manifest (YAML/JSON, - for stdin) or from one JavaScript/TypeScript file (.js, .mjs, .ts, .mts), then wait until the new revision is ready')
    .requiredOption('-f, --filename <file>', 'manifest or source file (repeatable)', collect)
    .option('--name <name>', 'source file: the function name (default: the file name without extension)')
    .option('--env <NAME=VALUE>', 'source file: an environment variable (repeatable)', collect, [])
    .option('--public', 'source file: the HTTP trigger takes calls without a token')
    .option('--no-http', 'source file: no HTTP trigger')
    .option('--no-wait', 'do not wait until the new revision is ready')
    .addOption(new Option('--timeout <duration>', 'how long to wait').argParser(parseDuration).default(60_000, '1m'))
    .addOption(projectOption())
    .addOption(new Option('-o, --output <format>', 'output: text (kind/name outcome) or name|json|yaml').default('text'))
    .addHelpText('after', '\nThe handler is the module\'s default export: export default async (event, ctx) => result (docs/functions.md).')
    .action(async (opts: { filename: string[]; name?: string; env: string[]; public?: boolean; http: boolean; wait: boolean; timeout: number; project?: string; output: string }, sub: Command) => {
      const format = opts.output === 'text' ? 'text' : parseOutputFormat(opts.output, ['name', 'json', 'yaml']);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const sources = opts.filename.filter(isSourceFile);
      if (sources.length > 1 || (sources.length === 1 && opts.filename.length > 1)) throw new CliError('deploy one source file at a time (or manifests only)', EXIT.usage);
      const objects = sources.length === 1 ? [functionFromSource(sources[0]!, readFileOrFail(sources[0]!), project, opts)] : manifests(opts.filename, ['Function'], project);
      const applied = await applyAll(s.client, objects, format);
      if (opts.wait) for (const fn of applied) await waitReady(s, fn, opts.timeout);
    });

  cmd
    .command('invoke')
    .description('call a function and print its result (its activation on stderr); --async queues the call')
    .argument('<name>')
    .option('--data <json>', 'the event, as JSON')
    .option('-f, --filename <file>', 'the event from a JSON file (- reads stdin)')
    .option('--async', 'queue the call (retried per the function\'s asyncRetry) and print the delivery')
    .option('--idempotency-key <key>', 'with --async: calls with the same key are one delivery')
    .addOption(projectOption())
    .addOption(recordsOption())
    .action(async (name: string, opts: { data?: string; filename?: string; async?: boolean; idempotencyKey?: string; project?: string; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, RECORD_FORMATS);
      const event = eventOf(opts);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const fns = new FunctionsApi(s.client);
      if (opts.async) {
        const d = await about({ kind: 'Function', name }, () => fns.invokeAsync(project, name, event, { idempotencyKey: opts.idempotencyKey }));
        if (format === 'table') out(`queued: delivery ${d.id} (${d.maxAttempts} attempts at most); see \`marina function activations ${name}\`\n`);
        else printJsonOrYaml(format, d);
        return;
      }
      const inv = await about({ kind: 'Function', name }, () => fns.invoke(project, name, event));
      if (format === 'table') {
        if (inv.activation.outcome === 'success') out(resultText(inv.result));
        err(activationSummary(inv.activation));
      } else printJsonOrYaml(format, inv);
      if (inv.activation.outcome !== 'success') throw new CliError('', EXIT.error);
    });

  cmd
    .command('activations')
    .description("a function's activation records, newest first: ID TRIGGER REVISION OUTCOME COLD-START DURATION STARTED")
    .argument('<name>')
    .addOption(limitOption('activations', 20))
    .addOption(projectOption())
    .addOption(recordsOption())
    .action(async (name: string, opts: { limit: number; project?: string; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, RECORD_FORMATS);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const items = await new FunctionsApi(s.client).activations(project, name, { limit: opts.limit });
      if (format !== 'table') return printJsonOrYaml(format, { kind: 'ActivationList', items });
      if (items.length === 0) return err(`No activations of function ${name} in project ${project}.`);
      out(activationTable(items));
    });

  cmd
    .command('logs')
    .description("the log lines of a function's latest activations, oldest first (or of one activation)")
    .argument('<name>')
    .option('--activation <id>', 'only this activation')
    .addOption(limitOption('activations', 10))
    .addOption(projectOption())
    .action(async (name: string, opts: { activation?: string; limit: number; project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const fns = new FunctionsApi(s.client);
      const ids = opts.activation ? [opts.activation] : (await fns.activations(project, name, { limit: opts.limit })).map((a) => a.id);
      if (ids.length === 0) return err(`No activations of function ${name} in project ${project}.`);
      const full = await Promise.all(ids.map((id) => about({ kind: 'Activation', name: id }, () => fns.activation(project, id))));
      out(activationLogs(full.filter((a) => a.function === name)));
    });

  const dlq = cmd.command('dlq').description('the dead-letter list: asynchronous calls and pipeline runs that failed their last attempt');
  dlq
    .command('list', { isDefault: true })
    .alias('ls')
    .description('dead letters, newest first: ID TARGET TRIGGER ATTEMPTS CREATED LAST-ERROR')
    .addOption(limitOption('dead letters', 50))
    .addOption(projectOption())
    .addOption(recordsOption())
    .action(async (opts: { limit: number; project?: string; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, RECORD_FORMATS);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const items = await new FunctionsApi(s.client).deadLetters(project, { limit: opts.limit });
      if (format !== 'table') return printJsonOrYaml(format, { kind: 'DeliveryList', items });
      if (items.length === 0) return err(`No dead letters in project ${project}.`);
      out(deadLetterTable(items));
    });
  dlq
    .command('replay')
    .description('queue dead letters again, with fresh attempts, on the current revision')
    .argument('<ids...>')
    .addOption(projectOption())
    .action(async (ids: string[], opts: { project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const fns = new FunctionsApi(s.client);
      let first: number | undefined;
      for (const id of ids) {
        try {
          const d = await about({ kind: 'DeadLetter', name: id }, () => fns.replay(project, id));
          out(`deadletter/${id} replayed: ${d.target.kind.toLowerCase()}/${d.target.name} queued again\n`);
        } catch (e) {
          if (ids.length === 1) throw e;
          const d = describeError(e);
          err(`error: ${d.message}`);
          first ??= d.exitCode;
        }
      }
      if (first !== undefined) throw new CliError('', first);
    });
  return cmd;
}

/** Follows a run until it ends, printing each step as it finishes; the run as it ended. */
async function followRun(s: Session, project: string, pipeline: string, deliveryId: string, timeoutMs: number): Promise<PipelineRun> {
  const fns = new FunctionsApi(s.client);
  const end = Date.now() + timeoutMs;
  let printed = 0;
  let run: PipelineRun | undefined;
  for (;;) {
    run = await fns.runOf(project, pipeline, deliveryId);
    if (run) {
      if (printed === 0 && run.steps.length === 0) err(`run ${run.id} started`);
      for (const step of run.steps.slice(printed)) err(stepLine(step));
      printed = run.steps.length;
      if (run.state !== 'running') return run;
    }
    if (Date.now() > end) {
      throw new CliError(`timed out after ${humanDuration(timeoutMs)} waiting for ${run ? `run ${run.id}` : `delivery ${deliveryId} to start`} (it goes on; see \`marina pipeline runs ${pipeline}\`)`, EXIT.timeout);
    }
    await sleep(POLL_MS);
  }
}

export function pipelineCommand(): Command {
  const cmd = new Command('pipeline').alias('pl').alias('pipelines').description('pipelines: functions run one after another, traced step by step');

  cmd
    .command('apply')
    .description('create or update pipelines, and the functions they use, from YAML/JSON manifests (- reads stdin)')
    .requiredOption('-f, --filename <file>', 'file, directory or - (repeatable)', collect)
    .addOption(projectOption())
    .addOption(new Option('-o, --output <format>', 'output: text (kind/name outcome) or name|json|yaml').default('text'))
    .action(async (opts: { filename: string[]; project?: string; output: string }, sub: Command) => {
      const format = opts.output === 'text' ? 'text' : parseOutputFormat(opts.output, ['name', 'json', 'yaml']);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      await applyAll(s.client, manifests(opts.filename, ['Function', 'Pipeline'], project), format);
    });

  cmd
    .command('run')
    .description('start a run and follow it step by step until it ends (the final output on stdout)')
    .argument('<name>')
    .option('--data <json>', 'the input of the first step, as JSON')
    .option('-f, --filename <file>', 'the input from a JSON file (- reads stdin)')
    .option('--idempotency-key <key>', 'runs started with the same key are one run')
    .option('--no-wait', 'only start the run')
    .addOption(new Option('--timeout <duration>', 'how long to follow it').argParser(parseDuration).default(600_000, '10m'))
    .addOption(projectOption())
    .addOption(recordsOption())
    .action(async (name: string, opts: { data?: string; filename?: string; idempotencyKey?: string; wait: boolean; timeout: number; project?: string; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, RECORD_FORMATS);
      const event = eventOf(opts);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const d = await about({ kind: 'Pipeline', name }, () => new FunctionsApi(s.client).runPipeline(project, name, event, { idempotencyKey: opts.idempotencyKey }));
      if (!opts.wait) {
        if (format === 'table') out(`queued: delivery ${d.id}; follow it with \`marina pipeline runs ${name}\`\n`);
        else printJsonOrYaml(format, d);
        return;
      }
      err(`queued: delivery ${d.id}`);
      const run = await followRun(s, project, name, d.id, opts.timeout);
      if (format === 'table') {
        err(runSummary(run));
        if (run.state === 'succeeded') out(resultText(run.output ?? null));
        else err(`the run is in the dead-letter list as ${d.id}: \`marina function dlq replay ${d.id}\` runs it again`);
      } else printJsonOrYaml(format, run);
      if (run.state !== 'succeeded') throw new CliError('', EXIT.error);
    });

  cmd
    .command('runs')
    .description("a pipeline's runs, newest first: ID STATE STEPS STARTED DURATION ERROR")
    .argument('<name>')
    .addOption(limitOption('runs', 20))
    .addOption(projectOption())
    .addOption(recordsOption())
    .action(async (name: string, opts: { limit: number; project?: string; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, RECORD_FORMATS);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const items = await about({ kind: 'Pipeline', name }, () => new FunctionsApi(s.client).runs(project, name, { limit: opts.limit }));
      if (format !== 'table') return printJsonOrYaml(format, { kind: 'PipelineRunList', items });
      if (items.length === 0) return err(`No runs of pipeline ${name} in project ${project}.`);
      out(runTable(items));
    });

  cmd
    .command('describe')
    .description('a pipeline: its steps and latest runs; with a run id: that run traced step by step with its activations')
    .argument('<name>')
    .argument('[run]', 'a run id (see `marina pipeline runs`)')
    .addOption(projectOption())
    .addOption(recordsOption())
    .action(async (name: string, runId: string | undefined, opts: { project?: string; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, RECORD_FORMATS);
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const fns = new FunctionsApi(s.client);
      if (runId) {
        const trace = await about({ kind: 'PipelineRun', name: runId }, () => fns.run(project, name, runId));
        return format === 'table' ? out(runTrace(trace)) : printJsonOrYaml(format, trace);
      }
      const pipeline = await about({ kind: 'Pipeline', name }, () => s.client.get('Pipeline', name, project));
      const runs = await fns.runs(project, name, { limit: 5 });
      if (format !== 'table') return printJsonOrYaml(format, { pipeline, runs });
      out(pipelineDescription(pipeline) + (runs.length > 0 ? `\nLatest runs:\n${runTable(runs)}` : '\nNo runs yet.\n'));
    });
  return cmd;
}

interface StepSpec {
  name: string;
  function?: string;
  parallel?: { name: string; function: string }[];
  retry?: { maxAttempts?: number };
}

function pipelineDescription(p: Resource): string {
  const spec = (p.spec ?? {}) as { steps?: StepSpec[]; deadlineSeconds?: number; triggers?: { cron?: { name: string; schedule: string }[]; events?: { name: string }[] } };
  const lines = [`Name:      ${p.metadata.name}`, `Project:   ${p.metadata.project ?? ''}`, `Deadline:  ${spec.deadlineSeconds ?? 300}s`, 'Steps:'];
  (spec.steps ?? []).forEach((st, i) => {
    const retry = st.retry?.maxAttempts ? ` (up to ${st.retry.maxAttempts} attempts)` : '';
    if (st.parallel) lines.push(`  ${i + 1}. ${st.name}: in parallel ${st.parallel.map((b) => `${b.name} → function ${b.function}`).join(', ')}${retry}`);
    else lines.push(`  ${i + 1}. ${st.name}: function ${st.function}${retry}`);
  });
  const triggers = [...(spec.triggers?.cron ?? []).map((c) => `cron ${c.name} (${c.schedule})`), ...(spec.triggers?.events ?? []).map((e) => `events ${e.name}`)];
  lines.push(`Triggers:  ${triggers.length > 0 ? triggers.join(', ') : '<none> (run with `marina pipeline run`)'}`);
  return lines.join('\n') + '\n';
}
