// Issue 6's "done when", in a real browser: Debian's Chromium (headless, driven by playwright-core)
// against a real `marina server` process (its own process group, data directory and loopback
// block) with real clusters of the local provider.
//
// Log in with the admin token → projects → the create form shows the API's messages next to the
// fields (replicas -1, a bad pod CIDR) → a double click on submit creates exactly one cluster →
// the detail page follows it to Ready without a reload (kubeconfig download) → scaling the workers
// 1 → 2 shows the new machine and Node → a notification channel (bad URL first) → SIGKILL of a
// worker's process group fires a ComponentUnhealthy alert on the alerts page, which resolves once
// auto-healing replaced the machine → deleting the channel and then the cluster through
// confirmation dialogs. A full-page screenshot of every page goes to test-artifacts/console/.
//
// Skips when the Kubernetes toolchain or /usr/bin/chromium is missing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserServer, type Locator, type Page } from 'playwright-core';
import { isProcessGroupAlive } from '../../src/proc/index.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import {
  apiRequest,
  Cli,
  freePort,
  machineRecords,
  pickAddressBase,
  ROOT,
  serverEnv,
  serverLogTail,
  startServerProcess,
  teardown,
  waitUntil,
  type ServerProcess,
} from '../support/marina.js';

const CHROMIUM = process.env.MARINA_TEST_CHROMIUM ?? '/usr/bin/chromium';
const { toolchain, skip: noToolchain } = toolchainOrSkip();
const skip = noToolchain || (existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}; install it with: apt-get install chromium`);
if (skip) console.log(`SKIP console e2e test: ${skip}`);

const PROJECT = 'default';
const CLUSTER = 'web';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'console');
/** Cluster provisioning and healing take real processes; the UI must follow within these. */
const READY_MS = 300_000;
const HEAL_MS = 300_000;

interface MachineJson {
  metadata: { name: string };
  spec: { pool: string };
  status?: { phase?: string };
}

describe('e2e: the web console in a real browser against a real Marina', { skip, timeout: 1_200_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let server: ServerProcess | undefined;
  let cli: Cli | undefined;
  let token = '';
  let browserServer: BrowserServer | undefined;
  let browserPid: number | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let receiver: Server | undefined;
  let receiverUrl = '';
  const received: string[] = [];
  const pageErrors: string[] = [];
  /** POSTs of Clusters the browser sent (to prove a double click sends one). */
  let clusterPosts = 0;
  let shots = 0;

  const api = (method: string, path: string, body?: unknown) => apiRequest(server!.url, token, method, path, body);
  const shot = async (name: string) => {
    shots++;
    await page.screenshot({ path: join(ARTIFACTS, `${String(shots).padStart(2, '0')}-${name}.png`), fullPage: true });
  };
  const mainNav = () => page.getByRole('navigation', { name: 'Main' });
  /** The text of the elements an input's aria-describedby points at: where its error message is. */
  const description = async (input: Locator): Promise<string> => {
    const ids = ((await input.getAttribute('aria-describedby')) ?? '').split(/\s+/).filter(Boolean);
    const texts = await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()));
    return texts.join(' | ');
  };
  /** The API's own message for a field, for a body the form would send (422: nothing is created). */
  const apiMessage = async (path: string, body: unknown, field: string): Promise<string> => {
    const r = await api('POST', path, body);
    assert.equal(r.status, 422, r.text);
    const cause = (r.json.causes as { field: string; message: string }[]).find((c) => c.field === field);
    assert.ok(cause, `the API names ${field}: ${r.text}`);
    return cause.message;
  };
  const machines = async (): Promise<MachineJson[]> => (await api('GET', `/projects/${PROJECT}/machines`)).json.items as MachineJson[];
  const cluster = () => page.locator('[data-testid="phase"]');

  before(async () => {
    if (skip) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-console-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    const port = await freePort();
    const addressBase = await pickAddressBase();
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${port}`,
      logFile: join(tmp, 'server.log'),
      env: serverEnv({ home: join(tmp, 'home'), toolchain: toolchain!, addressBase }),
    });
    token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    // The CLI only serves the cleanup (teardown deletes a cluster a failed test left behind).
    cli = new Cli(join(tmp, 'home'));
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token')]);

    // A webhook receiver for the notification channel, in this process.
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(body);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

    browserServer = await chromium.launchServer({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
    });
    browserPid = browserServer.process().pid;
    browser = await chromium.connect(browserServer.wsEndpoint());
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('request', (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === `/api/v1alpha1/projects/${PROJECT}/clusters`) clusterPosts++;
    });
  });

  after(async () => {
    if (!tmp) return;
    try {
      await browser?.close().catch(() => undefined);
      await browserServer?.close().catch(() => undefined);
    } finally {
      // Whatever Playwright left of the browser: its process group, by pid.
      if (browserPid && isProcessGroupAlive(browserPid)) {
        try {
          process.kill(-browserPid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
      await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
      await teardown({ tmp, dataDir, cli, server, cluster: CLUSTER });
    }
  });

  it('serves the console at / and logs in with the admin token', async () => {
    await page.goto(`${server!.url}/`);
    await page.getByRole('heading', { name: 'Log in to Marina' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/console/login', 'not logged in: the login page');
    await shot('login');

    const input = page.getByLabel('API token');
    await input.fill('mrn_not-a-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'the server refused the token' }).waitFor();
    assert.equal(await input.getAttribute('aria-invalid'), 'true');

    await input.fill(token);
    await input.press('Enter'); // the keyboard submits too
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    await page.getByRole('link', { name: PROJECT, exact: true }).waitFor();
    assert.match((await page.locator('tbody tr').first().textContent()) ?? '', /default.*Default project/);
    await shot('projects');
  });

  it('the create form shows the API\'s messages next to the fields; a double click creates one cluster', async () => {
    await page.getByRole('link', { name: PROJECT, exact: true }).click();
    await page.getByRole('heading', { name: `Clusters in ${PROJECT}` }).waitFor();
    await page.getByText('No clusters in this project yet.').waitFor();
    await shot('clusters-empty');

    await page.getByRole('link', { name: 'Create cluster' }).click();
    await page.getByRole('heading', { name: 'Create a cluster' }).waitFor();
    await page.getByLabel('Cluster name').fill(CLUSTER);
    const pool1 = page.getByRole('group', { name: 'Pool 1' });
    const pool2 = page.getByRole('group', { name: 'Pool 2' });
    assert.equal(await pool1.getByLabel('Name').inputValue(), 'controlplane');
    assert.ok(await pool1.getByRole('checkbox', { name: 'etcd' }).isChecked());
    assert.ok(await pool1.getByRole('checkbox', { name: 'Control plane' }).isChecked());
    await pool1.getByLabel('Replicas').fill('1');
    assert.equal(await pool2.getByLabel('Name').inputValue(), 'workers');
    assert.ok(await pool2.getByRole('checkbox', { name: 'Worker' }).isChecked());
    const replicas = pool2.getByLabel('Replicas');
    await replicas.fill('-1');
    const submit = page.getByRole('button', { name: 'Create cluster' });

    const pools = (workers: number) => [
      { name: 'controlplane', roles: ['etcd', 'controlplane'], replicas: 1 },
      { name: 'workers', roles: ['worker'], replicas: workers },
    ];
    const body = (spec: Record<string, unknown>) => ({ apiVersion: 'marina.dev/v1alpha1', kind: 'Cluster', metadata: { name: CLUSTER }, spec });
    const replicasMessage = await apiMessage(`/projects/${PROJECT}/clusters`, body({ nodePools: pools(-1) }), 'spec.nodePools[1].replicas');
    await submit.click();
    await waitUntil('the replicas field marked invalid', 30_000, async () => ((await replicas.getAttribute('aria-invalid')) === 'true' ? true : undefined), 100);
    assert.equal(await description(replicas), replicasMessage, 'the API\'s message is the replicas input\'s description');
    assert.equal(await pool2.getByText(replicasMessage).count(), 1, 'shown inside pool 2, next to the field');
    assert.equal(await pool1.getByLabel('Replicas').getAttribute('aria-invalid'), null, 'the other pool is fine');
    await shot('create-invalid-replicas');

    await replicas.fill('1');
    const pod = page.getByLabel('Pod CIDR');
    await pod.fill('10.244.0.0/33');
    const cidrMessage = await apiMessage(`/projects/${PROJECT}/clusters`, body({ nodePools: pools(1), network: { podCIDR: '10.244.0.0/33' } }), 'spec.network.podCIDR');
    await submit.click();
    await waitUntil('the pod CIDR field marked invalid', 30_000, async () => ((await pod.getAttribute('aria-invalid')) === 'true' ? true : undefined), 100);
    assert.equal(await description(pod), cidrMessage);
    assert.equal(await replicas.getAttribute('aria-invalid'), null, 'the fixed field has no error any more');
    await shot('create-invalid-cidr');
    assert.deepEqual((await api('GET', `/projects/${PROJECT}/clusters`)).json.items, [], 'nothing was created by the bad submits');

    await pod.fill('');
    clusterPosts = 0;
    await submit.dblclick();
    await page.getByRole('heading', { name: CLUSTER, exact: true }).waitFor();
    assert.equal(new URL(page.url()).pathname, `/console/projects/${PROJECT}/clusters/${CLUSTER}`);
    const list = (await api('GET', `/projects/${PROJECT}/clusters`)).json.items as { metadata: { name: string } }[];
    assert.deepEqual(list.map((c) => c.metadata.name), [CLUSTER], 'exactly one cluster');
    assert.equal(clusterPosts, 1, 'the double click sent one POST');

    // Test setup through the API (the form does not expose these): check the cluster every second,
    // scrape metrics every 3 s, and replace an unreachable worker after 5 s, so that the alert and
    // the plots come within the test's patience.
    for (;;) {
      const c = (await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).json;
      c.spec.health = { intervalSeconds: 1, metricsIntervalSeconds: 3 };
      c.spec.nodePools = c.spec.nodePools.map((p: { name: string }) => (p.name === 'workers' ? { ...p, healing: { unhealthyTimeoutSeconds: 5 } } : p));
      const r = await api('PUT', `/projects/${PROJECT}/clusters/${CLUSTER}`, c);
      if (r.status === 200) break;
      assert.equal(r.status, 409, r.text);
    }
  });

  it('the cluster page follows the cluster to Ready without a reload', async () => {
    await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true));
    await waitUntil('phase Ready on the page', READY_MS, async () => ((await cluster().textContent()) === 'Ready' ? true : undefined), 250).catch((err: Error) => {
      throw new Error(`${err.message}\n${serverLogTail(server!.logFile)}`);
    });
    assert.equal(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument), true, 'no reload happened');

    const machineRows = page.locator('#machines tbody tr');
    await waitUntil('2 Running machines with Ready Nodes', 60_000, async () => {
      const texts = await machineRows.allTextContents();
      return texts.length === 2 && texts.every((t) => /Running/.test(t) && /Ready/.test(t)) ? texts : undefined;
    });
    assert.equal(await page.getByTestId('ready-workers').textContent(), '1/1');
    // Nodes and component checks come from the health endpoint.
    await waitUntil('2 Ready Nodes from the health checker', 60_000, async () => {
      const rows = await page.locator('#nodes tbody tr').allTextContents();
      return rows.length === 2 && rows.every((r) => /Ready/.test(r) && !/Not ready/.test(r)) ? rows : undefined;
    });
    await page.locator('#components tbody tr').first().waitFor();
    await page.locator('#conditions tbody tr').first().waitFor();
    await page.locator('#timeline li').filter({ hasText: `admin create Cluster ${CLUSTER}` }).waitFor();
    // The default add-ons, live, until each is healthy.
    await waitUntil('4 healthy add-ons', 120_000, async () => {
      const rows = await page.locator('#addons tbody tr').allTextContents();
      return rows.length === 4 && rows.every((r) => /Healthy/.test(r)) ? rows : undefined;
    });

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download kubeconfig' }).click()]);
    assert.equal(download.suggestedFilename(), `${CLUSTER}.kubeconfig`);
    await download.saveAs(join(tmp, 'web.kubeconfig')); // the browser is remote to Playwright: copy it here
    const kubeconfig = readFileSync(join(tmp, 'web.kubeconfig'), 'utf8');
    const endpoint = (await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).json.status.endpoint as string;
    assert.match(kubeconfig, /kind: Config/);
    assert.ok(kubeconfig.includes(`server: ${endpoint}`), `the kubeconfig points at ${endpoint}`);
    await shot('cluster-ready');
    assert.equal(clusterPosts, 1, 'still one POST');
  });

  it('operations: a snapshot from the button with live progress; another user\'s operation approved in the browser', async () => {
    await page.getByRole('button', { name: 'Take snapshot' }).click();
    const first = page.locator('#operations tbody tr').first();
    await first.waitFor();
    const name = (await first.getAttribute('data-operation'))!;
    await waitUntil('the snapshot Succeeded on the page', 180_000, async () => ((await page.getByTestId(`op-phase-${name}`).textContent()) === 'Succeeded' ? true : undefined), 250);
    assert.match((await first.textContent()) ?? '', /take: Succeeded.*store: Succeeded.*verify: Succeeded/);
    await page.locator('#timeline li').filter({ hasText: `Snapshot Succeeded (${name})` }).waitFor();

    // bob (an operator) asks for a snapshot that the cluster's policy makes wait for approval.
    assert.equal((await api('POST', '/users', { apiVersion: 'marina.dev/v1alpha1', kind: 'User', metadata: { name: 'bob' }, spec: {} })).status, 201);
    const bobToken = (await api('POST', '/tokens', { user: 'bob' })).json.token as string;
    const project = (await api('GET', `/projects/${PROJECT}`)).json;
    project.spec.members.push({ user: 'bob', role: 'operator' });
    project.spec.operations = { approvalRequired: ['Snapshot'] };
    assert.equal((await api('PUT', `/projects/${PROJECT}`, project)).status, 200);
    const asked = await apiRequest(server!.url, bobToken, 'POST', `/projects/${PROJECT}/operations`, { apiVersion: 'marina.dev/v1alpha1', kind: 'Operation', metadata: { name: 'bobs-snapshot' }, spec: { cluster: CLUSTER, type: 'Snapshot' } });
    assert.equal(asked.status, 201, asked.text);
    const row = page.locator('#operations tbody tr[data-operation="bobs-snapshot"]');
    await waitUntil('bob\'s operation awaiting approval on the page', 30_000, async () => ((await page.getByTestId('op-phase-bobs-snapshot').textContent().catch(() => '')) === 'AwaitingApproval' ? true : undefined), 250);
    await shot('operation-awaiting-approval');
    await row.getByRole('button', { name: 'Approve' }).click();
    await waitUntil('bob\'s snapshot Succeeded after the approval', 180_000, async () => ((await page.getByTestId('op-phase-bobs-snapshot').textContent()) === 'Succeeded' ? true : undefined), 250);
    assert.match((await row.textContent()) ?? '', /approved by admin/);
    delete project.spec.operations;
    const fresh = (await api('GET', `/projects/${PROJECT}`)).json;
    delete fresh.spec.operations;
    assert.equal((await api('PUT', `/projects/${PROJECT}`, fresh)).status, 200);
    await shot('operations');
  });

  it('scaling the workers 1 → 2 shows the new machine and its Node', async () => {
    const input = page.getByLabel('Replicas of pool workers');
    assert.equal(await input.inputValue(), '1');
    await input.fill('2');
    await page.getByRole('button', { name: 'Scale pool workers' }).click();
    await waitUntil('workers 2/2 on the page', READY_MS, async () => ((await page.getByTestId('ready-workers').textContent()) === '2/2' ? true : undefined), 250);
    const workerRows = page.locator('#machines tbody tr[data-pool="workers"]');
    await waitUntil('2 Running workers with Ready Nodes', 60_000, async () => {
      const texts = await workerRows.allTextContents();
      return texts.length === 2 && texts.every((t) => /Running/.test(t) && /Ready/.test(t)) ? true : undefined;
    });
    await waitUntil('3 Nodes from the health checker', 60_000, async () => ((await page.locator('#nodes tbody tr').count()) === 3 ? true : undefined));
    await waitUntil('phase Ready again', READY_MS, async () => ((await cluster().textContent()) === 'Ready' ? true : undefined), 250);
    const spec = (await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).json.spec as { nodePools: { name: string; replicas: number }[] };
    assert.equal(spec.nodePools.find((p) => p.name === 'workers')?.replicas, 2);
    await page.locator('#timeline li').filter({ hasText: `admin update Cluster ${CLUSTER}` }).first().waitFor();
    await shot('cluster-scaled');
  });

  it('notification channels: the API\'s message next to the URL, then a channel', async () => {
    await mainNav().getByRole('link', { name: 'Notification channels' }).click();
    await page.getByRole('heading', { name: `Notification channels of ${PROJECT}` }).waitFor();
    await page.getByLabel('Channel name').fill('oncall');
    const url = page.getByLabel('URL', { exact: true });
    await url.fill('ftp://alerts.example/hook');
    const expected = await apiMessage(
      `/projects/${PROJECT}/notificationchannels`,
      { apiVersion: 'marina.dev/v1alpha1', kind: 'NotificationChannel', metadata: { name: 'oncall' }, spec: { type: 'webhook', url: 'ftp://alerts.example/hook', sendResolved: true } },
      'spec.url',
    );
    await page.getByRole('button', { name: 'Add channel' }).click();
    await waitUntil('the URL field marked invalid', 30_000, async () => ((await url.getAttribute('aria-invalid')) === 'true' ? true : undefined), 100);
    assert.ok((await description(url)).includes(expected), `${await description(url)} includes ${expected}`);
    await shot('channels-invalid-url');

    await url.fill(receiverUrl);
    await page.getByRole('button', { name: 'Add channel' }).click();
    await page.locator('tr[data-channel="oncall"]').waitFor();
    assert.match((await page.locator('tr[data-channel="oncall"]').textContent()) ?? '', /webhook.*http:\/\/127\.0\.0\.1:\d+/);
    await shot('channels');
  });

  it('killing a worker machine fires an alert on the alerts page, resolved once healing replaced it', async () => {
    await mainNav().getByRole('link', { name: /^Alerts/ }).click();
    await page.getByRole('heading', { name: `Alerts in ${PROJECT}` }).waitFor();
    await shot('alerts-before');

    const workers = machineRecords(dataDir).filter((r) => r.cluster === CLUSTER && r.name.startsWith(`${CLUSTER}-workers-`));
    assert.equal(workers.length, 2);
    const victim = workers[0]!;
    assert.ok(victim.pid && isProcessGroupAlive(victim.pid), `the agent of ${victim.name} runs`);
    process.kill(-victim.pid, 'SIGKILL');

    const row = page.locator('tr[data-alert]').filter({ hasText: 'ComponentUnhealthy' }).filter({ hasText: `machine=${victim.name}` });
    await waitUntil(`a firing ComponentUnhealthy alert for ${victim.name}`, HEAL_MS, async () => ((await row.first().getAttribute('data-state', { timeout: 1000 })) === 'firing' ? true : undefined), 200).catch(async (err: Error) => {
      throw new Error(`${err.message}\nalerts: ${JSON.stringify((await api('GET', `/projects/${PROJECT}/alerts`)).json.items.map((a: { metadata: { name: string }; spec: unknown; status: unknown }) => [a.metadata.name, a.spec, a.status]))}`);
    });
    assert.match((await row.first().textContent()) ?? '', /component=agent/);
    assert.match((await row.first().textContent()) ?? '', new RegExp(`${CLUSTER}`));
    await shot('alerts-firing');

    await waitUntil('the alert resolved', HEAL_MS, async () => ((await row.first().getAttribute('data-state', { timeout: 1000 })) === 'resolved' ? true : undefined), 500);
    const ended = await row.first().locator('td').nth(6).textContent(); // State, Severity, Cluster, Summary, Labels, Started, Ended
    assert.match(ended ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, 'an end time');
    // The channel got the alert; the row's delivery log says so.
    await waitUntil('a delivery in the alert\'s log', 60_000, async () => ((await row.first().getByText(/deliver(y|ies)$/).count()) > 0 ? true : undefined), 500);
    await row.first().locator('summary').click(); // open the delivery log (keyboard-reachable <details>)
    await row.first().getByRole('listitem').filter({ hasText: /^oncall firing: delivered HTTP 200/ }).waitFor();
    assert.ok(received.some((b) => b.includes(victim.name)), 'the webhook received the alert');
    await shot('alerts-resolved');

    // The cluster healed: Ready, two workers again, the killed machine gone; the timeline tells.
    await page.getByRole('row').filter({ hasText: `machine=${victim.name}` }).first().getByRole('link', { name: CLUSTER }).click();
    await page.getByRole('heading', { name: CLUSTER, exact: true }).waitFor();
    await waitUntil('2 Running workers, without the killed one', HEAL_MS, async () => {
      const rows = page.locator('#machines tbody tr[data-pool="workers"]');
      const texts = await rows.allTextContents();
      const names = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-machine')));
      return texts.length === 2 && !names.includes(victim.name) && texts.every((t) => /Running/.test(t) && /Ready/.test(t)) ? true : undefined;
    });
    await waitUntil('phase Ready', READY_MS, async () => ((await cluster().textContent()) === 'Ready' ? true : undefined), 250);
    await page.locator('#timeline li').filter({ hasText: 'alert ComponentUnhealthy firing' }).first().waitFor();
    await page.locator('#timeline li').filter({ hasText: 'alert ComponentUnhealthy resolved' }).first().waitFor();
    await page.getByRole('img', { name: /^API latency, latest:/ }).waitFor({ timeout: 60_000 });
    await page.getByRole('img', { name: /^Memory per machine, latest:/ }).waitFor({ timeout: 60_000 });
    await shot('cluster-healed');
  });

  it('deletes the channel and the cluster through confirmation dialogs', async () => {
    // The channel: a plain confirmation.
    await mainNav().getByRole('link', { name: 'Notification channels' }).click();
    await page.getByRole('button', { name: 'Delete channel oncall' }).click();
    const channelDialog = page.getByRole('dialog', { name: 'Delete channel oncall?' });
    await channelDialog.getByRole('button', { name: 'Delete channel' }).click();
    await page.locator('tr[data-channel="oncall"]').waitFor({ state: 'detached' });
    assert.deepEqual((await api('GET', `/projects/${PROJECT}/notificationchannels`)).json.items, []);

    // The cluster: the dialog wants its name typed; Escape cancels and gives focus back.
    await mainNav().getByRole('link', { name: 'Clusters' }).click();
    await page.getByRole('link', { name: CLUSTER, exact: true }).click();
    await page.getByRole('heading', { name: CLUSTER, exact: true }).waitFor();
    const open = page.getByRole('button', { name: 'Delete cluster…' });
    await open.click();
    const dialog = page.getByRole('dialog', { name: `Delete cluster ${CLUSTER}?` });
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: 'Delete cluster' });
    assert.equal(await confirm.isDisabled(), true, 'disabled until the name is typed');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await open.evaluate((el) => el === document.activeElement), true, 'focus is back on the button that opened it');
    assert.equal((await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).status, 200, 'cancel deletes nothing');

    await open.click();
    await dialog.getByLabel(`Type ${CLUSTER} to confirm`).fill('we');
    assert.equal(await confirm.isDisabled(), true);
    await dialog.getByLabel(`Type ${CLUSTER} to confirm`).fill(CLUSTER);
    await shot('cluster-delete-dialog');
    await confirm.click();
    await page.getByRole('heading', { name: `Clusters in ${PROJECT}` }).waitFor();
    const row = page.locator(`tr[data-cluster="${CLUSTER}"]`);
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /Deleting/);
    await shot('clusters-deleting');
    await row.waitFor({ state: 'detached', timeout: READY_MS });
    await page.getByText('No clusters in this project yet.').waitFor();
    await shot('clusters-after-delete');
    assert.equal((await api('GET', `/projects/${PROJECT}/clusters/${CLUSTER}`)).status, 404);
    await waitUntil('no machines left', 120_000, async () => ((await machines()).length === 0 ? true : undefined));

    // The token lives in the tab's sessionStorage: a reload keeps the session, Log out ends it.
    await page.reload();
    await page.getByRole('heading', { name: `Clusters in ${PROJECT}` }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Log in to Marina' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('marina.console.token')), null, 'the token is forgotten');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});
