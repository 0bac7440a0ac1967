// The served OpenAPI document is the contract, and a fuzzer holds the server to it: Schemathesis
// (installed by scripts/schemathesis/install.sh into a venv cached outside the clone) generates
// requests from /openapi/v3 — valid ones and ones the schemas refuse — against a real
// `marina server --no-controllers`, signed in with a real token, and fails on:
//   - any 5xx (not_a_server_error)
//   - a status code the operation does not document (status_code_conformance)
//   - a request the schemas refuse that is answered with 2xx (negative_data_rejection)
//   - an answer that breaks its own schema or content type (response_schema_conformance,
//     content_type_conformance)
//   - an operation that answers without the token (ignored_auth)
// A function and a pipeline are deployed first, so that calls of the function service reach them.
// The budget is bounded: every boundary value once (coverage phase), a few random cases per
// operation (fuzzing) and a few stateful chains (create → read → change → delete).
// The run's log is kept in test-artifacts/fuzz/ when it fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION } from '../../src/api/meta.js';
import { MarinaClient } from '../../src/client/index.js';
import { ROOT, startServerProcess, type ServerProcess } from '../support/marina.js';

const SCRIPTS = join(ROOT, 'scripts', 'schemathesis');
const FUZZ_USER = 'fuzz';
const FUZZ_PROJECT = 'default';
/** A function and a pipeline the fuzzer calls (schemathesis.toml names them), so that calls reach them. */
const FUZZ_FUNCTION = 'echo';
const FUZZ_PIPELINE = 'chain';
/** Fixed, so that a failure can be replayed; MARINA_FUZZ_SEED explores other cases. */
const SEED = process.env.MARINA_FUZZ_SEED ?? '20261101';
const RUN_TIMEOUT_MS = 15 * 60_000;

let tmp = '';
let server: ServerProcess | undefined;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'marina-fuzz-'));
});
after(async () => {
  await server?.stop(10_000);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The `st` executable, installed once per machine; undefined when Python cannot install it. */
function schemathesis(): { st?: string; why?: string } {
  const r = spawnSync('bash', [join(SCRIPTS, 'install.sh')], { encoding: 'utf8', timeout: 10 * 60_000 });
  if (r.status === 3) return { why: r.stderr.trim() };
  assert.equal(r.status, 0, `installing Schemathesis failed:\n${r.stderr}`);
  return { st: r.stdout.trim().split('\n').pop() };
}

test('the API keeps its OpenAPI contract under Schemathesis', { timeout: RUN_TIMEOUT_MS + 12 * 60_000 }, async (t) => {
  const { st, why } = schemathesis();
  if (!st) {
    t.skip(`Python 3 with venv and pip is not available, so Schemathesis cannot be installed: ${why}`);
    return;
  }

  server = await startServerProcess({
    dataDir: join(tmp, 'data'),
    listen: '127.0.0.1:0',
    logFile: join(tmp, 'server.log'),
    env: { PATH: process.env.PATH, HOME: tmp, MARINA_LOG_LEVEL: 'warn' },
    args: ['--no-controllers'],
  });
  assert.ok(server.bootstrapToken, 'a fresh data directory prints the bootstrap token');

  // The fuzzer signs in as a platform admin of its own, so that every operation is reachable.
  const admin = new MarinaClient({ server: server.url, token: server.bootstrapToken });
  await admin.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: FUZZ_USER }, spec: { platformAdmin: true } });
  const token = await admin.createToken({ user: FUZZ_USER, description: 'schemathesis' });
  await admin.create({
    apiVersion: API_VERSION,
    kind: 'Function',
    metadata: { name: FUZZ_FUNCTION, project: FUZZ_PROJECT },
    spec: { source: { code: 'export default (event) => event;' }, limits: { timeoutSeconds: 10 } },
  });
  await admin.create({
    apiVersion: API_VERSION,
    kind: 'Pipeline',
    metadata: { name: FUZZ_PIPELINE, project: FUZZ_PROJECT },
    spec: { steps: [{ name: 'first', function: FUZZ_FUNCTION }, { name: 'second', function: FUZZ_FUNCTION }] },
  });

  const output = join(tmp, 'schemathesis.txt');
  const fd = openSync(output, 'w');
  let code: number | null;
  try {
    code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(
        st,
        [
          '--config-file', join(SCRIPTS, 'schemathesis.toml'),
          'run', `${server!.url}/openapi/v3`,
          '--header', `Authorization: Bearer ${token.token}`,
          '--checks', 'not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth',
          '--phases', 'coverage,fuzzing,stateful',
          '--max-examples', '5',
          '--seed', SEED,
          '--workers', '2',
          '--request-timeout', '30',
          '--generation-database', 'none',
          '--no-color',
        ],
        {
          cwd: tmp,
          stdio: ['ignore', fd, fd],
          env: {
            PATH: process.env.PATH,
            HOME: tmp,
            PYTHONPATH: SCRIPTS,
            // Nothing written into the clone.
            PYTHONDONTWRITEBYTECODE: '1',
            SCHEMATHESIS_HOOKS: 'hooks',
            MARINA_FUZZ_USER: FUZZ_USER,
            MARINA_FUZZ_TOKEN_ID: token.id,
            MARINA_FUZZ_PROJECT: FUZZ_PROJECT,
            MARINA_FUZZ_FUNCTION: FUZZ_FUNCTION,
            MARINA_FUZZ_PIPELINE: FUZZ_PIPELINE,
          },
        },
      );
      const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
      child.on('error', reject);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  } finally {
    closeSync(fd);
  }

  const report = readFileSync(output, 'utf8');
  const summary = report.slice(report.lastIndexOf('SUMMARY'));
  t.diagnostic(summary.split('\n').filter((l) => /generated|Tested|Links/.test(l)).join(' | ').trim());
  if (code !== 0) {
    const keep = join(ROOT, 'test-artifacts', 'fuzz');
    mkdirSync(keep, { recursive: true });
    copyFileSync(output, join(keep, 'schemathesis.txt'));
    copyFileSync(join(tmp, 'server.log'), join(keep, 'server.log'));
  }
  const failures = report.includes('= FAILURES =') ? report.slice(report.indexOf('= FAILURES ='), report.indexOf('= WARNINGS =') >= 0 ? report.indexOf('= WARNINGS =') : undefined) : '';
  const errors = report.includes('= ERRORS =') ? report.slice(report.indexOf('= ERRORS ='), report.indexOf('= FAILURES =') >= 0 ? report.indexOf('= FAILURES =') : undefined) : '';
  assert.equal(code, 0, `Schemathesis found problems (exit ${code}; full log in test-artifacts/fuzz/):\n${(errors + failures).slice(0, 20_000) || report.slice(-6000)}`);
  assert.ok(server.running(), 'the server survived the run');
});
