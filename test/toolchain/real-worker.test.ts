// Feasibility of real workers on this kind of host, end to end with the real binaries: a control
// plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), then containerd + kubelet
// from the toolchain caches (test/toolchain/worker.ts), the locally built images imported, and a Pod
// of the test image that runs: kubectl logs, exec and port-forward work, its pod IP answers HTTP
// from the host. Afterwards nothing of the worker is left (process, cgroup, interface, mount), and
// the host's kernel settings and /var paths are untouched. Needs root on Linux (cgroups, mounts,
// network interfaces); skips only without them. docs/real-workers.md records the findings.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopProcessGroup } from '../../src/proc/index.js';
import { defaultVersion } from '../../src/toolchain/versions.js';
import { type ControlPlane, startControlPlane } from './controlplane.js';
import { ensureImages, ensureNodeRuntime, ensureToolchain } from './ensure.js';
import { cgroupMounts, type Leftovers, readSysctls, type RealWorker, startRealWorker } from './worker.js';

const execFileAsync = promisify(execFile);

const skip =
  process.platform !== 'linux'
    ? 'real workers need Linux'
    : process.getuid?.() !== 0
      ? 'real workers need root (cgroups, mounts, network interfaces)'
      : cgroupMounts().length === 0
        ? 'no cgroup hierarchy is mounted'
        : false;
if (skip) console.log(`SKIP real worker test: ${skip}`);

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** A /24 in 10.200.0.0/13 that no route of the host uses (other tests may have bridges too). */
async function freePodSubnet(): Promise<string> {
  const { stdout } = await execFileAsync('ip', ['-4', 'route', 'show']);
  for (;;) {
    const subnet = `10.${200 + Math.floor(Math.random() * 8)}.${Math.floor(Math.random() * 256)}.0/24`;
    if (!stdout.includes(subnet.replace('.0/24', '.'))) return subnet;
  }
}

