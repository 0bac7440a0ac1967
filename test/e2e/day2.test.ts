// Issue 11's "done when", end to end with real binaries: a real `marina server` process, the real
// `marina` CLI, kubectl as the cluster's client, and a real S3 server (VersityGW).
//
//   ConfigMaps A, snapshot, ConfigMaps B, A deleted, restore: A is back, B gone, every Node Ready,
//   kubectl works, Marina's health says Healthy — through the local target and through S3;
//   a snapshot with one byte flipped is refused by the preflight and the cluster keeps serving;
//   checkpoints: two users, the requester's own approval refused (403), a second disruptive
//   operation refused (409) while the first waits;
//   Marina SIGKILLed in the middle of a restore and started again: the restore ends Succeeded, or
//   Failed with a message that states the cluster's state — never silently half-restored;
//   a cancel accepted while an operation waits, refused with the reason after a disruptive step;
//   a machine replaced in one call: its successor first, then the old one drained and gone;
//   a worker added after a snapshot: restoring it Succeeds, the worker's Node registers again.
//
// Skips when the Kubernetes toolchain is not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Operation, Snapshot } from '../../src/api/operations.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import { ensureS3Server } from '../toolchain/ensure.js';
import { startVersityGw, type S3Server } from '../toolchain/versitygw.js';
import {
  apiRequest,
  Cli,
  freePort,
  kubectl,
  pickAddressBase,
  serverEnv,
  serverLogTail,
  startServerProcess,
  teardown,
  waitUntil,
  type ServerProcess,
} from '../support/marina.js';

const { toolchain, skip } = toolchainOrSkip();
if (skip) console.log(`SKIP e2e day-2 test: ${skip}`);

const P = 'default';
const C = 'demo';

interface MachineJson {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { pool: string; roles: string[] };
  status?: { phase?: string; address?: string };
}

