import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installToolchain } from './install.js';
import { fakeBinaryScript, writeFakeToolchain } from './testutil.js';
import { STAMP_FILE } from './resolve.js';
import { BINARY_NAMES, EXTRA_BINARY_NAMES, installScriptPath } from './versions.js';

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

/** A local stand-in for dl.k8s.io and the etcd GitHub releases, serving fake binaries. */
async function startMirror(root: string, k8s: string, etcd: string, corrupt = false): Promise<{ server: Server; url: string; hits: () => number }> {
  const sha = (buf: Buffer | string) => createHash('sha256').update(buf).digest('hex');
  const bin = join(root, 'release', k8s, 'bin', 'linux', 'amd64');
  mkdirSync(bin, { recursive: true });
  for (const name of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'kubelet', 'kube-proxy'] as const) {
    const body = fakeBinaryScript(name, k8s, etcd);
    writeFileSync(join(bin, name), body);
    writeFileSync(join(bin, `${name}.sha256`), corrupt && name === 'kubectl' ? '0'.repeat(64) : sha(body));
  }
  const name = `etcd-${etcd}-linux-amd64`;
  const stage = join(root, 'stage', name);
  mkdirSync(stage, { recursive: true });
  writeFakeToolchain(stage, k8s, etcd, { stamp: false, only: ['etcd', 'etcdctl', 'etcdutl'] });
  const rel = join(root, 'etcd', etcd);
  mkdirSync(rel, { recursive: true });
  spawnSync('tar', ['-czf', join(rel, `${name}.tar.gz`), '-C', join(root, 'stage'), name]);
  writeFileSync(join(rel, 'SHA256SUMS'), `${sha(readFileSync(join(rel, `${name}.tar.gz`)))}  ${name}.tar.gz\n`);
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    const path = join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!path.startsWith(root) || !existsSync(path)) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.end(readFileSync(path));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { server, url: `http://127.0.0.1:${port}`, hits: () => hits };
}

function runScriptAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [installScriptPath(), ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('scripts/toolchain/install.sh downloads (local mirror)', { skip: process.platform !== 'linux' || process.arch !== 'x64' ? 'mirror fixture is linux/amd64 only' : false }, () => {
  it('downloads, verifies sha256, stamps and publishes atomically; concurrent runs serialize on the lock', async () => {
    const mirror = await startMirror(join(tmp, 'mirror'), 'v1.35.4', 'v3.6.16');
    try {
      const root = join(tmp, 'cache-dl');
      const env = {
        MARINA_TOOLCHAIN_DIR: root,
        MARINA_TOOLCHAIN_SOURCE: 'download',
        MARINA_K8S_RELEASE_URL: `${mirror.url}/release`,
        MARINA_ETCD_RELEASE_URL: `${mirror.url}/etcd`,
      };
      const [a, b] = await Promise.all([runScriptAsync(['1.35.4'], env), runScriptAsync(['v1.35.4'], env)]);
      assert.equal(a.status, 0, a.stderr);
      assert.equal(b.status, 0, b.stderr);
      const dir = join(root, 'v1.35.4');
      assert.equal(a.stdout.trim(), dir);
      assert.equal(b.stdout.trim(), dir);
      const installs = [a, b].filter((r) => /installed in/.test(r.stderr)).length;
      assert.equal(installs, 1, 'exactly one run installs, the other finds the cache after the lock');
      assert.equal(mirror.hits(), 14, '6 binaries + 6 sums + etcd tarball + SHA256SUMS, once');
      const stamp = JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8')) as Record<string, string>;
      assert.equal(stamp.kubernetes, 'v1.35.4');
      assert.equal(stamp.kubernetesSource, 'download');
      assert.equal(stamp.etcdSource, 'download');
      assert.deepEqual(readdirSync(root).filter((n) => !n.startsWith('.v1.35.4.lock')), ['v1.35.4'], 'no temp dirs left');
      assert.deepEqual(readdirSync(dir).sort(), [STAMP_FILE, ...BINARY_NAMES, ...EXTRA_BINARY_NAMES].sort());
    } finally {
      mirror.server.close();
    }
  });

  it('adds only the missing binaries to a cache entry written before they existed', async () => {
    const mirror = await startMirror(join(tmp, 'mirror-add'), 'v1.35.4', 'v3.6.16');
    try {
      const root = join(tmp, 'cache-add');
      const dir = join(root, 'v1.35.4');
      writeFakeToolchain(dir, 'v1.35.4', 'v3.6.16', { only: [...BINARY_NAMES] });
      const before = Object.fromEntries(BINARY_NAMES.map((n) => [n, statSync(join(dir, n)).ino]));
      const r = await runScriptAsync(['v1.35.4'], {
        MARINA_TOOLCHAIN_DIR: root,
        MARINA_TOOLCHAIN_SOURCE: 'download',
        MARINA_K8S_RELEASE_URL: `${mirror.url}/release`,
        MARINA_ETCD_RELEASE_URL: `${mirror.url}/etcd`,
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /installing kubelet kube-proxy etcdutl .* beside the cached/);
      assert.equal(mirror.hits(), 6, 'kubelet + kube-proxy with their sums, the etcd tarball and its sums; nothing else');
      for (const n of BINARY_NAMES) assert.equal(statSync(join(dir, n)).ino, before[n], `${n} kept as it was (same inode)`);
      assert.deepEqual(readdirSync(dir).sort(), [STAMP_FILE, ...BINARY_NAMES, ...EXTRA_BINARY_NAMES].sort());
      const stamp = JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8')) as { binaries: string[]; kubernetesSource: string };
      assert.deepEqual([...stamp.binaries].sort(), [...BINARY_NAMES, ...EXTRA_BINARY_NAMES].sort());
      assert.equal(stamp.kubernetesSource, 'download');
      const again = await runScriptAsync(['v1.35.4'], { MARINA_TOOLCHAIN_DIR: root, MARINA_TOOLCHAIN_SOURCE: 'download' });
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stderr, /cached in/);
      assert.equal(mirror.hits(), 6, 'the completed entry is answered from the cache');
    } finally {
      mirror.server.close();
    }
  });

  it('refuses a download whose sha256 does not match', async () => {
    const mirror = await startMirror(join(tmp, 'mirror-bad'), 'v1.35.4', 'v3.6.16', true);
    try {
      const root = join(tmp, 'cache-bad');
      const r = await runScriptAsync(['v1.35.4'], {
        MARINA_TOOLCHAIN_DIR: root,
        MARINA_TOOLCHAIN_SOURCE: 'download',
        MARINA_K8S_RELEASE_URL: `${mirror.url}/release`,
        MARINA_ETCD_RELEASE_URL: `${mirror.url}/etcd`,
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /sha256 mismatch for kubectl/);
      assert.equal(existsSync(join(root, 'v1.35.4')), false);
      assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.tmp')), [], 'temp dir cleaned up');
    } finally {
      mirror.server.close();
    }
  });
});
