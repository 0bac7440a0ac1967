// The function service in the web console, in a real browser: Debian's Chromium (headless, driven
// by playwright-core) against a real `marina server --no-controllers` whose functions run in the
// real sandbox. A function deployed through the API shows in the console with its revision,
// triggers and readiness; invoking it from the page shows the result, the new activation and its
// log; a failed asynchronous call shows in the dead letters and is replayed from there; a pipeline
// run started from its page is traced step by step. Screenshots go to test-artifacts/console-functions/.
//
// Skips when /usr/bin/chromium, the built console (npm run build) or bubblewrap is missing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserServer, type Page } from 'playwright-core';
import { isProcessGroupAlive } from '../../src/proc/index.js';
import { apiRequest, ROOT, startServerProcess, waitUntil, type ServerProcess } from '../support/marina.js';

const CHROMIUM = process.env.MARINA_TEST_CHROMIUM ?? '/usr/bin/chromium';
const BUILT = join(ROOT, 'dist', 'console', 'index.html');
const skip = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}; install it with: apt-get install chromium`
  : !existsSync(BUILT)
    ? 'the console is not built (npm run build)'
    : !existsSync('/usr/bin/bwrap')
      ? 'no bubblewrap (apt-get install bubblewrap): functions cannot run'
      : false;
if (skip) console.log(`SKIP console functions test: ${skip}`);

const PROJECT = 'default';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'console-functions');

describe('the function pages of the web console in a real browser', { skip, timeout: 300_000 }, () => {
  let tmp = '';
  let server: ServerProcess | undefined;
  let token = '';
  let browserServer: BrowserServer | undefined;
  let browserPid: number | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const pageErrors: string[] = [];
  let shots = 0;

  const api = (method: string, path: string, body?: unknown) => apiRequest(server!.url, token, method, path, body);
  const shot = async (name: string) => {
    shots++;
    await page.screenshot({ path: join(ARTIFACTS, `${String(shots).padStart(2, '0')}-${name}.png`), fullPage: true });
  };
  const deploy = async (body: unknown) => {
    const r = await api('POST', `/projects/${PROJECT}/${(body as { kind: string }).kind === 'Pipeline' ? 'pipelines' : 'functions'}`, body);
    assert.equal(r.status, 201, r.text);
  };

  before(async () => {
    if (skip) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-console-fn-'));
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServerProcess({
      dataDir: join(tmp, 'data'),
      listen: '127.0.0.1:0',
      logFile: join(tmp, 'server.log'),
      env: { PATH: process.env.PATH, HOME: tmp, MARINA_LOG_LEVEL: 'warn' },
      args: ['--no-controllers'],
    });
    token = server.bootstrapToken!;
    browserServer = await chromium.launchServer({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
    });
    browserPid = browserServer.process().pid;
    browser = await chromium.connect(browserServer.wsEndpoint());
    page = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    if (!tmp) return;
    try {
      await browser?.close().catch(() => undefined);
      await browserServer?.close().catch(() => undefined);
    } finally {
      if (browserPid && isProcessGroupAlive(browserPid)) {
        try {
          process.kill(-browserPid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
      await server?.stop(10_000);
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('shows a function deployed through the API with its revision, triggers and readiness', async () => {
    await deploy({
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'Function',
      metadata: { name: 'greet' },
      spec: {
        source: { language: 'typescript', code: 'export default (e: { name?: string } | null, ctx: any) => { ctx.logger.info(`greeting ${e?.name}`); return { hello: e?.name ?? "nobody" }; };' },
        triggers: { http: { public: true }, cron: [{ name: 'nightly', schedule: '0 3 * * *', timeZone: 'Europe/Berlin' }] },
      },
    });
    await page.goto(`${server!.url}/console/login`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: PROJECT, exact: true }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Functions' }).click();
    await page.getByRole('heading', { name: `Functions in ${PROJECT}` }).waitFor();
    const row = page.locator('tr[data-function="greet"]');
    await row.getByText('Ready').waitFor();
    assert.match((await row.textContent()) ?? '', /greet.*Ready.*1.*HTTP, cron nightly.*\/fn\/default\/greet/);
    await shot('functions');

    await row.getByRole('link', { name: 'greet' }).click();
    await page.getByRole('heading', { name: 'Function greet' }).waitFor();
    assert.equal(await page.getByTestId('ready').textContent(), 'Ready');
    assert.equal(await page.getByTestId('revision').textContent(), '1');
    const triggers = (await page.getByTestId('triggers').textContent()) ?? '';
    assert.match(triggers, /HTTP: \/fn\/default\/greet \(public: no token needed\)/);
    assert.match(triggers, /cron nightly: 0 3 \* \* \* \(Europe\/Berlin/);
    await page.getByText('None: scaled to zero.').waitFor();
  });

  it('invokes from the page: the result, the activation and its log', async () => {
    await page.getByLabel('Event (JSON; empty: null)').fill('{not json');
    await page.getByRole('button', { name: 'Invoke' }).click();
    await page.getByRole('alert').filter({ hasText: 'The event is not JSON' }).waitFor();

    await page.getByLabel('Event (JSON; empty: null)').fill('{"name": "console"}');
    await page.getByRole('button', { name: 'Invoke' }).click();
    const result = page.getByTestId('invoke-result');
    await result.waitFor();
    assert.equal(await result.getAttribute('data-outcome'), 'success');
    assert.match((await result.textContent()) ?? '', /success activation [0-9a-f]{8} \(cold start\)[\s\S]*"hello": "console"/);
    // The instance stays warm for its idle time, and the activation shows in the list.
    await page.getByTestId('instances').locator('text=ready').waitFor();
    const activation = page.locator('tr[data-activation]').first();
    await activation.waitFor();
    assert.equal(await activation.getAttribute('data-outcome'), 'success');
    assert.match((await activation.textContent()) ?? '', /api.*1.*success/);
    await activation.locator('summary').click();
    const logs = activation.getByTestId('logs');
    await logs.waitFor();
    assert.equal((await logs.textContent())?.trim(), 'info: greeting console');
    await shot('function-invoked');
  });

  it('lists a failed asynchronous call in the dead letters; after a fix it is replayed from there', async () => {
    await deploy({
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'Function',
      metadata: { name: 'flaky' },
      spec: { source: { code: 'export default () => { throw new Error("not yet") }' }, triggers: { asyncRetry: { maxAttempts: 1 } } },
    });
    const queued = await api('POST', `/projects/${PROJECT}/functions/flaky/invoke?async=true`, { order: 7 });
    assert.equal(queued.status, 202, queued.text);
    const id = (queued.json as { id: string }).id;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Functions' }).click();
    await page.getByRole('link', { name: 'Dead letters' }).click();
    await page.getByRole('heading', { name: `Dead letters in ${PROJECT}` }).waitFor();
    const row = page.locator(`tr[data-deadletter="${id}"]`);
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /function flaky.*api.*1\/1.*error: Error: not yet/);
    await shot('dead-letters');

    // The fix: a new revision; a replay runs on the current one.
    const fixed = await api('PATCH', `/projects/${PROJECT}/functions/flaky`, { spec: { source: { code: 'export default (e) => `order ${e.order} done`' } } });
    assert.equal(fixed.status, 200, fixed.text);
    await waitUntil('revision 2', 20_000, async () => ((await api('GET', `/projects/${PROJECT}/functions/flaky`)).json as { status?: { revision?: number } }).status?.revision === 2 || undefined, 100);
    await row.getByRole('button', { name: `Replay dead letter ${id}` }).click();
    await page.getByRole('status').filter({ hasText: `Dead letter ${id.slice(0, 8)} queued again` }).waitFor();
    await row.waitFor({ state: 'detached' });
    await page.goto(`${server!.url}/console/projects/${PROJECT}/functions/flaky`);
    const replayed = page.locator('tr[data-activation][data-outcome="success"]');
    await replayed.waitFor();
    assert.match((await replayed.textContent()) ?? '', /api.*2.*success/);
    await replayed.locator('summary').click();
    await replayed.locator('pre.result', { hasText: 'order 7 done' }).waitFor();
  });

  it('runs a pipeline from its page and traces the run step by step', async () => {
    for (const [name, code] of [['parse', 'export default (e) => Number(e.n)'], ['double', 'export default (n) => n * 2'], ['square', 'export default (n) => n * n'], ['sum', 'export default (o) => o.double + o.square']]) {
      await deploy({ apiVersion: 'marina.dev/v1alpha1', kind: 'Function', metadata: { name }, spec: { source: { code } } });
    }
    await deploy({
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'Pipeline',
      metadata: { name: 'math' },
      spec: { steps: [{ name: 'parse', function: 'parse' }, { name: 'fan', parallel: [{ name: 'double', function: 'double' }, { name: 'square', function: 'square' }] }, { name: 'join', function: 'sum' }] },
    });
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Pipelines' }).click();
    await page.getByRole('heading', { name: `Pipelines in ${PROJECT}` }).waitFor();
    assert.match((await page.locator('tr[data-pipeline="math"]').textContent()) ?? '', /parse → \(double ∥ square\) → sum/);
    await page.getByRole('link', { name: 'math' }).click();
    await page.getByRole('heading', { name: 'Pipeline math' }).waitFor();
    await page.getByLabel('Input of the first step (JSON; empty: null)').fill('{"n": "4"}');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByRole('heading', { name: /^Run [0-9a-f]{8} of math$/ }).waitFor();
    await page.getByTestId('run-state').filter({ hasText: 'succeeded' }).waitFor();
    assert.equal((await page.getByTestId('run-output').textContent())?.trim(), '24');
    const steps = page.getByTestId('trace').locator(':scope > li');
    assert.deepEqual(await steps.evaluateAll((els) => els.map((e) => `${e.getAttribute('data-step')}:${e.getAttribute('data-state')}`)), ['parse:succeeded', 'fan:succeeded', 'join:succeeded']);
    const square = page.locator('li[data-step="fan"] li[data-branch="square"]');
    assert.match((await square.textContent()) ?? '', /square: function square — succeeded, 1 attempt/);
    await square.locator('summary').click();
    await square.locator('pre.result', { hasText: '16' }).waitFor();
    await shot('pipeline-run');
    await page.getByRole('link', { name: 'Pipeline math' }).click();
    await page.locator('tr[data-run]').first().getByText('succeeded').waitFor();
    assert.deepEqual(pageErrors, [], 'no script errors on any page');
  });
});