describe('e2e: day-2 operations — snapshots, restores, checkpoints, machine replacement', { skip, timeout: 2_400_000 }, () => {
  let tmp = '';
  let dataDir = '';
  let listen = '';
  let addressBase = '';
  let server: ServerProcess | undefined;
  let cli: Cli;
  let kc = '';
  let s3: S3Server | undefined;
  const tokens: Record<string, string> = {};
  const env = () => ({ ...serverEnv({ home: join(tmp, 'home'), toolchain: toolchain!, addressBase }), MARINA_OPERATION_STEP_TIMEOUT_SECONDS: '300' });
  const api = (method: string, path: string, body?: unknown, token = tokens.admin!) => apiRequest(server!.url, token, method, path, body);
  const k = (...args: string[]) => kubectl(toolchain!, kc, args);
  const configMaps = async (set: string): Promise<string[]> =>
    (await k('get', 'configmaps', '-l', `set=${set}`, '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/).filter(Boolean).sort();
  const getOp = async (name: string): Promise<Operation> => (await api('GET', `/projects/${P}/operations/${name}`)).json as Operation;
  const opName = (stdout: string): string => {
    const m = /operation\/(\S+) created/.exec(stdout);
    assert.ok(m, `an operation was created: ${stdout}`);
    return m[1]!;
  };
  /** Runs an operation command to its end; the operation's name and final state. */
  const runOp = async (args: string[], want = 0): Promise<Operation> => {
    const r = await cli.run(args, 900_000);
    assert.equal(r.code, want, `marina ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${serverLogTail(server!.logFile)}`);
    return getOp(opName(r.stdout));
  };
  const allNodesReady = async (): Promise<void> => {
    const nodes = (JSON.parse(await k('get', 'nodes', '-o', 'json')) as { items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[] }).items;
    assert.ok(nodes.length >= 2, 'the control plane and the worker are Nodes');
    for (const n of nodes) assert.equal(n.status.conditions.find((c) => c.type === 'Ready')?.status, 'True', `${n.metadata.name} Ready`);
  };
  const healthy = () =>
    waitUntil('Marina reports the cluster healthy', 180_000, async () => {
      const h = JSON.parse((await cli.ok(['cluster', 'health', C, '-o', 'json'])).stdout) as { latest: { healthy: boolean; at: string } | null };
      return h.latest?.healthy ? h : undefined;
    }, 1000);

  before(async () => {
    if (!toolchain) return;
    tmp = mkdtempSync(join(tmpdir(), 'marina-e2e-day2-'));
    dataDir = join(tmp, 'data');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    listen = `127.0.0.1:${await freePort()}`;
    addressBase = await pickAddressBase();
    server = await startServerProcess({ dataDir, listen, logFile: join(tmp, 'server.log'), env: env() });
    tokens.admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token'), '--project', P]);
    const { versitygw } = await ensureS3Server();
    mkdirSync(join(tmp, 's3'));
    s3 = await startVersityGw({ versitygw, dir: join(tmp, 's3') });
    mkdirSync(join(s3.dataDir, 'marina-backups'));
  });

  after(async () => {
    await s3?.stop();
    await teardown({ tmp, dataDir, cli, server, cluster: C });
  });

  it('creates a cluster (3 etcd members, a control plane, a worker) and two operators', async () => {
    const r = await cli.run(['cluster', 'create', C, '--workers', '1', '--timeout', '8m'], 600_000);
    assert.equal(r.code, 0, `create exited ${r.code}\n${r.stdout}\n${r.stderr}\n${serverLogTail(server!.logFile)}`);
    kc = join(tmp, 'kubeconfig');
    writeFileSync(kc, (await cli.ok(['cluster', 'kubeconfig', C])).stdout, { mode: 0o600 });
    for (const user of ['alice', 'bob']) {
      await cli.ok(['user', 'create', user]);
      tokens[user] = (await cli.ok(['token', 'create', '--user', user, '-o', 'token'])).stdout.trim();
    }
    const project = (await api('GET', `/projects/${P}`)).json;
    project.spec.members.push({ user: 'alice', role: 'operator' }, { user: 'bob', role: 'operator' });
    assert.equal((await api('PUT', `/projects/${P}`, project)).status, 200);
  });

  let local = '';
  it('snapshot: ConfigMaps A are in it, then B written and A deleted', async () => {
    for (const i of [1, 2, 3]) await k('create', 'configmap', `a-${i}`, `--from-literal=n=marker-of-configmap-a-${i}`);
    await k('label', 'configmap', 'a-1', 'a-2', 'a-3', 'set=a');
    const op = await runOp(['cluster', 'snapshot', C]);
    assert.equal(op.status?.phase, 'Succeeded');
    assert.equal(op.status?.requestedBy, 'admin', 'the requester is the caller');
    local = op.status!.result!.snapshot!;
    const snaps = (await cli.json<{ items: Snapshot[] }>(['cluster', 'snapshots', C])).items;
    const snap = snaps.find((s) => s.metadata.name === local);
    assert.ok(snap, `snapshot ${local} listed`);
    const st = snap.status!;
    assert.equal(st.phase, 'Completed');
    assert.match(st.sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok((st.size ?? 0) > 0 && (st.etcdRevision ?? 0) > 0, JSON.stringify(st));
    assert.equal(st.kubernetesVersion, toolchain!.version);
    assert.match(st.etcdVersion ?? '', /^3\.6\./);
    assert.ok(st.member && st.startTime && st.completionTime && st.clusterUID);
    // At rest it is encrypted: the ConfigMap names are not in the stored bytes.
    const stored = readFileSync(join(dataDir, 'backups', '_default', st.location!));
    assert.equal(stored.length, st.storedSize);
    assert.ok(!stored.includes(Buffer.from('marker-of-configmap-a-')), 'the stored snapshot is encrypted');

    for (const i of [1, 2]) await k('create', 'configmap', `b-${i}`, `--from-literal=n=${i}`);
    await k('label', 'configmap', 'b-1', 'b-2', 'set=b');
    await k('delete', 'configmap', 'a-1', 'a-2', 'a-3');
    assert.deepEqual(await configMaps('a'), []);
  });

  it('restore: A is back, B is gone, every Node Ready, the cluster Healthy', async () => {
    const started = Date.now();
    const op = await runOp(['cluster', 'restore', C, '--snapshot', local]);
    console.log(`# restore took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(op.status?.phase, 'Succeeded', op.status?.message);
    assert.deepEqual(op.status?.steps?.map((s) => `${s.name}:${s.state}`), [
      'preflight:Succeeded', 'pause:Succeeded', 'stopControlPlane:Succeeded', 'stopEtcd:Succeeded', 'restoreEtcd:Succeeded',
      'startEtcd:Succeeded', 'startControlPlane:Succeeded', 'waitNodes:Succeeded', 'resume:Succeeded',
    ]);
    assert.deepEqual(await configMaps('a'), ['a-1', 'a-2', 'a-3']);
    assert.deepEqual(await configMaps('b'), []);
    await allNodesReady();
    await k('create', 'configmap', 'after-restore');
    assert.equal((await k('get', 'configmap', 'after-restore', '-o', 'jsonpath={.metadata.name}')).trim(), 'after-restore', 'kubectl writes work');
    await healthy();
    const cluster = (await api('GET', `/projects/${P}/clusters/${C}`)).json;
    assert.equal(cluster.metadata.annotations?.['marina.dev/paused-by'], undefined, 'health and healing resumed');
  });

  it('the same through an S3 target (VersityGW)', async () => {
    await api('POST', `/projects/${P}/secrets`, { apiVersion: 'marina.dev/v1alpha1', kind: 'Secret', metadata: { name: 's3-creds' }, spec: { type: 'marina.dev/s3', data: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey } } });
    const t = await api('POST', `/projects/${P}/backuptargets`, {
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'BackupTarget',
      metadata: { name: 's3' },
      spec: { type: 's3', s3: { endpoint: s3!.endpoint, bucket: 'marina-backups', prefix: 'e2e/', credentialsSecret: 's3-creds' } },
    });
    assert.equal(t.status, 201, t.text);
    const op = await runOp(['cluster', 'snapshot', C, '--target', 's3']);
    const name = op.status!.result!.snapshot!;
    const snap = (await api('GET', `/projects/${P}/snapshots/${name}`)).json as Snapshot;
    const object = join(s3!.dataDir, 'marina-backups', 'e2e', snap.status!.location!);
    assert.ok(existsSync(object), `the S3 server holds ${object}`);
    assert.equal(readFileSync(object).length, snap.status!.storedSize);

    await k('label', 'configmap', 'after-restore', 'set=c');
    await k('delete', 'configmap', 'a-1');
    const restored = await runOp(['cluster', 'restore', C, '--snapshot', name]);
    assert.equal(restored.status?.phase, 'Succeeded', restored.status?.message);
    assert.deepEqual(await configMaps('a'), ['a-1', 'a-2', 'a-3'], 'a-1 is back from S3');
    assert.deepEqual(await configMaps('c'), [], 'the label written after the S3 snapshot is gone');
    await allNodesReady();
    await healthy();
  });

  it('a snapshot with one byte flipped is refused by the preflight; the cluster keeps serving', async () => {
    const snap = (await api('GET', `/projects/${P}/snapshots/${local}`)).json as Snapshot;
    const file = join(dataDir, 'backups', '_default', snap.status!.location!);
    const bytes = readFileSync(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(file, bytes);
    const op = await runOp(['cluster', 'restore', C, '--snapshot', local], 1);
    assert.equal(op.status?.phase, 'Failed');
    assert.match(op.status?.message ?? '', /preflight: Snapshot \S+ is corrupted in its target/);
    assert.match(op.status?.message ?? '', /nothing was stopped; the cluster is as it was/);
    assert.deepEqual(op.status?.steps?.filter((s) => s.state !== 'Skipped').map((s) => `${s.name}:${s.state}`), ['preflight:Failed']);
    assert.deepEqual(await configMaps('a'), ['a-1', 'a-2', 'a-3'], 'kubectl still reads the cluster');
    // The failed restore is an alert.
    await waitUntil('RestoreFailed alert', 60_000, async () => {
      const alerts = (await api('GET', `/projects/${P}/alerts`)).json.items as { spec: { rule: string }; status?: { state?: string } }[];
      return alerts.some((a) => a.spec.rule === 'RestoreFailed' && a.status?.state === 'firing') ? true : undefined;
    });
  });

  it('checkpoints: the requester cannot approve (403), a second disruptive operation gets 409, another operator approves', async () => {
    const setPolicy = async (approvalRequired?: string[]) => {
      const cluster = (await api('GET', `/projects/${P}/clusters/${C}`)).json;
      if (approvalRequired) cluster.spec.operations = { approvalRequired };
      else delete cluster.spec.operations;
      assert.equal((await api('PUT', `/projects/${P}/clusters/${C}`, cluster)).status, 200);
    };
    await setPolicy(['Restore']);
    try {
      // bob asks; the body's requestedBy is ignored: the server writes the caller.
      const s3snap = ((await api('GET', `/projects/${P}/snapshots`)).json.items as Snapshot[]).find((s) => s.spec.target === 's3' && s.status?.phase === 'Completed')!;
      const created = await api(
        'POST',
        `/projects/${P}/operations`,
        { apiVersion: 'marina.dev/v1alpha1', kind: 'Operation', metadata: { name: 'bobs-restore' }, spec: { cluster: C, type: 'Restore', restore: { snapshot: s3snap.metadata.name } }, status: { requestedBy: 'alice' } },
        tokens.bob,
      );
      assert.equal(created.status, 201, created.text);
      assert.equal(created.json.status.requestedBy, 'bob');
      assert.equal(created.json.status.phase, 'AwaitingApproval');
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal((await getOp('bobs-restore')).status?.phase, 'AwaitingApproval', 'it does nothing until approved');

      const own = await cli.run(['operation', 'approve', 'bobs-restore', '--token', tokens.bob!]);
      assert.equal(own.code, 6, `${own.stdout}${own.stderr}`);
      assert.match(own.stderr, /four-eyes rule: bob requested operation bobs-restore and may not approve it/);

      const machine = ((await api('GET', `/projects/${P}/machines`)).json.items as MachineJson[]).find((m) => m.spec.pool === 'workers')!;
      const second = await cli.run(['machine', 'replace', machine.metadata.name, '--token', tokens.alice!]);
      assert.equal(second.code, 4, `${second.stdout}${second.stderr}`);
      assert.match(second.stderr, /already runs the disruptive operation bobs-restore \(Restore, AwaitingApproval\)/);

      // The snapshot was restored before, so its revision plus a fixed bump would lie below the
      // revisions clients have seen since: the restore must move them past those instead.
      // kubectl's own lists carry no resourceVersion: ask the API directly.
      const listRevision = async () => Number(JSON.parse(await k('get', '--raw', '/api/v1/namespaces/default/configmaps')).metadata.resourceVersion);
      const revisionBefore = await listRevision();
      const approved = await cli.ok(['operation', 'approve', 'bobs-restore', '--comment', 'checked', '--token', tokens.alice!]);
      assert.match(approved.stdout, /operation\/bobs-restore approved/);
      const r = await cli.run(['operation', 'describe', 'bobs-restore', '-w', '--timeout', '10m'], 700_000);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${serverLogTail(server!.logFile)}`);
      const done = await getOp('bobs-restore');
      assert.equal(done.status?.phase, 'Succeeded');
      assert.equal(done.status?.approvedBy?.user, 'alice');
      const revisionAfter = await listRevision();
      assert.ok(revisionAfter > revisionBefore, `resourceVersions only grow across a restore: ${revisionBefore} before, ${revisionAfter} after`);
      const audit = (await api('GET', `/audit?project=${P}&kind=Operation`)).json.items as { verb: string; user: string; name: string; code: number }[];
      assert.ok(audit.some((a) => a.verb === 'approve' && a.user === 'alice' && a.name === 'bobs-restore' && a.code === 200), 'the approval is audited');
      assert.ok(audit.some((a) => a.verb === 'approve' && a.user === 'bob' && a.code === 403), 'the refused self-approval is audited');
    } finally {
      await setPolicy(undefined);
    }
    await healthy();
  });

  it('Marina SIGKILLed in the middle of a restore and started again: the restore ends, the cluster serves', async () => {
    const s3snap = ((await api('GET', `/projects/${P}/snapshots`)).json.items as Snapshot[]).find((s) => s.spec.target === 's3' && s.status?.phase === 'Completed')!;
    const r = await cli.ok(['cluster', 'restore', C, '--snapshot', s3snap.metadata.name, '--no-wait']);
    const name = opName(r.stdout);
    await waitUntil('the restore past its first disruptive step', 120_000, async () => {
      const op = await getOp(name);
      assert.ok(!['Failed', 'Cancelled', 'Succeeded'].includes(op.status?.phase ?? ''), `the restore ended before it could be interrupted: ${op.status?.phase}: ${op.status?.message}`);
      return op.status?.steps?.some((s) => s.name === 'stopEtcd' && (s.state === 'Running' || s.state === 'Succeeded')) ? true : undefined;
    }, 100);
    process.kill(-server!.pid, 'SIGKILL');
    await waitUntil('the server process gone', 10_000, async () => (server!.running() ? undefined : true), 50);
    server = await startServerProcess({ dataDir, listen, logFile: join(tmp, 'server.log'), env: env() });
    const end = await waitUntil('the restore ends after the restart', 600_000, async () => {
      const op = await getOp(name);
      return ['Succeeded', 'Failed'].includes(op.status?.phase ?? '') ? op : undefined;
    }, 1000);
    console.log(`# restore after SIGKILL: ${end.status?.phase}: ${end.status?.message}`);
    if (end.status?.phase === 'Failed') {
      assert.match(end.status.message ?? '', /cluster (is|serves|stay)|OUT OF SERVICE|as it was/, 'a failure states the cluster\'s state');
    } else {
      assert.deepEqual(await configMaps('a'), ['a-1', 'a-2', 'a-3']);
      await allNodesReady();
      await healthy();
    }
  });

  it('cancel: accepted while the operation waits at its checkpoint', async () => {
    const s3snap = ((await api('GET', `/projects/${P}/snapshots`)).json.items as Snapshot[]).find((s) => s.spec.target === 's3' && s.status?.phase === 'Completed')!;
    const setPolicy = async (approvalRequired?: string[]) => {
      const cluster = (await api('GET', `/projects/${P}/clusters/${C}`)).json;
      if (approvalRequired) cluster.spec.operations = { approvalRequired };
      else delete cluster.spec.operations;
      assert.equal((await api('PUT', `/projects/${P}/clusters/${C}`, cluster)).status, 200);
    };
    await setPolicy(['Restore']);
    try {
      const waiting = opName((await cli.ok(['cluster', 'restore', C, '--snapshot', s3snap.metadata.name, '--no-wait'])).stdout);
      assert.match((await cli.ok(['operation', 'cancel', waiting])).stdout, /cancel requested/);
      const cancelled = await waitUntil('the waiting restore Cancelled', 60_000, async () => {
        const op = await getOp(waiting);
        return op.status?.phase === 'Cancelled' ? op : undefined;
      });
      assert.equal(cancelled.status?.cancelledBy?.user, 'admin');
    } finally {
      await setPolicy(undefined);
    }
  });

  it('replaces a worker in one call: successor Ready first; the drain names the blocking PodDisruptionBudget; no cancel once removing', async () => {
    const before = ((await api('GET', `/projects/${P}/machines`)).json.items as MachineJson[]).filter((m) => m.spec.pool === 'workers');
    assert.equal(before.length, 1);
    const old = before[0]!.metadata.name;
    // One pod on the worker and a budget that never lets it go: the drain waits for the pool's
    // drain timeout (60 s by default) and the step says who blocks it.
    await k('create', 'deployment', 'web', '--image=registry.k8s.io/pause:3.10', '--replicas=1');
    await k('create', 'poddisruptionbudget', 'web-pdb', '--selector=app=web', '--min-available=1');
    // After four restores the controller-manager and scheduler may first wait out the leader Leases
    // the restored data holds: patience, and what the cluster shows if it runs out.
    await waitUntil('the web pod Running', 180_000, async () => ((await k('get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[*].status.phase}')).trim() === 'Running' ? true : undefined)).catch(async (err: Error) => {
      const seen = await k('get', 'deployments,replicasets,pods,leases', '-A', '-o', 'wide').catch((e: Error) => e.message);
      throw new Error(`${err.message}\n${seen}`);
    });
    const name = opName((await cli.ok(['machine', 'replace', old, '--no-wait', '--token', tokens.alice!])).stdout);
    const blocked = await waitUntil('the drain blocked by the budget', 300_000, async () => {
      const op = await getOp(name);
      const step = op.status?.steps?.find((st) => st.name === 'waitGone');
      return step?.state === 'Running' && /PodDisruptionBudget default\/web-pdb/.test(step.message ?? '') ? step : undefined;
    }, 500);
    assert.match(blocked.message ?? '', /PodDisruptionBudget blocks eviction of default\/web-/);
    const refused = await cli.run(['operation', 'cancel', name]);
    assert.equal(refused.code, 4, `${refused.stdout}${refused.stderr}`);
    assert.match(refused.stderr, /passed its first disruptive step \(removeOld, Succeeded\)/);
    const r = await cli.run(['operation', 'describe', name, '-w', '--timeout', '10m'], 700_000);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${serverLogTail(server!.logFile)}`);
    const op = await getOp(name);
    assert.equal(op.status?.phase, 'Succeeded', op.status?.message);
    const successor = op.status!.result!.successor!;
    const after = ((await api('GET', `/projects/${P}/machines`)).json.items as MachineJson[]).filter((m) => m.spec.pool === 'workers');
    assert.deepEqual(after.map((m) => m.metadata.name), [successor]);
    const nodes = (await k('get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/);
    assert.ok(nodes.includes(successor) && !nodes.includes(old), `nodes: ${nodes.join(' ')}`);
    await allNodesReady();
  });

  it('a worker added after the snapshot: the restore Succeeds and its Node, absent from the restored data, registers again', async () => {
    const snap = (await runOp(['cluster', 'snapshot', C])).status!.result!.snapshot!;
    const workers = async () => ((await api('GET', `/projects/${P}/machines`)).json.items as MachineJson[]).filter((m) => m.spec.pool === 'workers');
    const before = new Set((await workers()).map((m) => m.metadata.name));
    await cli.ok(['cluster', 'scale', C, '--pool', 'workers', '--replicas', String(before.size + 1)]);
    const nodeReady = async (name: string) =>
      (await k('get', 'node', name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}').catch(() => '')).trim() === 'True';
    const added = await waitUntil('the added worker Running with a Ready Node', 300_000, async () => {
      const m = (await workers()).find((w) => !before.has(w.metadata.name) && w.status?.phase === 'Running');
      return m && (await nodeReady(m.metadata.name)) ? m.metadata.name : undefined;
    }, 1000);
    const uid = (await k('get', 'node', added, '-o', 'jsonpath={.metadata.uid}')).trim();

    const op = await runOp(['cluster', 'restore', C, '--snapshot', snap]);
    assert.equal(op.status?.phase, 'Succeeded', op.status?.message);
    const nodes = (await k('get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/);
    assert.ok(nodes.includes(added), `nodes: ${nodes.join(' ')}`);
    assert.notEqual((await k('get', 'node', added, '-o', 'jsonpath={.metadata.uid}')).trim(), uid, 'a new Node: the restored data never held it');
    await allNodesReady();
  });
});
