import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFakeToolchain } from '../toolchain/testutil.js';
import { toolchainCommand } from './toolchain.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-cli-tc-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const moduleUrl = new URL('./toolchain.js', import.meta.url).href;
function cli(args: string[], env: NodeJS.ProcessEnv) {
  const code = `const m = await import(${JSON.stringify(moduleUrl)}); await m.toolchainCommand().parseAsync(process.argv.slice(1), { from: 'user' });`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', code, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('marina toolchain', () => {
  it('has install, path and versions subcommands', () => {
    const cmd = toolchainCommand();
    assert.equal(cmd.name(), 'toolchain');
    assert.deepEqual(cmd.commands.map((c) => c.name()).sort(), ['install', 'path', 'versions']);
  });

  it('path prints the cache directory, or every binary as JSON', () => {
    const root = join(tmp, 'cache');
    writeFakeToolchain(join(root, 'v1.35.4'), 'v1.35.4', 'v3.6.16');
    const env = { MARINA_TOOLCHAIN_DIR: root, MARINA_BIN_DIR: '' };
    const r = cli(['path', '1.35.4'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), join(root, 'v1.35.4'));
    const j = cli(['path', 'v1.35.4', '--json'], env);
    const parsed = JSON.parse(j.stdout) as { paths: Record<string, string>; etcdVersion: string };
    assert.equal(parsed.paths.kubectl, join(root, 'v1.35.4', 'kubectl'));
    assert.equal(parsed.etcdVersion, 'v3.6.16');
  });

  it('path fails with the install command when binaries are missing', () => {
    const r = cli(['path'], { MARINA_TOOLCHAIN_DIR: join(tmp, 'empty'), MARINA_BIN_DIR: '' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing etcd, etcdctl, kube-apiserver/);
    assert.match(r.stderr, /npx marina toolchain install v1\.36\.3/);
  });

  it('versions lists the matrix', () => {
    const r = cli(['versions'], {});
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /v1\.36\.3\tetcd v3\.6\.16\tgo>=1\.26\.0\t\(default\)/);
    assert.match(r.stdout, /v1\.35\.4\tetcd v3\.6\.16/);
  });

  it('install passes the versions and source to the script (cache hit, no network)', () => {
    const root = join(tmp, 'cache2');
    writeFakeToolchain(join(root, 'v1.36.3'), 'v1.36.3', 'v3.6.16');
    const r = cli(['install', '--source', 'download'], { MARINA_TOOLCHAIN_DIR: root });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), join(root, 'v1.36.3'));
  });
});
