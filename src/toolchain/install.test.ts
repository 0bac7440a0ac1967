import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installToolchain } from './install.js';
import { writeFakeToolchain } from './testutil.js';
import { installScriptPath } from './versions.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-install-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function runScript(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync('bash', [installScriptPath(), ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
}

describe('installToolchain()', () => {
  it('runs the script with normalized versions and the extra environment', async () => {
    const script = join(tmp, 'fake-install.sh');
    const out = join(tmp, 'args.txt');
    writeFileSync(script, `echo "$@ $MARINA_TOOLCHAIN_SOURCE" > ${out}\n`);
    await installToolchain(['1.35.4', 'v1.36.3'], { script, env: { MARINA_TOOLCHAIN_SOURCE: 'build' }, stdio: 'ignore' });
    assert.equal(readFileSync(out, 'utf8').trim(), 'v1.35.4 v1.36.3 build');
  });

  it('rejects when the script fails', async () => {
    const script = join(tmp, 'failing.sh');
    writeFileSync(script, 'exit 3\n');
    await assert.rejects(installToolchain([], { script, stdio: 'ignore' }), /exit 3/);
  });
});

describe('scripts/toolchain/install.sh', () => {
  it('answers from a valid cache entry without downloading or building', () => {
    const root = join(tmp, 'cache-ok');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16');
    const r = runScript([], { MARINA_TOOLCHAIN_DIR: root, MARINA_TOOLCHAIN_SOURCE: 'download' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), join(root, 'v1.36.3'));
    assert.match(r.stderr, /cached in/);
  });

  it('rejects a cache entry whose binaries report another version', () => {
    const root = join(tmp, 'cache-wrong');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.2', 'v3.6.16');
    // download-only + unreachable mirror: must not accept the cache, and must fail fast
    const r = runScript(['v1.36.3'], {
      MARINA_TOOLCHAIN_DIR: root,
      MARINA_TOOLCHAIN_SOURCE: 'download',
      MARINA_K8S_RELEASE_URL: 'http://127.0.0.1:9/release',
      MARINA_ETCD_RELEASE_URL: 'http://127.0.0.1:9/etcd',
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /download failed/);
    assert.ok(existsSync(join(root, 'v1.36.3', 'kube-apiserver')), 'the old entry is left alone on failure');
  });

  it('rejects versions outside the matrix', () => {
    const r = runScript(['v1.20.0'], { MARINA_TOOLCHAIN_DIR: join(tmp, 'none') });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not in the pinned matrix/);
  });

  it('prints help', () => {
    const r = runScript(['--help'], {});
    assert.equal(r.status, 0);
    assert.match(r.stdout, /MARINA_TOOLCHAIN_DIR/);
  });
});
