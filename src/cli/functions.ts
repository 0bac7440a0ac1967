// What `marina function` and `marina pipeline` print and build: a Function from a source file,
// the event of an invocation, tables of activations, dead letters and runs, and a run traced
// step by step. Pure: the commands in commands/functions.ts do the talking.
import { basename, extname } from 'node:path';
import type { Resource } from '../api/meta.js';
import { API_VERSION, type Activation, type Delivery, type PipelineRun, type PipelineRunTrace } from '../client/index.js';
import { CliError, EXIT } from './errors.js';
import { age, formatTable, humanDuration } from './output.js';

const SOURCE_EXTENSIONS: Record<string, 'javascript' | 'typescript'> = { '.js': 'javascript', '.mjs': 'javascript', '.ts': 'typescript', '.mts': 'typescript' };

export function isSourceFile(path: string): boolean {
  return extname(path).toLowerCase() in SOURCE_EXTENSIONS;
}

export interface SourceFlags {
  name?: string;
  env: string[];
  public?: boolean;
  http?: boolean;
}

/** A Function whose code is one JavaScript or TypeScript file; named after the file unless --name. */
export function functionFromSource(path: string, code: string, project: string, f: SourceFlags): Resource {
  const ext = extname(path).toLowerCase();
  const name = f.name ?? basename(path, extname(path)).toLowerCase();
  const env: Record<string, string> = {};
  for (const kv of f.env) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliError(`--env ${JSON.stringify(kv)}: use NAME=VALUE`, EXIT.usage);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const spec: Record<string, unknown> = { source: { language: SOURCE_EXTENSIONS[ext], code } };
  if (Object.keys(env).length > 0) spec.env = env;
  if (f.public || f.http === false) spec.triggers = { http: { ...(f.http === false ? { enabled: false } : {}), ...(f.public ? { public: true } : {}) } };
  return { apiVersion: API_VERSION, kind: 'Function', metadata: { name, project }, spec };
}

/** `--data JSON` (a JSON value), or the text of `-f FILE` parsed as JSON; neither: no event. */
export function parseEventData(data: string | undefined, fileText: string | undefined): unknown {
  if (data !== undefined && fileText !== undefined) throw new CliError('give --data or -f, not both', EXIT.usage);
  const text = data ?? fileText;
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(`${data !== undefined ? '--data' : '-f'}: not JSON: ${(e as Error).message}`, EXIT.usage);
  }
}

/** The handler's result as text: a string as it is, anything else as indented JSON. */
export function resultText(result: unknown): string {
  return (typeof result === 'string' ? result : JSON.stringify(result, null, 2)) + '\n';
}

