// The runner: the first and only program of a sandbox. It waits on fd 3 for the function's
// compiled module and environment, loads it, and calls the handler for each invocation:
//   export default async function handler(event, ctx) → result
// ctx = { logger, deadline, invocationId, idempotencyKey, attempt, function, project, revision,
// trigger, remainingMs() }. console output and ctx.logger lines go back tagged with the invocation
// (AsyncLocalStorage), so concurrent invocations keep their own logs.
// Only Node built-ins: this file is bound alone into the sandbox (as /runner/runner.mjs).
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { format } from 'node:util';
import type { HostMessage, RunnerMessage } from './protocol.js';

// fd 3 is one end of a socket pair (Node's 'pipe' stdio): read and written through the event loop
// (epoll), not through fs streams, whose every read and write is a hop to the thread pool — two
// thread wake-ups per message that a loaded machine turns into milliseconds of latency.
const channel = new Socket({ fd: 3, readable: true, writable: true });
const current = new AsyncLocalStorage<string>();
type Handler = (event: unknown, ctx: unknown) => unknown;
let handler: Handler | undefined;
/** The sandbox's own tmpfs: the module is written there and imported (so stack traces name a file). */
const CODE_DIR = '/tmp/.function';

function send(msg: RunnerMessage): void {
  channel.write(JSON.stringify(msg) + '\n');
}

function log(level: string, args: unknown[]): void {
  send({ t: 'log', id: current.getStore(), level, line: format(...args).slice(0, 16384) });
}

for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  console[level] = (...args: unknown[]) => log(level === 'log' ? 'info' : level, args);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return (err.stack ?? `${err.name}: ${err.message}`).slice(0, 8192);
  return format('%o', err).slice(0, 8192);
}

async function load(code: string, env: Record<string, string>): Promise<void> {
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, env);
  mkdirSync(CODE_DIR, { recursive: true });
  writeFileSync(`${CODE_DIR}/index.mjs`, code);
  const mod = (await import(`${CODE_DIR}/index.mjs`)) as { default?: unknown };
  if (typeof mod.default !== 'function') throw new Error('the module has no default export function (the handler)');
  handler = mod.default as Handler;
}

async function invoke(msg: Extract<HostMessage, { t: 'invoke' }>): Promise<void> {
  const { id, ctx } = msg;
  await current.run(id, async () => {
    try {
      if (!handler) throw new Error('no function loaded');
      const logger = Object.fromEntries(['debug', 'info', 'warn', 'error'].map((l) => [l, (...args: unknown[]) => log(l, args)]));
      const value = await handler(msg.event, { ...ctx, logger, remainingMs: () => ctx.deadline - Date.now() });
      // undefined is no JSON value: a handler that returns nothing answers null.
      send({ t: 'result', id, ok: true, value: value === undefined ? null : value, cpuMs: cpuMs() });
    } catch (err) {
      send({ t: 'result', id, ok: false, error: errorText(err), cpuMs: cpuMs() });
    }
  });
}

createInterface({ input: channel, crlfDelay: Infinity }).on('line', (line) => {
  if (!line) return;
  const msg = JSON.parse(line) as HostMessage;
  if (msg.t === 'load') {
    load(msg.code, msg.env).then(
      () => send({ t: 'loaded' }),
      (err: unknown) => send({ t: 'loadError', error: errorText(err) }),
    );
  } else if (msg.t === 'invoke') {
    void invoke(msg);
  }
});
// Marina closed the pipe: nothing more will come.
channel.on('end', () => process.exit(0));
process.on('unhandledRejection', (err) => log('error', ['unhandled rejection:', err]));
send({ t: 'ready' });
