import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findToolchain,
  parseReportedVersion,
  reportedVersions,
  resolveExtraBinary,
  resolveToolchain,
  ToolchainMissingError,
  toolchainCacheRoot,
  toolchainVersionDir,
} from './resolve.js';
import { writeFakeToolchain } from './testutil.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-resolve-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('toolchain cache location', () => {
  it('prefers MARINA_TOOLCHAIN_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(toolchainCacheRoot({ MARINA_TOOLCHAIN_DIR: '/x/tc', XDG_CACHE_HOME: '/y', HOME: '/h' }), '/x/tc');
    assert.equal(toolchainCacheRoot({ XDG_CACHE_HOME: '/y', HOME: '/h' }), '/y/marina/bin');
    assert.equal(toolchainCacheRoot({ HOME: '/h' }), '/h/.cache/marina/bin');
    assert.equal(toolchainCacheRoot({ XDG_CACHE_HOME: 'relative', HOME: '/h' }), '/h/.cache/marina/bin');
    assert.equal(toolchainVersionDir('1.35.4', { HOME: '/h' }), '/h/.cache/marina/bin/v1.35.4');
  });
});

describe('resolveToolchain', () => {
  it('finds a complete cache entry', () => {
    const root = join(tmp, 'cache1');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16');
    const t = resolveToolchain('v1.36.3', { env: { MARINA_TOOLCHAIN_DIR: root } });
    assert.equal(t.version, 'v1.36.3');
    assert.equal(t.etcdVersion, 'v3.6.16');
    assert.equal(t.paths['kube-apiserver'], join(root, 'v1.36.3', 'kube-apiserver'));
    assert.equal(t.sources.etcd, 'cache');
  });

  it('ignores a cache entry without the stamp (incomplete install)', () => {
    const root = join(tmp, 'cache2');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16', { stamp: false });
    const found = findToolchain('v1.36.3', { env: { MARINA_TOOLCHAIN_DIR: root } });
    assert.equal(found.ok, false);
  });

  it('MARINA_BIN_DIR takes precedence, per binary', () => {
    const root = join(tmp, 'cache3');
    const bin = join(tmp, 'bin3');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16');
    writeFakeToolchain(bin, 'v1.36.3', 'v3.6.16', { stamp: false, only: ['kube-apiserver', 'kubectl'] });
    const t = resolveToolchain('v1.36.3', { env: { MARINA_TOOLCHAIN_DIR: root, MARINA_BIN_DIR: bin } });
    assert.equal(t.paths['kube-apiserver'], join(bin, 'kube-apiserver'));
    assert.equal(t.sources.kubectl, 'MARINA_BIN_DIR');
    assert.equal(t.paths.etcd, join(root, 'v1.36.3', 'etcd'));
    assert.equal(t.sources.etcd, 'cache');
    assert.equal(t.binDir, bin);
  });

  it('names the missing binaries and the install command', () => {
    const bin = join(tmp, 'bin4');
    writeFakeToolchain(bin, 'v1.35.4', 'v3.6.16', { stamp: false, only: ['etcd', 'etcdctl', 'kubectl', 'kube-scheduler'] });
    const env = { MARINA_TOOLCHAIN_DIR: join(tmp, 'empty'), MARINA_BIN_DIR: bin };
    assert.throws(
      () => resolveToolchain('1.35.4', { env }),
      (err: unknown) => {
        assert.ok(err instanceof ToolchainMissingError);
        assert.deepEqual(err.missing, ['kube-apiserver', 'kube-controller-manager']);
        assert.match(err.message, /missing kube-apiserver, kube-controller-manager/);
        assert.match(err.message, /npx marina toolchain install v1\.35\.4/);
        assert.match(err.message, /scripts\/toolchain\/install\.sh v1\.35\.4/);
        assert.match(err.message, /MARINA_BIN_DIR=/);
        return true;
      },
    );
  });

  it('rejects versions outside the matrix', () => {
    assert.throws(() => resolveToolchain('v1.20.0', { env: {} }), /not pinned/);
  });

  it('resolves the extra binaries one by one; an older entry without them still resolves', () => {
    const root = join(tmp, 'cache6');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16', {
      only: ['etcd', 'etcdctl', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'kubelet'],
    });
    const env = { MARINA_TOOLCHAIN_DIR: root };
    const t = resolveToolchain('v1.36.3', { env });
    assert.deepEqual(t.extras, { kubelet: join(root, 'v1.36.3', 'kubelet') });
    assert.equal(resolveExtraBinary('kubelet', 'v1.36.3', { env }), join(root, 'v1.36.3', 'kubelet'));
    assert.throws(
      () => resolveExtraBinary('etcdutl', 'v1.36.3', { env }),
      (err: unknown) => err instanceof ToolchainMissingError && err.missing[0] === 'etcdutl' && /scripts\/toolchain\/install\.sh v1\.36\.3/.test(err.message),
    );
    const bin = join(tmp, 'bin6');
    writeFakeToolchain(bin, 'v1.36.3', 'v3.6.16', { stamp: false, only: ['etcdutl'] });
    assert.equal(resolveExtraBinary('etcdutl', 'v1.36.3', { env: { ...env, MARINA_BIN_DIR: bin } }), join(bin, 'etcdutl'));
  });

  it('reads the versions the binaries report', async () => {
    const root = join(tmp, 'cache5');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16');
    const t = resolveToolchain('v1.36.3', { env: { MARINA_TOOLCHAIN_DIR: root } });
    const v = await reportedVersions(t);
    assert.deepEqual(v, {
      etcd: 'v3.6.16',
      etcdctl: 'v3.6.16',
      'kube-apiserver': 'v1.36.3',
      'kube-controller-manager': 'v1.36.3',
      'kube-scheduler': 'v1.36.3',
      kubectl: 'v1.36.3',
    });
  });

  it('parses version output', () => {
    assert.equal(parseReportedVersion('Kubernetes v1.36.3\n'), 'v1.36.3');
    assert.equal(parseReportedVersion('etcd Version: 3.6.16\nGit SHA: x'), 'v3.6.16');
    assert.equal(parseReportedVersion('Client Version: v1.35.4'), 'v1.35.4');
    assert.equal(parseReportedVersion('nothing'), undefined);
  });
});
