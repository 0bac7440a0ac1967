// Integration test of the machine agent's virtual kubelet against a real control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler from the toolchain), asserted with the
// real kubectl. Two agents run as real detached processes (`node dist/src/agent/main.js`), each
// with its own loopback address, kubelet credentials (system:node:<name>) and a dummy child
// process. Skips with the install command when the binaries are missing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentConfig } from '../../src/agent/config.js';
import type { Lease, Node, Pod } from '../../src/kube/objects.js';
import { findFreePort, isProcessAlive, isProcessGroupAlive, type SpawnedProcess, spawnLogged, stopProcessGroup, tailFile } from '../../src/proc/index.js';
import { startTestControlPlane, type TestControlPlane, toolchainOrSkip } from '../support/controlplane.js';

const { toolchain, skip } = toolchainOrSkip();
if (skip) console.log(`# SKIP virtual kubelet integration test: ${skip}`);

const AGENT_MAIN = new URL('../../src/agent/main.js', import.meta.url).pathname;
const NODE_MONITOR_GRACE = 8; // seconds (kube-controller-manager --node-monitor-grace-period)

interface RunningAgent {
  name: string;
  config: AgentConfig;
  proc: SpawnedProcess;
  url: string;
}

interface Health {
  ok: boolean;
  processes: { name: string; pid?: number; state: string }[];
  kubelet: {
    phase: string;
    heartbeating: boolean;
    nodeUID?: string;
    podCIDR?: string;
    pendingLabels?: string[];
    reregistrations: number;
    lastReregistration?: { reason: string; at: string };
  } | null;
}

async function health(a: RunningAgent): Promise<Health> {
  const res = await fetch(`${a.url}/healthz`);
  return (await res.json()) as Health;
}

/** Retries `fn` until it returns a truthy value; fails with the last error/value after `ms`. */
async function eventually<T>(what: string, ms: number, fn: () => Promise<T | undefined | false>, logs?: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      assert.fail(`${what}: not within ${ms} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)}\n${logs?.() ?? ''}`);
    }
    await sleep(250);
  }
}