const ms = (n: number) => `${Math.round(n)} ms`;
const ago = (t: string | undefined, now: number) => (t ? `${age(t, now)} ago` : '-');
const trigger = (t: { type: string; name?: string }) => (t.name ? `${t.type}:${t.name}` : t.type);
/** The first line (an error's message without its stack), whitespace folded, cut at `max`. */
const oneLine = (s: string | undefined, max = 80) => {
  const t = (s ?? '').trim().split('\n')[0]!.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 3)}...` : t || '-';
};

/** One line about an activation: `activation ID: success in 5 ms (cold start 12 ms)`. */
export function activationSummary(a: Activation): string {
  const cold = a.coldStart ? ` (cold start${a.coldStartMs !== undefined ? ` ${ms(a.coldStartMs)}` : ''})` : '';
  const error = a.outcome === 'success' ? '' : `: ${oneLine(a.error, 200)}`;
  return `activation ${a.id}: ${a.outcome} in ${ms(a.durationMs)}${cold}${error}`;
}

export function activationTable(items: Activation[], now = Date.now()): string {
  return formatTable(
    ['ID', 'TRIGGER', 'REVISION', 'OUTCOME', 'COLD-START', 'DURATION', 'STARTED'],
    items.map((a) => [a.id, trigger(a.trigger), String(a.revision), a.outcome, a.coldStart ? (a.coldStartMs !== undefined ? ms(a.coldStartMs) : 'yes') : 'no', ms(a.durationMs), ago(a.start, now)]),
  );
}

/** Log lines of activations, oldest first, each block under a header naming the activation. */
export function activationLogs(items: Activation[]): string {
  return [...items]
    .sort((a, b) => a.start.localeCompare(b.start))
    .map((a) => {
      const lines = a.logs ?? [];
      const body = lines.length > 0 ? lines.join('\n') + '\n' : '(no log lines)\n';
      return `==> ${a.start} activation ${a.id} (${trigger(a.trigger)}, ${a.outcome}) <==\n${body}${a.logsTruncated ? '(more lines were dropped: the log is bounded)\n' : ''}`;
    })
    .join('\n');
}

export function deadLetterTable(items: Delivery[], now = Date.now()): string {
  return formatTable(
    ['ID', 'TARGET', 'TRIGGER', 'ATTEMPTS', 'CREATED', 'LAST-ERROR'],
    items.map((d) => [d.id, `${d.target.kind.toLowerCase()}/${d.target.name}`, trigger(d.trigger), `${d.attempts}/${d.maxAttempts}`, ago(d.createdAt, now), oneLine(d.lastError)]),
  );
}

const runDuration = (r: PipelineRun, now: number) => humanMs((r.end ? Date.parse(r.end) : now) - Date.parse(r.start));
const humanMs = (n: number) => (n < 10_000 ? ms(n) : humanDuration(n));

export function runTable(items: PipelineRun[], now = Date.now()): string {
  return formatTable(
    ['ID', 'STATE', 'STEPS', 'STARTED', 'DURATION', 'ERROR'],
    items.map((r) => [r.id, r.state, `${r.steps.filter((s) => s.outcome === 'success').length}/${r.steps.length}`, ago(r.start, now), runDuration(r, now), oneLine(r.error)]),
  );
}

/** One line per finished step (or branch): `step parse (function parse) succeeded: 1 attempt, 12 ms`. */
export function stepLine(step: PipelineRun['steps'][number]): string {
  const name = step.branch ? `${step.step}/${step.branch}` : step.step;
  const outcome = step.outcome === 'success' ? 'succeeded' : 'failed';
  const attempts = `${step.attempts} attempt${step.attempts === 1 ? '' : 's'}`;
  return `step ${name} (function ${step.function}) ${outcome}: ${attempts}, ${ms(step.durationMs)}${step.error ? `: ${oneLine(step.error, 200)}` : ''}`;
}

/** The final line of a run. */
export function runSummary(r: PipelineRun, now = Date.now()): string {
  const state = r.state === 'running' ? 'running' : r.state;
  return `run ${r.id} of pipeline ${r.pipeline}: ${state} after ${runDuration(r, now)}${r.error ? `: ${oneLine(r.error, 200)}` : ''}`;
}

/** A run traced step by step: each step or branch with its attempts' activations. */
export function runTrace(r: PipelineRunTrace, now = Date.now()): string {
  const head = `${runSummary(r, now)}\nstarted ${r.start} (${ago(r.start, now)}), deadline ${r.deadline}\n\n`;
  if (r.steps.length === 0) return `${head}no step finished yet\n`;
  const byId = new Map(r.activations.map((a) => [a.id, a]));
  const rows = r.steps.map((s) => [
    s.branch ? `${s.step}/${s.branch}` : s.step,
    s.function,
    s.outcome === 'success' ? 'succeeded' : 'failed',
    String(s.attempts),
    ms(s.durationMs),
    s.activations.map((id) => `${id}${byId.get(id) ? ` (${byId.get(id)!.outcome})` : ''}`).join(', ') || '-',
  ]);
  return head + formatTable(['STEP', 'FUNCTION', 'OUTCOME', 'ATTEMPTS', 'DURATION', 'ACTIVATIONS'], rows);
}
