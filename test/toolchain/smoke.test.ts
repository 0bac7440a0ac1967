// Smoke test of the real toolchain: etcd + kube-apiserver + kube-controller-manager + kube-scheduler
// on a loopback address with a throwaway PKI, driven by the real kubectl. Skips (with the install
// command) when the default version's binaries are not installed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPortListening, isProcessAlive } from '../../src/proc/index.js';
import { findToolchain, reportedVersions } from '../../src/toolchain/resolve.js';
import { defaultVersion, normalizeVersion } from '../../src/toolchain/versions.js';
import { type ControlPlane, startControlPlane } from './controlplane.js';

// MARINA_SMOKE_VERSION runs it against another pinned version (e.g. v1.35.4).
const version = normalizeVersion(process.env.MARINA_SMOKE_VERSION || defaultVersion());
const found = findToolchain(version);
const skip = found.ok
  ? false
  : `Kubernetes toolchain ${version} not installed (missing ${found.missing.join(', ')}); run scripts/toolchain/install.sh ${version}`;
if (skip) console.log(`SKIP toolchain smoke test: ${skip}`);

describe('toolchain smoke test (real binaries)', { skip, timeout: 300_000 }, () => {
  let dir = '';
  let cp: ControlPlane | undefined;

  before(async () => {
    if (!found.ok) return;
    dir = mkdtempSync(join(tmpdir(), 'marina-smoke-'));
    cp = await startControlPlane({
      toolchain: found.toolchain,
      dir,
      timeoutMs: 120_000,
      onProgress: (m) => console.log(m),
    });
  });

  after(async () => {
    // Safety net: stop whatever is still running even if a test failed; stop() is idempotent.
    try {
      if (cp) await cp.stop();
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('binaries report the pinned versions', async () => {
    assert.ok(found.ok);
    const v = await reportedVersions(found.toolchain);
    assert.equal(v['kube-apiserver'], version);
    assert.equal(v['kube-controller-manager'], version);
    assert.equal(v['kube-scheduler'], version);
    assert.equal(v.kubectl, version);
    assert.equal(v.etcd, found.toolchain.etcdVersion);
    assert.equal(v.etcdctl, found.toolchain.etcdVersion);
  });

  it('kubectl get --raw /readyz answers ok', async () => {
    assert.ok(cp);
    assert.equal((await cp.kubectl(['get', '--raw', '/readyz'])).trim(), 'ok');
  });

  it('kubectl api-resources lists the built-in resources', async () => {
    assert.ok(cp);
    const out = await cp.kubectl(['api-resources', '-o', 'name']);
    const names = new Set(out.split('\n').map((l) => l.trim()));
    for (const r of ['pods', 'deployments.apps', 'services', 'leases.coordination.k8s.io', 'nodes']) {
      assert.ok(names.has(r), `${r} missing from api-resources:\n${out}`);
    }
  });

  it('kube-controller-manager and kube-scheduler hold their leases in kube-system', async () => {
    assert.ok(cp);
    const deadline = Date.now() + 90_000;
    let holders: Record<string, string> = {};
    for (;;) {
      const out = await cp.kubectl(['get', 'lease', '-n', 'kube-system', '-o', 'json']);
      const list = JSON.parse(out) as { items: { metadata: { name: string }; spec?: { holderIdentity?: string } }[] };
      holders = Object.fromEntries(list.items.map((l) => [l.metadata.name, l.spec?.holderIdentity ?? '']));
      if (holders['kube-controller-manager'] && holders['kube-scheduler']) break;
      if (Date.now() > deadline) assert.fail(`leases not held in time: ${JSON.stringify(holders)}\n${cp.logs()}`);
      await sleep(500);
    }
    assert.ok(holders['kube-controller-manager']);
    assert.ok(holders['kube-scheduler']);
  });

  it('controllers work: a namespace gets its default service account and kube-root-ca.crt', async () => {
    assert.ok(cp);
    await cp.kubectl(['create', 'namespace', 'smoke']);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const sa = await cp.kubectl(['get', 'serviceaccount', '-n', 'smoke', '-o', 'name']);
      const cm = await cp.kubectl(['get', 'configmap', '-n', 'smoke', '-o', 'name']);
      if (sa.includes('serviceaccount/default') && cm.includes('configmap/kube-root-ca.crt')) break;
      if (Date.now() > deadline) assert.fail(`namespace not populated: ${sa} ${cm}`);
      await sleep(500);
    }
  });

  it('stops everything: no process left, no port listening', async () => {
    assert.ok(cp);
    const pids = cp.components.map((c) => c.proc.pid);
    const { leftoverPids, listeningPorts } = await cp.stop();
    assert.deepEqual(leftoverPids, []);
    assert.deepEqual(listeningPorts, []);
    for (const pid of pids) assert.equal(isProcessAlive(pid), false, `pid ${pid} still alive`);
    for (const port of cp.ports) assert.equal(await isPortListening(cp.host, port), false, `port ${port} still listening`);
  });
});