describe('virtual kubelet on a real control plane', { skip, timeout: 600_000 }, () => {
  let dir = '';
  let cp: TestControlPlane | undefined;
  const agents: RunningAgent[] = [];
  const allPids = new Set<number>();

  const kubectlJSON = async <T>(args: string[]): Promise<T> => JSON.parse(await cp!.kubectl([...args, '-o', 'json'])) as T;
  const node = (name: string) => kubectlJSON<Node>(['get', 'node', name]);
  const ready = (n: Node) => n.status?.conditions?.find((c) => c.type === 'Ready');
  const logs = () => [cp?.logs() ?? '', ...agents.map((a) => `----- agent ${a.name} -----\n${tailFile(join(a.config.dataDir, 'logs', 'agent.log'), 4000)}`)].join('\n');

  async function startAgent(name: string, kubelet: Partial<NonNullable<AgentConfig['kubelet']>> = {}, reuse?: AgentConfig): Promise<RunningAgent> {
    let config = reuse;
    if (!config) {
      const address = `127.0.11.${10 + agents.length}`;
      const dataDir = join(dir, 'machines', name);
      mkdirSync(dataDir, { recursive: true });
      config = {
        machine: name,
        nodeName: name,
        address,
        dataDir,
        agentPort: await findFreePort(address),
        roles: ['worker'],
        stopGraceSeconds: 5,
        // A stand-in for etcd/kube-apiserver: proves children die with the agent's group.
        processes: [{ name: 'pause', command: '/bin/sh', args: ['-c', 'exec sleep 100000'] }],
        kubelet: {
          kubeconfigPath: await cp!.kubeletKubeconfig(name),
          labels: { 'marina.dev/pool': 'workers', 'node.kubernetes.io/instance-type': 'virtual-small' },
          capacity: { cpu: '4', memory: '8Gi', pods: '110' },
          kubeletVersion: toolchain!.version,
          ...kubelet,
        },
      };
      writeFileSync(join(dataDir, 'agent.json'), JSON.stringify(config, null, 2));
    }
    const proc = await spawnLogged({
      command: process.execPath,
      args: [AGENT_MAIN, '--config', join(config.dataDir, 'agent.json')],
      logFile: join(config.dataDir, 'logs', 'agent.stdio.log'),
    });
    allPids.add(proc.pid);
    const a: RunningAgent = { name, config, proc, url: `http://${config.address}:${config.agentPort}` };
    const idx = agents.findIndex((x) => x.name === name);
    if (idx >= 0) agents[idx] = a;
    else agents.push(a);
    const h = await eventually(`agent ${name} healthy`, 60_000, async () => {
      if (proc.exitInfo()) throw new Error(`agent exited ${JSON.stringify(proc.exitInfo())}: ${tailFile(proc.logFile)}`);
      const h = await health(a);
      return h.ok ? h : undefined;
    }, logs);
    for (const p of h.processes) if (p.pid) allPids.add(p.pid);
    return a;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marina-vk-'));
    cp = await startTestControlPlane({
      dir,
      toolchain: toolchain!,
      nodeMonitorGracePeriod: `${NODE_MONITOR_GRACE}s`,
      onProgress: (m) => console.log(`# ${m}`),
    });
    for (const c of cp.components) allPids.add(c.proc.pid);
  });

  after(async () => {
    try {
      for (const a of agents) await stopProcessGroup(a.proc.pid, { graceMs: 10_000 }).catch(() => undefined);
      if (cp) {
        const { leftoverPids, listeningPorts } = await cp.stop();
        assert.deepEqual(leftoverPids, [], 'control plane processes left');
        assert.deepEqual(listeningPorts, [], 'control plane ports still listening');
      }
      const left = [...allPids].filter((pid) => isProcessAlive(pid));
      assert.deepEqual(left, [], 'processes left behind');
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two agents register Ready nodes with their labels, taints, addresses, capacity and Lease', async () => {
    // vk-0: pod range from node IPAM, role label via the labeler (admin) credentials.
    await startAgent('vk-0', { labelerKubeconfigPath: cp!.kubeconfig });
    // vk-1: its own podCIDR and a taint.
    await startAgent('vk-1', {
      podCIDR: '10.244.200.0/24',
      taints: [{ key: 'marina.dev/dedicated', value: 'infra', effect: 'PreferNoSchedule' }],
    });

    const nodes = await eventually('both nodes Ready', 30_000, async () => {
      const list = await kubectlJSON<{ items: Node[] }>(['get', 'nodes']);
      const byName = new Map(list.items.map((n) => [n.metadata.name, n]));
      const ns = ['vk-0', 'vk-1'].map((n) => byName.get(n));
      // Ready, and the node-lifecycle controller has lifted its initial not-ready taint.
      const schedulable = (n: Node | undefined) =>
        n && ready(n)?.status === 'True' && !n.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/not-ready');
      return ns.every(schedulable) ? (ns as Node[]) : undefined;
    }, logs);

    for (const n of nodes) {
      const name = n.metadata.name!;
      const agent = agents.find((a) => a.name === name)!;
      const l = n.metadata.labels ?? {};
      assert.equal(l['kubernetes.io/hostname'], name);
      assert.equal(l['kubernetes.io/os'], 'linux');
      assert.equal(l['marina.dev/pool'], 'workers');
      assert.equal(l['node.kubernetes.io/instance-type'], 'virtual-small');
      assert.equal(l['node-role.kubernetes.io/worker'], '', `${name} role label`);
      assert.equal(ready(n)?.reason, 'KubeletReady');
      for (const t of ['MemoryPressure', 'DiskPressure', 'PIDPressure']) {
        assert.equal(n.status?.conditions?.find((c) => c.type === t)?.status, 'False', `${name} ${t}`);
      }
      assert.deepEqual(n.status?.addresses, [
        { type: 'InternalIP', address: agent.config.address },
        { type: 'Hostname', address: name },
      ]);
      assert.equal(n.status?.capacity?.pods, '110');
      assert.equal(n.status?.allocatable?.memory, '8Gi');
      assert.equal(n.status?.nodeInfo?.kubeletVersion, toolchain!.version);
      assert.equal(n.status?.daemonEndpoints?.kubeletEndpoint.Port, agent.config.agentPort);

      const lease = await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', name]);
      assert.equal(lease.spec?.holderIdentity, name);
      assert.equal(lease.spec?.leaseDurationSeconds, 40);
      assert.match(lease.spec?.renewTime ?? '', /\.\d{6}Z$/);
      assert.deepEqual(lease.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid]), [['Node', name, n.metadata.uid]]);
    }
    const vk1 = nodes.find((n) => n.metadata.name === 'vk-1')!;
    assert.deepEqual(vk1.spec?.taints, [{ key: 'marina.dev/dedicated', value: 'infra', effect: 'PreferNoSchedule' }]);
    assert.equal(vk1.spec?.podCIDR, '10.244.200.0/24');
    const vk0 = nodes.find((n) => n.metadata.name === 'vk-0')!;
    assert.match(vk0.spec?.podCIDR ?? '', /^10\.244\.\d+\.0\/24$/, 'node IPAM assigned a podCIDR');

    // The Lease keeps being renewed.
    const before = (await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', 'vk-0'])).spec?.renewTime;
    await eventually('lease renewed', 20_000, async () => (await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', 'vk-0'])).spec?.renewTime !== before);
  });

  it('kubectl create deployment: pods become Running and Ready on the virtual nodes', async () => {
    await cp!.kubectl(['create', 'deployment', 'web', '--image=nginx', '--replicas=3']);
    await cp!.kubectl(['rollout', 'status', 'deployment/web', '--timeout=90s'], 100_000);
    const pods = (await kubectlJSON<{ items: Pod[] }>(['get', 'pods', '-l', 'app=web'])).items;
    assert.equal(pods.length, 3);
    const cidrs = new Map<string, string>();
    for (const n of ['vk-0', 'vk-1']) cidrs.set(n, (await node(n)).spec!.podCIDR!);
    const ips = new Set<string>();
    for (const p of pods) {
      const s = p.status!;
      assert.equal(s.phase, 'Running', p.metadata.name);
      assert.ok(['vk-0', 'vk-1'].includes(p.spec!.nodeName!));
      for (const t of ['PodScheduled', 'Initialized', 'Ready', 'ContainersReady']) {
        assert.equal(s.conditions?.find((c) => c.type === t)?.status, 'True', `${p.metadata.name} ${t}`);
      }
      const cs = s.containerStatuses![0]!;
      assert.equal(cs.name, 'nginx');
      assert.ok(cs.ready && cs.started && cs.restartCount === 0);
      assert.ok(cs.state.running?.startedAt);
      assert.match(cs.containerID ?? '', /^containerd:\/\/[0-9a-f]{64}$/);
      assert.match(cs.imageID, /@sha256:[0-9a-f]{64}$/);
      const agent = agents.find((a) => a.name === p.spec!.nodeName)!;
      assert.equal(s.hostIP, agent.config.address);
      assert.ok(s.startTime);
      const prefix = cidrs.get(p.spec!.nodeName!)!.replace(/\.0\/24$/, '.');
      assert.ok(s.podIP?.startsWith(prefix), `${s.podIP} in ${cidrs.get(p.spec!.nodeName!)}`);
      ips.add(s.podIP!);
    }
    assert.equal(ips.size, 3, 'pod IPs are unique');
    const wide = await cp!.kubectl(['get', 'pods', '-l', 'app=web', '-o', 'wide']);
    assert.equal(wide.split('\n').filter((l) => /\bRunning\b/.test(l)).length, 3, wide);
  });

  it('kubectl delete pod completes and the replacement runs', async () => {
    const pods = (await kubectlJSON<{ items: Pod[] }>(['get', 'pods', '-l', 'app=web'])).items;
    const victim = pods[0]!.metadata.name!;
    const t0 = Date.now();
    await cp!.kubectl(['delete', 'pod', victim, '--timeout=30s'], 40_000);
    console.log(`# kubectl delete pod took ${Date.now() - t0} ms`);
    await assert.rejects(cp!.kubectl(['get', 'pod', victim]), /NotFound|not found/);
    await cp!.kubectl(['rollout', 'status', 'deployment/web', '--timeout=60s'], 70_000);
    await eventually('3 running pods again', 30_000, async () => {
      const items = (await kubectlJSON<{ items: Pod[] }>(['get', 'pods', '-l', 'app=web'])).items;
      return items.length === 3 && items.every((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp);
    });
  });

  it('survives a kube-apiserver restart: heartbeats resume and new pods still start', async () => {
    const api = cp!.components.find((c) => c.name === 'kube-apiserver')!;
    const renewed = async () => (await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', 'vk-0'])).spec?.renewTime;
    process.kill(-api.proc.pid, 'SIGKILL');
    await eventually('kube-apiserver gone', 5000, async () => !isProcessGroupAlive(api.proc.pid));
    const outage = Date.now();
    await sleep(1500);
    const during = await health(agents.find((a) => a.name === 'vk-0')!);
    assert.equal(during.kubelet?.phase, 'running', 'the kubelet keeps running through the outage');
    // Same binary, same flags; the fixture's stop() follows `proc`.
    api.proc = await spawnLogged({ command: api.proc.command, args: api.proc.args, logFile: api.proc.logFile });
    allPids.add(api.proc.pid);
    await eventually('kube-apiserver ready again', 60_000, async () => (await cp!.kubectl(['get', '--raw', '/readyz'])).trim() === 'ok', logs);
    console.log(`# kube-apiserver was down ${Date.now() - outage} ms`);
    const first = await renewed();
    await eventually('vk-0 lease renewed after the outage', 30_000, async () => (await renewed()) !== first, logs);
    await cp!.kubectl(['scale', 'deployment/web', '--replicas=4']);
    await cp!.kubectl(['rollout', 'status', 'deployment/web', '--timeout=60s'], 70_000);
    // Each agent notices the API is back on its own next heartbeat: wait for both.
    for (const a of agents) await eventually(`${a.name} healthy after the outage`, 30_000, async () => (await health(a)).ok, logs);
  });

  it('agents report health, facts and metrics; a gracefully restarted agent adopts its Node', async () => {
    const a0 = agents.find((a) => a.name === 'vk-0')!;
    const h = await health(a0);
    assert.equal(h.ok, true);
    assert.equal(h.kubelet?.phase, 'running');
    assert.deepEqual(h.kubelet?.pendingLabels, undefined);
    const heartbeat = async () => Number(/^marina_agent_kubelet_heartbeat_timestamp_seconds (\S+)/m.exec(await (await fetch(`${a0.url}/metrics`)).text())?.[1]);
    const hb = await heartbeat();
    assert.ok(hb > 0, 'the heartbeat metric is exported');
    await eventually('the heartbeat metric advances', 30_000, async () => (await heartbeat()) > hb);
    const facts = (await (await fetch(`${a0.url}/facts`)).json()) as { agent: { rssBytes: number }; kubelet: { pods: number } };
    console.log(`# agent vk-0 RSS ${(facts.agent.rssBytes / 1048576).toFixed(1)} MiB with ${facts.kubelet.pods} pods`);

    // Nothing went wrong worth an error-level log line so far (pino level 50+).
    for (const a of agents) {
      const errors = readFileSync(join(a.config.dataDir, 'logs', 'agent.log'), 'utf8').split('\n').filter((l) => /"level":(5|6)\d/.test(l));
      assert.deepEqual(errors, [], `${a.name} logged errors`);
    }

    const uid = (await node('vk-0')).metadata.uid;
    const { killed } = await stopProcessGroup(a0.proc.pid, { graceMs: 15_000 });
    assert.equal(killed, false, 'agent exits on SIGTERM');
    assert.equal(a0.proc.exitInfo()?.code, 0);
    await startAgent('vk-0', {}, a0.config);
    const h2 = await health(agents.find((a) => a.name === 'vk-0')!);
    assert.equal(h2.kubelet?.nodeUID, uid, 'same Node adopted, not recreated');
    const items = (await kubectlJSON<{ items: Pod[] }>(['get', 'pods', '-l', 'app=web'])).items;
    assert.ok(items.every((p) => p.status?.phase === 'Running'));
  });

  it('killing an agent\'s process group stops its heartbeat and the Node goes Unknown', async () => {
    const a1 = agents.find((a) => a.name === 'vk-1')!;
    const h = await health(a1);
    const childPid = h.processes[0]!.pid!;
    assert.ok(isProcessAlive(childPid));
    process.kill(-a1.proc.pid, 'SIGKILL');
    await eventually('agent group gone', 5000, async () => !isProcessGroupAlive(a1.proc.pid));
    assert.ok(!isProcessAlive(childPid), 'child died with the group');
    const renewTime = (await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', 'vk-1'])).spec?.renewTime;
    const t0 = Date.now();
    const n = await eventually('vk-1 NotReady/Unknown', (NODE_MONITOR_GRACE + 30) * 1000, async () => {
      const n = await node('vk-1');
      return ready(n)?.status === 'Unknown' ? n : undefined;
    }, logs);
    console.log(`# vk-1 Unknown ${Date.now() - t0} ms after its agent was killed (grace ${NODE_MONITOR_GRACE}s)`);
    assert.equal(ready(n)?.reason, 'NodeStatusUnknown');
    // The node-lifecycle controller taints an Unknown node in a later pass of its own, not in the
    // update that set Unknown: wait for the taint rather than expect it already.
    await eventually('vk-1 tainted unreachable', 30_000, async () => (await node('vk-1')).spec?.taints?.some((t) => t.key === 'node.kubernetes.io/unreachable'), logs);
    assert.equal((await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', 'vk-1'])).spec?.renewTime, renewTime, 'lease no longer renewed');
    assert.equal(ready(await node('vk-0'))?.status, 'True', 'the other node stays Ready');
  });

  it('a Node deleted by someone else is registered again; the agent reports it', async () => {
    const a0 = agents.find((a) => a.name === 'vk-0')!;
    const old = await node('vk-0');
    await cp!.kubectl(['delete', 'node', 'vk-0']);
    const h = await eventually('agent reports the Node registered again', 30_000, async () => {
      const h = await health(a0);
      return h.ok && h.kubelet?.phase === 'running' && h.kubelet.reregistrations === 1 ? h : undefined;
    }, logs);
    assert.match(h.kubelet!.lastReregistration!.reason, /deleted|no longer exists/);
    const n = await eventually('vk-0 Ready again, with its labels', 30_000, async () => {
      const n = await node('vk-0');
      return ready(n)?.status === 'True' && n.metadata.labels?.['node-role.kubernetes.io/worker'] === '' ? n : undefined;
    }, logs);
    assert.notEqual(n.metadata.uid, old.metadata.uid, 'a new Node');
    assert.equal(n.metadata.uid, h.kubelet!.nodeUID);
    assert.equal(n.metadata.labels?.['marina.dev/pool'], 'workers');
    await eventually('the Lease owned by the new Node and renewed', 30_000, async () => {
      const lease = await kubectlJSON<Lease>(['get', 'lease', '-n', 'kube-node-lease', 'vk-0']);
      return lease.metadata.ownerReferences?.some((o) => o.uid === n.metadata.uid) && Date.parse(lease.spec?.renewTime ?? '') > Date.parse(n.metadata.creationTimestamp ?? '') - 1000;
    }, logs);
  });
});
