// etcdutl from the toolchain restores what etcdctl saved: a throwaway single-member etcd gets keys,
// `etcdctl snapshot save` takes a snapshot, a later key is written, and `etcdutl snapshot restore
// --bump-revision --mark-compacted` restores into a fresh data directory. The restored member serves
// the snapshot's keys only, as a new cluster, with revisions moved past the old ones and the old
// ones marked compacted (so Kubernetes watchers relist instead of serving stale objects).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findFreePorts, isProcessGroupAlive, type SpawnedProcess, spawnLogged, stopProcessGroup, tailFile } from '../../src/proc/index.js';
import { defaultVersion } from '../../src/toolchain/versions.js';
import { randomLoopbackHost } from './controlplane.js';
import { ensureToolchain } from './ensure.js';

const execFileAsync = promisify(execFile);
const BUMP = 1_000_000_000;

describe('etcd snapshot with etcdctl, restore with etcdutl (real binaries)', { timeout: 1_800_000 }, () => {
  let dir = '';
  let bin: Awaited<ReturnType<typeof ensureToolchain>> | undefined;
  const host = randomLoopbackHost();
  const started: SpawnedProcess[] = [];

  /** Starts a one-member etcd on fresh ports (plain HTTP on loopback: TLS is not what is tested). */
  async function startEtcd(dataDir: string, name: string, ports: [number, number]): Promise<{ endpoint: string; proc: SpawnedProcess }> {
    assert.ok(bin);
    const [client, peer] = ports;
    const proc = await spawnLogged({
      command: bin.paths.etcd,
      args: etcdFlags(dataDir, name, client, peer),
      logFile: join(dir, `${name}.log`),
    });
    started.push(proc);
    const endpoint = `http://${host}:${client}`;
    for (let i = 0; ; i++) {
      try {
        await etcdctl(endpoint, ['endpoint', 'health']);
        return { endpoint, proc };
      } catch (err) {
        if (proc.exitInfo() || i > 300) throw new Error(`etcd ${name} did not become healthy: ${String(err)}\n${tailFile(proc.logFile, 2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  function etcdFlags(dataDir: string, name: string, client: number, peer: number): string[] {
    return [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://${host}:${client}`,
      `--advertise-client-urls=http://${host}:${client}`,
      `--listen-peer-urls=http://${host}:${peer}`,
      `--initial-advertise-peer-urls=http://${host}:${peer}`,
      `--initial-cluster=${name}=http://${host}:${peer}`,
      '--unsafe-no-fsync',
    ];
  }

  async function etcdctl(endpoint: string, args: string[]): Promise<string> {
    assert.ok(bin);
    const { stdout } = await execFileAsync(bin.paths.etcdctl, [`--endpoints=${endpoint}`, ...args], { timeout: 20_000 });
    return stdout;
  }

  async function status(endpoint: string): Promise<{ revision: number; clusterId: string }> {
    const [s] = JSON.parse(await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json'])) as {
      Status: { header: { revision: number; cluster_id: number | string } };
    }[];
    assert.ok(s);
    return { revision: Number(s.Status.header.revision), clusterId: String(s.Status.header.cluster_id) };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marina-etcdutl-'));
    bin = await ensureToolchain(defaultVersion());
  });

  after(async () => {
    try {
      for (const p of started) await stopProcessGroup(p.pid, { graceMs: 5_000 }).catch(() => undefined);
      assert.deepEqual(started.filter((p) => isProcessGroupAlive(p.pid)).map((p) => p.pid), [], 'no etcd left running');
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('restores the snapshot into a new cluster with bumped, compacted revisions', async () => {
    assert.ok(bin);
    const ports = (await findFreePorts(host, 4)) as [number, number, number, number];
    const original = await startEtcd(join(dir, 'data'), 'm0', [ports[0], ports[1]]);
    for (let i = 0; i < 20; i++) await etcdctl(original.endpoint, ['put', `/registry/a/${i}`, `v${i}`]);
    const before = await status(original.endpoint);

    const snap = join(dir, 'snap.db');
    await etcdctl(original.endpoint, ['snapshot', 'save', snap]);
    await etcdctl(original.endpoint, ['put', '/registry/b', 'after-snapshot']);
    await stopProcessGroup(original.proc.pid, { graceMs: 5_000 });

    // etcd 3.6 has snapshot status/restore only in etcdutl.
    const { stdout: st } = await execFileAsync(bin.extra.etcdutl, ['snapshot', 'status', snap, '-w', 'json']);
    const snapStatus = JSON.parse(st) as { revision: number; totalKey: number };
    assert.equal(snapStatus.revision, before.revision);
    assert.equal(snapStatus.totalKey, 20);

    const restoredDir = join(dir, 'restored');
    await execFileAsync(bin.extra.etcdutl, [
      'snapshot',
      'restore',
      snap,
      `--data-dir=${restoredDir}`,
      '--name=m0',
      `--initial-cluster=m0=http://${host}:${ports[3]}`,
      `--initial-advertise-peer-urls=http://${host}:${ports[3]}`,
      `--bump-revision=${BUMP}`,
      '--mark-compacted',
    ]);
    const restored = await startEtcd(restoredDir, 'm0', [ports[2], ports[3]]);

    const keys = (await etcdctl(restored.endpoint, ['get', '/registry/', '--prefix', '--keys-only'])).split('\n').filter(Boolean);
    assert.equal(keys.length, 20, 'the snapshot keys are back');
    assert.equal((await etcdctl(restored.endpoint, ['get', '/registry/a/7', '--print-value-only'])).trim(), 'v7');
    assert.equal((await etcdctl(restored.endpoint, ['get', '/registry/b'])).trim(), '', 'the key written after the snapshot is gone');

    const after = await status(restored.endpoint);
    assert.ok(after.revision > before.revision + BUMP - 1, `revision ${after.revision} bumped by ${BUMP} from ${before.revision}`);
    assert.notEqual(after.clusterId, before.clusterId, 'a restore makes a new cluster');
    // A watch from a revision before the restore is refused as compacted (clients relist).
    await assert.rejects(
      etcdctl(restored.endpoint, ['watch', '/registry/a/1', `--rev=${before.revision}`]),
      (err: { stdout?: string; stderr?: string }) => /compacted/.test(`${err.stdout ?? ''}${err.stderr ?? ''}`),
    );
  });
});