describe('real worker: containerd + kubelet run a Pod (real binaries)', { skip, timeout: 2_400_000 }, () => {
  const version = defaultVersion();
  let dir = '';
  let cp: ControlPlane | undefined;
  let worker: RealWorker | undefined;
  let leftovers: Leftovers | undefined;
  let podIP = '';
  let workerStartedAt = 0;
  const sysctlsBefore = skip ? {} : readSysctls();
  const podName = `web-${Date.now().toString(36)}`;

  before(async () => {
    // Cached builds answer in seconds; a missing one is built first (minutes).
    const [toolchain, runtime, images] = await Promise.all([ensureToolchain(version), ensureNodeRuntime(), ensureImages()]);
    dir = mkdtempSync('/tmp/mrw-'); // short: containerd's shim sockets live below it (108-byte limit)
    cp = await startControlPlane({ toolchain, dir: join(dir, 'cp'), onProgress: (m) => console.log(m) });
    worker = await startRealWorker({
      dir: join(dir, 'w'),
      kubelet: toolchain.extra.kubelet,
      runtime,
      images,
      pki: cp.pki,
      apiServerURL: cp.apiServerURL,
      nodeAddress: `127.0.12.${2 + Math.floor(Math.random() * 253)}`,
      podSubnet: await freePodSubnet(),
    });
    workerStartedAt = Date.now();
    console.log(`worker ${worker.nodeName}: cgroup ${worker.cgroupRoot}, bridge ${worker.bridge}`);
  });

  after(async () => {
    try {
      if (worker) leftovers = await worker.stop();
      if (cp) await cp.stop();
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  const kubectl = async (args: string[], timeoutMs = 60_000): Promise<string> => {
    assert.ok(cp);
    return cp.kubectl(args, timeoutMs);
  };

  it('the Node registers and becomes Ready', async () => {
    assert.ok(worker);
    // `kubectl wait` fails at once on a Node that is not registered yet.
    for (let i = 0; !(await kubectl(['get', 'nodes', '-o', 'name'])).includes(`node/${worker.nodeName}`); i++) {
      if (i > 120) assert.fail(`the Node did not register\n${worker.logs()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await kubectl(['wait', '--for=condition=Ready', `node/${worker.nodeName}`, '--timeout=120s'], 130_000);
    console.log(`Node ${worker.nodeName} Ready ${Date.now() - workerStartedAt} ms after kubelet was started`);
    const node = JSON.parse(await kubectl(['get', 'node', worker.nodeName, '-o', 'json'])) as {
      status: { addresses: { type: string; address: string }[]; nodeInfo: { containerRuntimeVersion: string; kubeletVersion: string } };
    };
    assert.equal(node.status.nodeInfo.kubeletVersion, version);
    assert.match(node.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/2\./);
    assert.deepEqual(node.status.addresses.find((a) => a.type === 'InternalIP')?.address, worker.nodeName);
  });

  it('a Pod of the locally built test image runs', async () => {
    assert.ok(worker);
    // The default ServiceAccount comes from kube-controller-manager shortly after start.
    for (let i = 0; ; i++) {
      try {
        await kubectl(['get', 'serviceaccount', 'default']);
        break;
      } catch (err) {
        if (i > 60) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: podName },
      spec: {
        nodeName: worker.nodeName,
        terminationGracePeriodSeconds: 5,
        // runc's seccomp filter and the cgroup limits (Guaranteed QoS) are part of what is proven.
        securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'app',
            image: 'marina.local/testapp:1',
            imagePullPolicy: 'Never',
            env: [{ name: 'TICK_SECONDS', value: '1' }],
            ports: [{ containerPort: 8080 }],
            resources: { limits: { cpu: '100m', memory: '64Mi' } },
          },
        ],
      },
    };
    const manifest = join(dir, 'pod.json');
    writeFileSync(manifest, JSON.stringify(pod));
    await kubectl(['apply', '-f', manifest]);
    try {
      await kubectl(['wait', '--for=condition=Ready', `pod/${podName}`, '--timeout=120s'], 130_000);
    } catch (err) {
      throw new Error(`${String(err)}\n${await kubectl(['describe', 'pod', podName]).catch(() => '')}\n${worker.logs()}`);
    }
    podIP = (await kubectl(['get', 'pod', podName, '-o', 'jsonpath={.status.podIP}'])).trim();
    assert.match(podIP, /^10\.2\d\d\.\d+\.\d+$/);
    console.log(`pod ${podName} Running at ${podIP}; worker memory ${(worker.memoryBytes() / 2 ** 20).toFixed(0)} MiB`);
  });

  it('kubectl logs shows its output', async () => {
    for (let i = 0; ; i++) {
      const logs = await kubectl(['logs', podName]);
      if (/testapp: started on web-/.test(logs) && /testapp: tick 2/.test(logs)) break;
      if (i > 30) assert.fail(`unexpected logs:\n${logs}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  it('kubectl exec runs a command in it', async () => {
    const out = await kubectl([
      'exec',
      podName,
      '--',
      'sh',
      '-c',
      'echo $((6 * 7)); hostname; wget -qO- http://127.0.0.1:8080/; grep "^Seccomp:" /proc/1/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max',
    ]);
    // Seccomp 2 = filter mode (RuntimeDefault); 64Mi limit from the Pod spec (cgroup v1 or v2).
    assert.equal(out, `42\n${podName}\ntestapp ${podName}\nSeccomp:\t2\n${64 * 2 ** 20}\n`);
  });

  it('its pod IP answers HTTP from the host', async () => {
    assert.equal(await httpGet(`http://${podIP}:8080/`), `testapp ${podName}\n`);
  });

  it('kubectl port-forward reaches it', async () => {
    assert.ok(cp);
    const pf = spawn(cp.toolchain.paths.kubectl, ['--kubeconfig', cp.kubeconfig, 'port-forward', `pod/${podName}`, ':8080'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no forwarding line: ${out}`)), 30_000);
        const onData = (c: Buffer): void => {
          out += c.toString();
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        };
        pf.stdout.on('data', onData);
        pf.stderr.on('data', onData);
        pf.on('exit', () => reject(new Error(`kubectl port-forward exited: ${out}`)));
      });
      assert.equal(await httpGet(`http://127.0.0.1:${port}/`), `testapp ${podName}\n`);
    } finally {
      if (pf.pid) await stopProcessGroup(pf.pid, { graceMs: 2_000 });
    }
  });

  it('the host is untouched while it runs: kernel settings, /var/lib/kubelet, /var/log/pods', () => {
    assert.deepEqual(readSysctls(), sysctlsBefore, 'kubelet rewrote the bind-mounted copies, not the host values');
    for (const p of ['/var/log/pods', '/var/log/containers']) {
      if (existsSync(p)) assert.equal(readdirSync(p).filter((n) => n.includes(podName)).length, 0, `${p} has nothing of the pod`);
    }
  });

  it('deleting the Pod stops it', async () => {
    await kubectl(['delete', 'pod', podName, '--wait=true', '--timeout=60s'], 70_000);
    assert.equal((await kubectl(['get', 'pods', '-o', 'name'])).trim(), '');
  });

  it('stopping the worker leaves no process, cgroup, interface or mount behind', async () => {
    assert.ok(worker);
    leftovers = await worker.stop();
    assert.deepEqual(leftovers, { pids: [], cgroups: [], interfaces: [], mounts: [] });
    const { stdout } = await execFileAsync('ip', ['-o', 'link', 'show']);
    assert.doesNotMatch(stdout, new RegExp(worker.bridge), 'bridge removed');
    assert.equal(existsSync(`/proc/${worker.namespacePid}`), false, 'mount namespace holder gone');
  });
});
