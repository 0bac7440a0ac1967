import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sandboxCommand, heapLimitMiB } from './command.js';
import type { SandboxHost } from './host.js';

const host: SandboxHost = {
  bwrap: '/usr/bin/bwrap',
  prlimit: '/usr/bin/prlimit',
  setpriv: '/usr/bin/setpriv',
  node: '/usr/bin/node',
  binds: [{ src: '/usr/bin/node', dst: '/usr/bin/node' }, { src: '/x/runner.js', dst: '/runner/runner.mjs' }],
  runnerPath: '/x/runner.js',
  memory: 'cgroup',
  pids: 'cgroup',
  uidBase: 1000,
  notes: [],
};
const limits = { cpuSeconds: 600, pids: 64 };

describe('sandboxCommand', () => {
  it('joins the cgroups first, then prlimit, setpriv, bwrap and node, each exec-ing the next', () => {
    const { file, args } = sandboxCommand(host, { profile: { memoryMiB: 128, network: false }, limits, procsFiles: ['/cg/mem/procs', '/cg/pids/procs'], uid: 1234 });
    assert.equal(file, '/bin/sh');
    const rest = args.slice(args.indexOf('--') + 1);
    assert.deepEqual(args.slice(3, args.indexOf('--')), ['/cg/mem/procs', '/cg/pids/procs']);
    assert.deepEqual(rest.slice(0, 4), ['/usr/bin/prlimit', '--cpu=600:601', '--core=0', '--']);
    assert.ok(rest.includes('--reuid=1234') && rest.includes('--no-new-privs'));
    for (const flag of ['--unshare-all', '--die-with-parent', '--clearenv', '--new-session']) assert.ok(rest.includes(flag), flag);
    assert.ok(!rest.includes('--share-net'));
    assert.deepEqual(rest.slice(-3), ['/usr/bin/node', `--max-old-space-size=${heapLimitMiB(128)}`, '/runner/runner.mjs']);
    // Nothing of the host is writable or visible but the read-only binds and a private /tmp.
    const binds = rest.flatMap((a, i) => (a === '--bind' || a === '--ro-bind' ? [`${a} ${rest[i + 1]}`] : []));
    assert.deepEqual(binds, ['--ro-bind /usr/bin/node', '--ro-bind /x/runner.js']);
  });
  it('shares the network only when the function may use it', () => {
    const { args } = sandboxCommand(host, { profile: { memoryMiB: 128, network: true }, limits, procsFiles: [] });
    assert.ok(args.includes('--share-net'));
  });
  it('falls back to RLIMIT_AS and RLIMIT_NPROC without cgroups', () => {
    const { file, args } = sandboxCommand({ ...host, memory: 'rlimit', pids: 'rlimit-uid' }, { profile: { memoryMiB: 128, network: false }, limits, procsFiles: [], uid: 7 });
    assert.equal(file, '/usr/bin/prlimit');
    assert.ok(args.includes('--nproc=64'));
    assert.ok(args.some((a) => a.startsWith('--as=')));
  });
});
