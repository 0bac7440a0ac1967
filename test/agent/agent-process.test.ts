// The agent as Marina's local provider runs it: `node dist/src/agent/main.js --config agent.json`,
// detached (its own process group). No Kubernetes binaries needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort, isProcessAlive, isProcessGroupAlive, spawnLogged, stopProcessGroup } from '../../src/proc/index.js';

const AGENT_MAIN = new URL('../../src/agent/main.js', import.meta.url).pathname;
const run = promisify(execFile);

test('a bad config exits with code 2 and names the fields', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-cfg-'));
  try {
    const path = join(dir, 'agent.json');
    writeFileSync(path, JSON.stringify({ machine: 'Bad_Name', processes: 'x' }));
    await assert.rejects(run(process.execPath, [AGENT_MAIN, '--config', path]), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /invalid agent config/);
      assert.match(err.stderr, /machine: must be a DNS-1123 label/);
      assert.match(err.stderr, /processes: must be an array/);
      return true;
    });
    await assert.rejects(run(process.execPath, [AGENT_MAIN]), (err: { code: number; stderr: string }) => err.code === 2 && /usage/.test(err.stderr));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the agent runs detached, serves /healthz, and on SIGTERM stops its children and exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-proc-'));
  const address = '127.0.13.7';
  const port = await findFreePort(address);
  const config = {
    machine: 'm1',
    nodeName: 'm1',
    address,
    dataDir: dir,
    agentPort: port,
    stopGraceSeconds: 2,
    processes: [
      { name: 'one', command: '/bin/sh', args: ['-c', 'exec sleep 1000'] },
      { name: 'two', command: '/bin/sh', args: ['-c', 'trap "echo got TERM; exit 0" TERM; while :; do sleep 0.1; done'] },
    ],
  };
  writeFileSync(join(dir, 'agent.json'), JSON.stringify(config));
  const agent = await spawnLogged({ command: process.execPath, args: [AGENT_MAIN, '--config', join(dir, 'agent.json')], logFile: join(dir, 'stdio.log') });
  let children: number[] = [];
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`http://${address}:${port}/healthz`);
        const body = (await res.json()) as { ok: boolean; processes: { pid?: number }[] };
        if (res.status === 200 && body.ok) {
          children = body.processes.map((p) => p.pid!);
          break;
        }
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline || agent.exitInfo()) assert.fail(`agent not healthy: ${readFileSync(join(dir, 'stdio.log'), 'utf8')}`);
      await sleep(100);
    }
    assert.equal(readFileSync(join(dir, 'agent.pid'), 'utf8').trim(), String(agent.pid));
    assert.equal(children.length, 2);
    await sleep(300); // let "two" install its trap

    process.kill(agent.pid, 'SIGTERM'); // the agent only, not the group: it must stop its children
    const exit = await agent.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    for (const pid of children) assert.ok(!isProcessAlive(pid), `child ${pid} left`);
    assert.ok(!isProcessGroupAlive(agent.pid));
    assert.ok(!existsSync(join(dir, 'agent.pid')), 'pid file removed');
    assert.match(readFileSync(join(dir, 'logs', 'two.log'), 'utf8'), /got TERM/);
    const log = readFileSync(join(dir, 'logs', 'agent.log'), 'utf8');
    assert.match(log, /"msg":"agent stopped"/);
  } finally {
    await stopProcessGroup(agent.pid, { graceMs: 2000 }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
