// `marina function ...` and `marina pipeline ...`: the real CLI against a real `marina server`
// (its own process group, stopped in after()) whose functions run in the real sandbox.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Cli, startServerProcess, waitUntil, type ServerProcess } from '../support/marina.js';

let tmp = '';
let server: ServerProcess | undefined;
let cli: Cli;
const file = (name: string, text: string) => {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
};

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'marina-fn-cli-'));
  server = await startServerProcess({
    dataDir: join(tmp, 'data'),
    listen: '127.0.0.1:0',
    logFile: join(tmp, 'server.log'),
    env: { PATH: process.env.PATH, HOME: tmp, MARINA_LOG_LEVEL: 'warn' },
    args: ['--no-controllers'],
  });
  cli = new Cli(tmp);
  await cli.ok(['login', server.url, '--token', server.bootstrapToken!]);
  await cli.ok(['config', 'set-context', '--project', 'default']);
});

after(async () => {
  await server?.stop(10_000);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const PIPELINE = `apiVersion: marina.dev/v1alpha1
kind: Pipeline
metadata: { name: math }
spec:
  steps:
    - { name: parse, function: parse }
    - { name: fan, parallel: [{ name: double, function: double }, { name: square, function: square }] }
    - { name: join, function: sum }
---
apiVersion: marina.dev/v1alpha1
kind: Function
metadata: { name: parse }
spec: { source: { code: "export default (e) => Number(e.n)" } }
---
apiVersion: marina.dev/v1alpha1
kind: Function
metadata: { name: double }
spec: { source: { code: "export default (n) => n * 2" } }
---
apiVersion: marina.dev/v1alpha1
kind: Function
metadata: { name: square }
spec: { source: { code: "export default (n) => n * n" } }
---
apiVersion: marina.dev/v1alpha1
kind: Function
metadata: { name: sum }
spec: { source: { code: "export default (o) => o.double + o.square" } }
`;

describe('marina function and marina pipeline against a real server', { timeout: 300_000 }, () => {
  it('deploys a TypeScript file and waits for its revision', async () => {
    const src = file('hello.ts', 'export default async (e: { name?: string } | null, ctx: any) => { ctx.logger.info("greeting", e?.name); return `${process.env.GREETING}, ${e?.name ?? "nobody"}`; };\n');
    const r = await cli.ok(['function', 'deploy', '-f', src, '--env', 'GREETING=hello']);
    assert.match(r.stdout, /^function\/hello created\nfunction\/hello ready: revision 1, http:\/\/127\.0\.0\.1:\d+\/fn\/default\/hello\n$/);
    assert.match(r.stderr, /waiting for function\/hello revision 1/);
    const again = await cli.ok(['function', 'deploy', '-f', src, '--env', 'GREETING=hi']);
    assert.match(again.stdout, /function\/hello configured\nfunction\/hello ready: revision 2/);
  });

  it('invokes: the result on stdout, the activation on stderr; json and yaml give the whole invocation', async () => {
    const r = await cli.ok(['function', 'invoke', 'hello', '--data', '{"name":"you"}']);
    assert.equal(r.stdout, 'hi, you\n');
    assert.match(r.stderr, /^activation [0-9a-f-]{36}: success in \d+ ms/);
    const json = JSON.parse((await cli.ok(['function', 'invoke', 'hello', '-o', 'json'])).stdout);
    assert.equal(json.kind, 'Invocation');
    assert.equal(json.result, 'hi, nobody');
    assert.equal(json.activation.revision, 2);
    const yaml = parseYaml((await cli.ok(['fn', 'invoke', 'hello', '--data', '"x"', '-o', 'yaml'])).stdout);
    assert.equal(yaml.activation.outcome, 'success');
    const bad = await cli.ok(['function', 'invoke', 'hello', '--data', '{nope'], 60_000, 2);
    assert.match(bad.stderr, /--data: not JSON/);
    const missing = await cli.ok(['function', 'invoke', 'nope'], 60_000, 3);
    assert.match(missing.stderr, /not found/);
  });

  it('lists activations and prints their logs', async () => {
    const table = (await cli.ok(['function', 'activations', 'hello'])).stdout;
    assert.match(table, /^ID\s+TRIGGER\s+REVISION\s+OUTCOME\s+COLD-START\s+DURATION\s+STARTED\n/);
    assert.equal(table.trim().split('\n').length, 4, 'three invocations, newest first');
    const list = parseYaml((await cli.ok(['function', 'activations', 'hello', '-o', 'yaml', '--limit', '1'])).stdout);
    assert.equal(list.items.length, 1);
    assert.equal(list.items[0].logs, undefined, 'the list leaves the logs out');
    const logs = (await cli.ok(['function', 'logs', 'hello'])).stdout;
    assert.match(logs, /==> .* activation [0-9a-f-]{36} \(api, success\) <==\ninfo: greeting you\n/);
    const one = (await cli.ok(['function', 'logs', 'hello', '--activation', list.items[0].id])).stdout;
    assert.equal(one.match(/==>/g)?.length, 1);
  });

  it('a failing call exits 1; a failing async call lands in the dead-letter list and is replayed', async () => {
    const manifest = file(
      'flaky.yaml',
      'apiVersion: marina.dev/v1alpha1\nkind: Function\nmetadata: { name: flaky }\nspec:\n  source: { code: "export default () => { throw new Error(\'boom\') }" }\n  triggers: { asyncRetry: { maxAttempts: 1 } }\n',
    );
    await cli.ok(['function', 'deploy', '-f', manifest]);
    const failed = await cli.ok(['function', 'invoke', 'flaky'], 60_000, 1);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, /^activation \S+: error in \d+ ms( \(cold start \d+ ms\))?: Error: boom\n$/);
    const queued = await cli.ok(['function', 'invoke', 'flaky', '--async', '--idempotency-key', 'cli-1']);
    const id = /delivery ([0-9a-f-]{36})/.exec(queued.stdout)?.[1];
    assert.ok(id, queued.stdout);
    const dead = await waitUntil('the dead letter', 30_000, async () => {
      const r = await cli.ok(['function', 'dlq']);
      return r.stdout.includes(id) ? r.stdout : undefined;
    }, 250);
    assert.match(dead, new RegExp(`${id}\\s+function/flaky\\s+api\\s+1/1\\s+\\S+ ago\\s+error: Error: boom .activation`));
    const replayed = await cli.ok(['function', 'dlq', 'replay', id]);
    assert.equal(replayed.stdout, `deadletter/${id} replayed: function/flaky queued again\n`);
    const gone = await cli.ok(['function', 'dlq', 'replay', 'nope'], 60_000, 3);
    assert.match(gone.stderr, /not found/);
    // The replay fails again and comes back to the list, with a second activation.
    await waitUntil('the replayed attempt', 30_000, async () => ((await cli.ok(['function', 'activations', 'flaky'])).stdout.match(/api\s+1\s+error/g)?.length ?? 0) >= 3 || undefined, 250);
  });

  it('applies a pipeline with its functions, runs it step by step, lists and traces its runs', async () => {
    const applied = await cli.ok(['pipeline', 'apply', '-f', file('math.yaml', PIPELINE)]);
    assert.deepEqual(applied.stdout.trim().split('\n'), ['function/parse created', 'function/double created', 'function/square created', 'function/sum created', 'pipeline/math created']);
    const run = await cli.ok(['pipeline', 'run', 'math', '--data', '{"n":"3"}']);
    assert.equal(run.stdout, '15\n');
    const steps = run.stderr.split('\n').filter((l) => l.startsWith('step '));
    assert.deepEqual(
      steps.map((l) => l.replace(/: 1 attempt, \d+ ms$/, '')),
      ['step parse (function parse) succeeded', 'step fan/double (function double) succeeded', 'step fan/square (function square) succeeded', 'step join (function sum) succeeded'],
    );
    assert.match(run.stderr, /run [0-9a-f-]{36} of pipeline math: succeeded after/);
    const runs = (await cli.ok(['pipeline', 'runs', 'math'])).stdout;
    const runId = /^([0-9a-f-]{36})\s+succeeded\s+4\/4/m.exec(runs)?.[1];
    assert.ok(runId, runs);
    const described = (await cli.ok(['pipeline', 'describe', 'math'])).stdout;
    assert.match(described, /2\. fan: in parallel double → function double, square → function square/);
    assert.match(described, /Latest runs:\nID/);
    const trace = (await cli.ok(['pipeline', 'describe', 'math', runId])).stdout;
    assert.match(trace, /^STEP\s+FUNCTION\s+OUTCOME\s+ATTEMPTS\s+DURATION\s+ACTIVATIONS$/m);
    assert.match(trace, /^fan\/square\s+square\s+succeeded\s+1\s+\d+ ms\s+[0-9a-f-]{36} \(success\)$/m);
    const json = JSON.parse((await cli.ok(['pipeline', 'describe', 'math', runId, '-o', 'json'])).stdout);
    assert.equal(json.activations.length, 4);
    assert.equal(json.output, 15);
  });

  it('a pipeline run that fails exits 1 and names its dead letter', async () => {
    await cli.ok(['pipeline', 'apply', '-f', file('broken.yaml', 'apiVersion: marina.dev/v1alpha1\nkind: Pipeline\nmetadata: { name: broken }\nspec:\n  steps: [{ name: only, function: flaky, retry: { maxAttempts: 1 } }]\n')]);
    const r = await cli.ok(['pipeline', 'run', 'broken'], 60_000, 1);
    assert.match(r.stderr, /step only \(function flaky\) failed: 1 attempt/);
    assert.match(r.stderr, /marina function dlq replay [0-9a-f-]{36}/);
    const other = await cli.ok(['pipeline', 'apply', '-f', file('secret.yaml', 'apiVersion: marina.dev/v1alpha1\nkind: Secret\nmetadata: { name: s }\nspec: { type: opaque, data: {} }\n')], 60_000, 5);
    assert.match(other.stderr, /Secret is not a Function or Pipeline; use `marina apply -f`/);
  });
});
