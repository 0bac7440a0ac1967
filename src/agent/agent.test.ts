import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { findFreePort } from '../proc/net.js';
import { isProcessAlive } from '../proc/spawn.js';
import { MachineAgent, type MachineFacts } from './agent.js';
import type { AgentConfig } from './config.js';

test('agent serves /healthz, /facts and /metrics about its processes, and stops them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'agent-'));
  const port = await findFreePort('127.0.0.1');
  const config: AgentConfig = {
    machine: 'm1',
    nodeName: 'node-1',
    address: '127.0.0.1',
    dataDir: dir,
    agentPort: port,
    roles: ['etcd', 'worker'],
    processes: [{ name: 'sleeper', command: '/bin/sh', args: ['-c', 'exec sleep 1000'] }],
  };
  const agent = new MachineAgent(config, { log: pino({ level: 'silent' }) });
  const base = `http://127.0.0.1:${port}`;
  let pid = 0;
  try {
    await agent.start();
    assert.ok(existsSync(join(dir, 'agent.pid')));

    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    const health = (await h.json()) as { ok: boolean; processes: { name: string; pid: number; state: string; restarts: number }[]; kubelet: unknown };
    assert.equal(health.ok, true);
    assert.equal(health.kubelet, null);
    assert.equal(health.processes[0]?.state, 'running');
    pid = health.processes[0]!.pid;

    const facts = (await (await fetch(`${base}/facts`)).json()) as MachineFacts;
    assert.equal(facts.machine, 'm1');
    assert.equal(facts.nodeName, 'node-1');
    assert.deepEqual(facts.roles, ['etcd', 'worker']);
    assert.ok((facts.agent.rssBytes ?? 0) > 0);
    assert.ok((facts.processes[0]?.rssBytes ?? 0) > 0);
    assert.ok(facts.total.rssBytes >= (facts.agent.rssBytes ?? 0) + (facts.processes[0]?.rssBytes ?? 0));
    assert.ok(facts.disk.usedBytes > 0);

    const m = await fetch(`${base}/metrics`);
    assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
    const text = await m.text();
    assert.match(text, /^marina_agent_process_rss_bytes\{process="agent"\} \d+/m);
    assert.match(text, /^marina_agent_process_rss_bytes\{process="sleeper"\} \d+/m);
    assert.match(text, /^# TYPE marina_agent_process_cpu_seconds_total counter/m);
    assert.match(text, /^marina_agent_process_cpu_seconds_total\{process="agent"\} [\d.]+/m);
    assert.match(text, /^marina_agent_process_restarts_total\{process="sleeper"\} 0/m);
    assert.match(text, /^marina_agent_disk_used_bytes \d+/m);
    assert.match(text, /^marina_agent_kubelet_heartbeat_timestamp_seconds 0/m);

    assert.equal((await fetch(`${base}/nope`)).status, 404);

    // A process killed from outside is restarted and counted; health reflects it meanwhile.
    process.kill(pid, 'SIGKILL');
    const end = Date.now() + 5000;
    let restarted = false;
    while (Date.now() < end && !restarted) {
      await new Promise((r) => setTimeout(r, 50));
      const p = agent.health().processes[0]!;
      restarted = p.restarts === 1 && p.state === 'running';
    }
    assert.ok(restarted, 'restarted after SIGKILL');
    pid = agent.health().processes[0]!.pid!;
  } finally {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  }
  assert.ok(!isProcessAlive(pid), 'child stopped');
  await assert.rejects(fetch(`${base}/healthz`), 'server closed');
});
