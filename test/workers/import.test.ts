// Issue 17, importing your own servers, end to end: a "user's server" — a network namespace and a
// root directory of its own on this host, made by the test, joined to the host by a veth pair —
// joins a cluster with the one command line `marina cluster join-token create` prints. Marina
// listens on the host's end of the veth, so it serves HTTPS with its own CA (--tls auto) and the
// cluster's API endpoint is published there too.
//
//   - a wrong CA pin is refused before the token is sent (Marina's join counter does not move);
//   - expired, revoked and already-used single-use tokens are refused with a clear message;
//   - the server joins, becomes a Machine of provider import and a Ready Node, and runs a pod
//     (kubectl logs and exec work);
//   - the cluster, created on v1.35.4, is upgraded to v1.36.3 in one call: the control plane is
//     rolled, the imported server upgraded in place — drained (its Deployment's pod evicted, back
//     on it after the uncordon), its agent takes the new kubelet and kube-proxy — and its Node
//     reports v1.36.3; the server's own files stay;
//   - removing the Machine drains and deletes the Node and stops and removes what Marina started
//     on the server (processes, cgroups, pod bridge, nftables tables, forwarding restored); the
//     server's own files stay.
//
// Needs root on Linux; builds the node runtime and images first when they are not cached.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { fetchTrusting } from '../../src/cli/https-fetch.js';
import { cgroupDirs } from '../../src/agent/node-runtime/cgroups.js';
import { stopProcessGroup } from '../../src/proc/index.js';
import type { ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { BIN, Cli, kubectl, pickAddressBase, serverEnv, serverLogTail, startServerProcess, teardown, waitUntil, type ServerProcess } from '../support/marina.js';
import { ensureToolchain } from '../toolchain/ensure.js';
import { ensureRealNodeArtifacts, freeSubnet30, linkExists, nodeCacheEnv, realNodeSkip, sweepLeftoverNodes } from './support.js';

const execFileAsync = promisify(execFile);
const skip = realNodeSkip();
/** The cluster is created on FROM and upgraded to TO (both kept by the toolchain cache). */
const FROM = 'v1.35.4';
const TO = 'v1.36.3';
if (skip) console.log(`SKIP import e2e: ${skip}`);

interface Run {
  code: number | null;
  out: string;
}

describe("e2e: a user's server joins with the one-line command (import provider)", { skip, timeout: 2_100_000 }, () => {
  const id = randomBytes(3).toString('hex');
  const netns = `mrnsrv-${id}`;
  const hostVeth = `mrnh${id}`;
  let net: { host: string; peer: string };
  let tmp = '';
  let dataDir = '';
  let serverRoot = '';
  let server: ServerProcess | undefined;
  let cli: Cli;
  let toolchain: ResolvedToolchain;
  let kc = '';
  let caFile = '';
  let agent: ChildProcess | undefined;
  let agentOut = '';
  let machine = '';
  let forwardBefore = '';
  const k = (args: string[], timeoutMs = 60_000) => kubectl(toolchain, kc, args, timeoutMs);
  const ns = (cmd: string, args: string[]) => execFileAsync('nsenter', [`--net=/run/netns/${netns}`, cmd, ...args]);

  /** `marina agent join ...` on the user's server (its network namespace), waited for. */
  const agentJoin = (args: string[], timeoutMs = 120_000): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, BIN, 'agent', 'join', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => {
        void stopProcessGroup(child.pid!, { graceMs: 5000 });
        reject(new Error(`agent join did not finish in ${timeoutMs} ms: ${out}`));
      }, timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });

  /** Marina's count of join requests (every request that carried a join token). */
  const joinRequests = async (): Promise<number> => {
    const text = await (await fetchTrusting(readFileSync(caFile, 'utf8'))(`${server!.url}/metrics`)).text();
    return [...text.matchAll(/^marina_join_requests_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };
  const createToken = async (flags: string[]): Promise<{ command: string; token: string; id: string }> => {
    const r = await cli.ok(['cluster', 'join-token', 'create', 'im', '--pool', 'byo', ...flags]);
    const command = r.stdout.trim();
    const token = /--token (\S+)/.exec(command)![1]!;
    return { command, token, id: token.split('.')[0]! };
  };
  /** The printed command's arguments after `marina agent join`, with this server's data directory. */
  const argsOf = (command: string, dataSub = 'var/lib/marina-agent') => {
    assert.match(command, /^marina agent join --url https:\/\/\S+ --token [a-z0-9]{6}\.[a-z0-9]{16} --ca-pin sha256:[0-9a-f]{64}$/);
    return [...command.split(' ').slice(3), '--data-dir', join(serverRoot, dataSub)];
  };

  before(async () => {
    toolchain = await ensureRealNodeArtifacts(TO);
    await ensureToolchain(FROM);
    tmp = mkdtempSync(join(tmpdir(), 'mrn-im-'));
    dataDir = join(tmp, 'data');
    serverRoot = join(tmp, 'server-root');
    mkdirSync(join(serverRoot, 'srv', 'data'), { recursive: true });
    writeFileSync(join(serverRoot, 'srv', 'data', 'important.txt'), 'the user\'s own data\n');
    mkdirSync(join(tmp, 'home'));
    cli = new Cli(join(tmp, 'home'));
    // The user's server: a network namespace joined to the host by a veth pair.
    net = await freeSubnet30();
    await execFileAsync('ip', ['netns', 'add', netns]);
    await execFileAsync('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await execFileAsync('ip', ['addr', 'add', `${net.host}/30`, 'dev', hostVeth]);
    await execFileAsync('ip', ['link', 'set', hostVeth, 'up']);
    for (const a of [['link', 'set', 'lo', 'up'], ['addr', 'add', `${net.peer}/30`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up'], ['route', 'add', 'default', 'via', net.host]]) await ns('ip', a);
    forwardBefore = (await ns('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim();
    // Marina listens where the server reaches it: beyond loopback, so HTTPS with its own CA.
    server = await startServerProcess({
      dataDir,
      listen: `${net.host}:0`,
      logFile: join(tmp, 'server.log'),
      // Both versions from the toolchain cache (MARINA_BIN_DIR would pin every cluster to one).
      env: { ...withoutPinnedBinDir(serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase() })), ...nodeCacheEnv(), MARINA_TOOLCHAIN_DIR: dirname(dirname(toolchain.paths.etcd)) },
    });
    assert.match(server.url, /^https:\/\//);
    caFile = join(dataDir, 'tls', 'ca.crt');
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token'), '--certificate-authority', caFile]);
  });

  after(async () => {
    const recorded = existsSync(join(serverRoot, 'var/lib/marina-agent/agent.json'))
      ? [JSON.parse(readFileSync(join(serverRoot, 'var/lib/marina-agent/agent.json'), 'utf8')).node as { dir: string; cgroupRoot: string; runDir: string }]
      : [];
    if (agent?.pid && agent.exitCode === null) await stopProcessGroup(agent.pid, { graceMs: 30_000 }).catch(() => undefined);
    await teardown({ tmp, dataDir, cli, server, cluster: 'im' });
    await sweepLeftoverNodes(recorded.map((n) => ({ machine: machine, dir: n.dir, cgroupRoot: n.cgroupRoot, runDir: n.runDir })));
    await execFileAsync('ip', ['netns', 'del', netns]).catch(() => undefined);
    if (await linkExists(hostVeth)) await execFileAsync('ip', ['link', 'del', hostVeth]).catch(() => undefined);
  });

  it('creates a cluster with an import pool; its control plane comes up while the pool waits for servers', async () => {
    const file = join(tmp, 'cluster.yaml');
    writeFileSync(
      file,
      `apiVersion: marina.dev/v1alpha1
kind: Cluster
metadata: {name: im}
spec:
  kubernetesVersion: ${FROM}
  nodePools:
    - {name: etcd, roles: [etcd], replicas: 1}
    - {name: cp, roles: [controlplane], replicas: 1}
    - {name: byo, roles: [worker], replicas: 1, provider: import, healing: {drainTimeoutSeconds: 120}}
`,
    );
    await cli.ok(['cluster', 'create', 'im', '-f', file, '--no-wait']);
    kc = join(tmp, 'kubeconfig');
    await waitUntil('the control plane', 400_000, async () => {
      const c = await cli.json<{ status?: { conditions?: { type: string; status: string; message: string }[] } }>(['get', 'cluster', 'im']);
      const cond = (t: string) => c.status?.conditions?.find((x) => x.type === t);
      if (cond('ControlPlaneReady')?.status !== 'True') return undefined;
      assert.match(cond('PoolsReady')?.message ?? '', /byo 0\/1/);
      return true;
    }, 2000);
    await cli.ok(['cluster', 'kubeconfig', 'im', '--output-file', kc]);
    const pool = await cli.json<{ status?: { conditions?: { type: string; reason: string; message: string }[] } }>(['get', 'nodepool', 'im-byo']);
    const scaled = pool.status?.conditions?.find((c) => c.type === 'Scaled');
    assert.equal(scaled?.reason, 'WaitingForServers', 'Marina cannot create imported servers; it waits for them');
  });

  it('refuses a wrong CA pin before the token is sent', async () => {
    const t = await createToken(['--single-use']);
    const before = await joinRequests();
    const wrong = t.command.replace(/sha256:[0-9a-f]{64}/, `sha256:${'0'.repeat(64)}`);
    const r = await agentJoin(argsOf(wrong, 'wrong-pin'));
    assert.notEqual(r.code, 0);
    assert.match(r.out, /presented a CA with pin sha256:[0-9a-f]{64}, but the join command pins sha256:0{64}: refusing to talk to it \(nothing was sent\)/);
    assert.equal(await joinRequests(), before, 'Marina never saw a join request');
    assert.equal(existsSync(join(serverRoot, 'wrong-pin', 'join.json')), false);
  });

  it('refuses an expired, a revoked and an already used single-use token, saying which', async () => {
    const expired = await createToken(['--ttl', '1s']);
    await new Promise((r) => setTimeout(r, 1500));
    const e = await agentJoin(argsOf(expired.command, 'expired'));
    assert.notEqual(e.code, 0);
    assert.match(e.out, new RegExp(`join token ${expired.id} expired at `));

    const revoked = await createToken([]);
    await cli.ok(['cluster', 'join-token', 'revoke', 'im', revoked.id]);
    const rv = await agentJoin(argsOf(revoked.command, 'revoked'));
    assert.notEqual(rv.code, 0);
    assert.match(rv.out, new RegExp(`join token ${revoked.id} was revoked at `));

    const list = await cli.json<{ items: { id: string; state: string }[] }>(['cluster', 'join-token', 'list', 'im']);
    const states = Object.fromEntries(list.items.map((t) => [t.id, t.state]));
    assert.equal(states[expired.id], 'expired');
    assert.equal(states[revoked.id], 'revoked');
    const listed = (await cli.ok(['cluster', 'join-token', 'list', 'im'])).stdout;
    assert.ok(!listed.includes(expired.token) && !listed.includes(revoked.token), 'tokens are never printed again');
  });

  it('joins with the one command line; the server becomes a Ready Node of provider import', async () => {
    const t = await createToken(['--single-use']);
    const args = argsOf(t.command);
    agent = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, BIN, 'agent', 'join', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    agent.stdout!.on('data', (c: Buffer) => (agentOut += c.toString()));
    agent.stderr!.on('data', (c: Buffer) => (agentOut += c.toString()));
    const m = await waitUntil('the imported Machine Running', 400_000, async () => {
      const list = await cli.json<{ items: { metadata: { name: string }; spec: { provider: string }; status?: { phase?: string; address?: string; nodeReady?: boolean } }[] }>(['get', 'machines', '-l', 'marina.dev/pool=byo']);
      const found = list.items[0];
      if (agent!.exitCode !== null) throw new Error(`the agent exited: ${agentOut}`);
      return found?.status?.phase === 'Running' && found.status.nodeReady ? found : undefined;
    }, 2000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent:\n${agentOut}\nserver:\n${serverLogTail(server!.logFile, 6000)}`);
    });
    machine = m.metadata.name;
    assert.equal(m.spec.provider, 'import');
    assert.equal(m.status?.address, net.peer);
    const node = JSON.parse(await k(['get', 'node', machine, '-o', 'json'])) as { status: { nodeInfo: { containerRuntimeVersion: string } } };
    assert.match(node.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/2\./);
    assert.match(agentOut, /downloading \d+ artifacts .* with checksums/);
    // The same single-use token again, from another server root: refused.
    const again = await agentJoin(argsOf(t.command, 'second-server'));
    assert.notEqual(again.code, 0);
    assert.match(again.out, new RegExp(`join token ${t.id} was for a single use and is used already \\(machine ${machine}\\)`));
    // Tokens are never logged: not the ones that worked, not the refused ones.
    assert.ok(!readFileSync(server!.logFile, 'utf8').includes(t.token.split('.')[1]!), 'the server log does not contain the token');
  });

  it('runs a pod on the imported server: kubectl logs and exec work', async () => {
    await k(['run', 'on-byo', '--image=marina.local/testapp:1', '--image-pull-policy=Never', `--overrides={"spec":{"nodeName":"${machine}","terminationGracePeriodSeconds":2}}`, '--env=TICK_SECONDS=1']);
    await k(['wait', '--for=condition=Ready', 'pod/on-byo', '--timeout=120s'], 130_000);
    await waitUntil('logs', 30_000, async () => ((await k(['logs', 'on-byo'])).includes('testapp: tick 1') ? true : undefined));
    assert.equal(await k(['exec', 'on-byo', '--', 'hostname']), 'on-byo\n');
    // The kubernetes Service points at Marina's public address: pods on the server reach the API.
    const out = await waitUntil('an answer from the apiserver', 30_000, async () => {
      const text = await k(['exec', 'on-byo', '--', 'sh', '-c', 'wget -qO- http://10.96.0.1:443/ 2>&1; true']);
      return /400 Bad Request/.test(text) ? text : undefined;
    });
    assert.match(out, /400 Bad Request/);
  });

  it(`upgrades the cluster to ${TO}: the imported server in place, drained first, its own files untouched`, async () => {
    // A Deployment's pod on the server (the only worker): the drain evicts it, it waits Pending
    // while the server is cordoned and runs on it again after the uncordon.
    await k(['create', 'deployment', 'web', '--image=marina.local/testapp:1']);
    await k(['patch', 'deployment', 'web', '-p', '{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":2,"containers":[{"name":"testapp","imagePullPolicy":"Never","env":[{"name":"TICK_SECONDS","value":"1"}]}]}}}}']);
    await k(['rollout', 'status', 'deployment/web', '--timeout=120s'], 130_000);
    const podBefore = (await k(['get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    const before = JSON.parse(await k(['get', 'node', machine, '-o', 'json'])) as { status: { nodeInfo: { kubeletVersion: string } } };
    assert.equal(before.status.nodeInfo.kubeletVersion, FROM);

    const started = await cli.ok(['cluster', 'upgrade', 'im', '--version', TO, '--no-wait']);
    const name = /operation\/(\S+) created/.exec(started.stdout)?.[1];
    assert.ok(name, started.stdout);
    const r = await cli.run(['operation', 'describe', name, '-w', '--timeout', '25m'], 1_560_000);
    const described = (await cli.ok(['operation', 'describe', name])).stdout;
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}\n${described}\nagent:\n${agentOut}\nserver:\n${serverLogTail(server!.logFile, 6000)}`);
    assert.match(described, /Succeeded/);
    assert.match(described, /importedServers\s+Succeeded\s+.*imported servers: 1\/1 upgraded in place to v1\.36\.3/);
    // The server's agent fetched the new binaries with their checksums and restarted its node's kubelet and kube-proxy on them.
    assert.match(agentOut, /upgrading the node from v1\.35\.4 to v1\.36\.3/);
    assert.match(agentOut, new RegExp(`node ${machine} restarted kubelet and kube-proxy on v1\\.36\\.3`));

    const node = JSON.parse(await k(['get', 'node', machine, '-o', 'json'])) as { spec: { unschedulable?: boolean }; status: { nodeInfo: { kubeletVersion: string }; conditions: { type: string; status: string }[] } };
    assert.equal(node.status.nodeInfo.kubeletVersion, TO, 'the imported Node reports the new kubelet');
    assert.equal(node.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
    assert.notEqual(node.spec.unschedulable, true, 'uncordoned');
    const m = await cli.json<{ spec: { kubernetesVersion: string } }>(['get', 'machine', machine]);
    assert.equal(m.spec.kubernetesVersion, TO, 'the Machine records the version it runs');
    // The drain evicted the pods: the bare pod is gone, the Deployment's runs again on the upgraded server.
    assert.equal((await k(['get', 'pods', '-o', 'name'])).includes('pod/on-byo'), false, 'the bare pod was evicted');
    // Its replacement: made once a kube-controller-manager leads again (the control plane was
    // just replaced, so the Deployment's status may still count the evicted pod), scheduled once
    // the server is schedulable again.
    type PodList = { items: { metadata: { name: string }; spec: { nodeName?: string }; status: { phase: string } }[] };
    const replacement = await waitUntil('a new web pod Running on the upgraded server', 180_000, async () => {
      const pods = (JSON.parse(await k(['get', 'pods', '-l', 'app=web', '-o', 'json'])) as PodList).items;
      return pods.find((p) => p.metadata.name !== podBefore && p.status.phase === 'Running');
    }, 1000);
    assert.equal(replacement.spec.nodeName, machine);
    assert.equal((JSON.parse(await k(['get', 'pods', '-l', 'app=web', '-o', 'json'])) as PodList).items.some((p) => p.metadata.name === podBefore), false, 'the old pod was evicted');
    await waitUntil('logs of the new pod', 60_000, async () => ((await k(['logs', 'deployment/web'])).includes('testapp: tick') ? true : undefined));
    assert.equal(readFileSync(join(serverRoot, 'srv', 'data', 'important.txt'), 'utf8'), "the user's own data\n", "the server's own files are untouched");
    const version = JSON.parse(await k(['version', '-o', 'json'])) as { serverVersion: { gitVersion: string } };
    assert.equal(version.serverVersion.gitVersion, TO);
  });

  it("removing the Machine deletes its Node and stops what Marina started there; the server's own files stay", async () => {
    const agentConfig = JSON.parse(readFileSync(join(serverRoot, 'var/lib/marina-agent/agent.json'), 'utf8')) as { node: { cgroupRoot: string; runDir: string; dir: string } };
    assert.ok(cgroupDirs(agentConfig.node.cgroupRoot).length > 0, 'the node runs in its cgroups');
    const r = await cli.run(['delete', 'machine', machine, '--wait', '--timeout', '3m'], 200_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal((await k(['get', 'nodes', '-o', 'name'])).includes(`node/${machine}`), false, 'Node deleted');
    await waitUntil('the agent to exit', 60_000, async () => (agent!.exitCode !== null ? true : undefined));
    assert.equal(agent!.exitCode, 0, agentOut);
    assert.match(agentOut, /left cluster im: everything Marina started on this server is stopped and removed/);
    // What Marina started is gone ...
    assert.deepEqual(cgroupDirs(agentConfig.node.cgroupRoot), []);
    assert.equal(existsSync(agentConfig.node.runDir), false);
    assert.equal(existsSync(agentConfig.node.dir), false);
    assert.equal(await linkExists('cni0', netns), false, 'pod bridge removed');
    const ruleset = (await ns('nft', ['list', 'ruleset'])).stdout;
    assert.doesNotMatch(ruleset, /kube-proxy|marina-node/, 'nftables tables removed');
    assert.equal((await ns('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), forwardBefore, 'forwarding restored');
    // ... and the server's own files are not.
    assert.equal(readFileSync(join(serverRoot, 'srv', 'data', 'important.txt'), 'utf8'), "the user's own data\n");
    assert.deepEqual(readdirSync(join(serverRoot, 'var/lib/marina-agent')), ['agent.log'], 'only the agent log of what it did remains');
  });
});

/** The server's environment without MARINA_BIN_DIR, which pins every cluster to one version. */
function withoutPinnedBinDir(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { MARINA_BIN_DIR: _pinned, ...rest } = env;
  return rest;
}
