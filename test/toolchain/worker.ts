// A real worker for tests: containerd (own root, state, socket) + the locally built images + a
// kubelet registered with a running control plane, on a bridge/host-local CNI network. The
// configuration and the reasons for each setting are in docs/real-workers.md. A test fixture, not
// Marina's machine agent.
//
// Isolation from the host and from other workers on it:
// - Mount namespace: containerd and kubelet run in a private mount namespace held by one process.
//   Inside it, the host paths kubelet and the CNI library use whatever their flags say
//   (/var/lib/kubelet with its device-plugin socket, /var/log/pods, /var/log/containers,
//   /var/lib/cni) are bind mounts of this worker's directories, and the kernel settings kubelet
//   rewrites (vm.overcommit_memory, kernel.panic, ...) are bind mounts of files: the host's real
//   values are never changed. Every mount containerd and kubelet make (overlay rootfs, sandbox
//   /dev/shm, network namespaces, volume tmpfs) lives in that namespace and disappears with it.
// - cgroups: everything runs in /marina-worker-<id> of every hierarchy: containerd and its shims in
//   runtime/, kubelet in kubelet/, pods in kubepods/ (kubelet's cgroupRoot). stop() kills what is
//   left in that subtree, which also ends the mount namespace, then removes the cgroups.
// - Network: the host's network namespace (the control plane listens on loopback); pods get veths
//   on this worker's own bridge, removed by stop().
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { buildKubeconfig, type ControlPlanePki, issueCertificate } from '../../src/pki/index.js';
import { findFreePorts, isProcessAlive, type SpawnedProcess, spawnLogged, stopProcessGroup, tailFile } from '../../src/proc/index.js';
import type { LocalImage, NodeRuntime } from '../../src/toolchain/components.js';
import type { ImageName } from '../../src/toolchain/versions.js';

const execFileAsync = promisify(execFile);

export interface WorkerOptions {
  /** Directory for everything of this worker (short: containerd's shim sockets live below it). */
  dir: string;
  kubelet: string;
  runtime: NodeRuntime;
  images: Record<ImageName, LocalImage>;
  pki: ControlPlanePki;
  apiServerURL: string;
  /**
   * Loopback address the kubelet serves on. It is also the Node's name: kubelet refuses a loopback
   * --node-ip ("nodeIP can't be loopback address"), but takes an IP given as --hostname-override
   * as the InternalIP without that check, and the apiserver then reaches it there.
   */
  nodeAddress: string;
  /** Pod subnet of this worker's bridge, e.g. 10.244.7.0/24 (host-local IPAM hands out from it). */
  podSubnet: string;
  /** Extra KubeletConfiguration fields. */
  kubeletConfig?: Record<string, unknown>;
}

/** What stop() found still there after cleaning up (every list empty when all went well). */
export interface Leftovers {
  pids: number[];
  cgroups: string[];
  interfaces: string[];
  /** Mounts below the worker's directory visible from the host's mount namespace. */
  mounts: string[];
}

export interface RealWorker {
  nodeName: string;
  id: string;
  cgroupRoot: string;
  bridge: string;
  containerdSocket: string;
  /** pid of the process holding the worker's mount namespace. */
  namespacePid: number;
  ctr(args: string[]): Promise<string>;
  /** Bytes of memory charged to the worker's cgroup subtree (containerd, shims, kubelet, pods). */
  memoryBytes(): number;
  logs(): string;
  /** Stops everything and removes what the worker created; returns what is left (should be empty). */
  stop(): Promise<Leftovers>;
}

/** Kernel settings kubelet's container manager rewrites unless protectKernelDefaults is set. */
export const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

/** Host paths kubelet and the CNI library use regardless of their root/state flags. */
const HOST_PATHS = ['/var/lib/kubelet', '/var/log/pods', '/var/log/containers', '/var/lib/cni'];

export function readSysctls(): Record<string, string> {
  return Object.fromEntries(KUBELET_SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()]));
}

function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' '))
    .map((f) => ({ path: (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), type: f[f.indexOf('-') + 1] }))
    .filter((m) => m.path)
    .map((m) => `${m.type} ${m.path}`);
}

/** Mount points of every cgroup hierarchy (v1 controllers, name=systemd, the v2 "unified" one). */
export function cgroupMounts(): string[] {
  return mountPoints()
    .filter((m) => m.startsWith('cgroup ') || m.startsWith('cgroup2 '))
    .map((m) => m.slice(m.indexOf(' ') + 1));
}

function mountsUnder(prefix: string): string[] {
  return mountPoints()
    .map((m) => m.slice(m.indexOf(' ') + 1))
    .filter((p) => p === prefix || p.startsWith(`${prefix}/`));
}

/** Every cgroup directory at or below `relative` in every hierarchy, deepest first. */
function cgroupDirs(relative: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    out.push(dir);
  };
  for (const mp of cgroupMounts()) if (existsSync(join(mp, relative))) walk(join(mp, relative));
  return out;
}

function pidsIn(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
    } catch {
      /* removed meanwhile */
    }
  }
  return [...pids];
}

/** SIGKILLs every process in the cgroup subtree until it is empty (or 10 s passed). */
async function killSubtree(relative: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const pids = pidsIn(cgroupDirs(relative));
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(100);
  }
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await execFileAsync('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

function containerdConfig(o: WorkerOptions, d: (...p: string[]) => string, socket: string): string {
  return `version = 3
root = '${d('containerd', 'root')}'
state = '${d('containerd', 'state')}'
# no /etc/containerd/conf.d drop-ins, no NRI socket in /var/run/nri
imports = []
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '${socket}'
[ttrpc]
  address = '${socket}.ttrpc'

[plugins.'io.containerd.grpc.v1.cri']
  # kubelet proxies exec/attach/port-forward to this stream server
  stream_server_address = '${o.nodeAddress}'
  stream_server_port = '0'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${o.images.pause.ref}'

[plugins.'io.containerd.cri.v1.runtime']
  # network namespaces under the state dir instead of /var/run/netns
  netns_mounts_under_state_dir = true
  # This kernel refuses negative oom_score_adj values even to root (runc: "failed to update
  # /proc/self/oom_score_adj: Permission denied" for the -998 of every pod sandbox): clamp them to
  # containerd's own (0).
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = '${o.runtime.runc}'
    Root = '${d('containerd', 'state', 'runc')}'
    SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['${o.runtime.cniBinDir}']
    conf_dir = '${d('cni', 'net.d')}'

[plugins.'io.containerd.shim.v1.manager']
  # shim sockets default to /run/containerd/s
  socket_dir = '${d('containerd', 's')}'
`;
}

/** Starts containerd and kubelet for one worker; on failure everything started is removed again. */
export async function startRealWorker(o: WorkerOptions): Promise<RealWorker> {
  const id = randomBytes(4).toString('hex');
  const cgroupRoot = `/marina-worker-${id}`;
  const bridge = `mrn${id}`;
  const nodeName = o.nodeAddress;
  const d = (...p: string[]): string => join(o.dir, ...p);
  for (const sub of ['containerd/root', 'containerd/state', 'cni/net.d', 'cni/networks', 'kubelet/pki', 'sysctl', 'logs']) {
    mkdirSync(d(sub), { recursive: true });
  }
  for (const p of HOST_PATHS) mkdirSync(d('host', p.slice(1).replaceAll('/', '-')), { recursive: true });
  const socket = d('containerd.sock');
  const procs: SpawnedProcess[] = [];
  let namespacePid = 0;

  const ctr = async (args: string[]): Promise<string> => {
    const { stdout } = await execFileAsync(o.runtime.ctr, ['--address', socket, '--namespace', 'k8s.io', ...args], { timeout: 60_000 });
    return stdout;
  };
  const logs = (): string => procs.map((p) => `----- ${p.logFile} -----\n${tailFile(p.logFile, 4000)}`).join('\n');

  for (const mp of cgroupMounts()) {
    for (const rel of [cgroupRoot, `${cgroupRoot}/runtime`, `${cgroupRoot}/kubelet`]) {
      mkdirSync(join(mp, rel), { recursive: true });
      // A new v1 cpuset cgroup has no CPUs and no memory nodes, and no process can join it
      // ("echo: I/O error") until both are copied from its parent.
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (existsSync(join(mp, rel, f))) writeFileSync(join(mp, rel, f), readFileSync(join(mp, rel, '..', f), 'utf8'));
      }
    }
  }
  const cgroupDirsOf = (sub: string): string =>
    cgroupMounts()
      .map((mp) => join(mp, cgroupRoot, sub))
      .join(' ');
  const joinCgroups = 'for h in $MARINA_CGROUP_DIRS; do echo $$ > "$h/cgroup.procs"; done';

  /** Runs a binary inside the worker's mount namespace and cgroup `sub` (nsenter and sh exec it: same pid). */
  const spawnInWorker = async (name: string, sub: string, command: string, args: string[], env: NodeJS.ProcessEnv): Promise<SpawnedProcess> => {
    const p = await spawnLogged({
      command: 'nsenter',
      args: [`--mount=/proc/${namespacePid}/ns/mnt`, '--', '/bin/sh', '-c', `${joinCgroups}; exec "$@"`, 'sh', command, ...args],
      logFile: d('logs', `${name}.log`),
      env: { ...env, MARINA_CGROUP_DIRS: cgroupDirsOf(sub) },
    });
    procs.push(p);
    return p;
  };

  let stopped: Promise<Leftovers> | undefined;
  const stop = (): Promise<Leftovers> => {
    stopped ??= (async () => {
      // kubelet first (it would restart what we stop), then the pods, then containerd; what is left
      // (shims, the namespace holder) is killed with the subtree, which ends the mount namespace
      // and with it every mount of the worker and the pods' network namespaces.
      const byName = (n: string): SpawnedProcess | undefined => procs.find((p) => p.logFile === d('logs', `${n}.log`));
      const kubelet = byName('kubelet');
      if (kubelet) await stopProcessGroup(kubelet.pid, { graceMs: 10_000 }).catch(() => undefined);
      await killSubtree(`${cgroupRoot}/kubepods`);
      const containerd = byName('containerd');
      if (containerd) await stopProcessGroup(containerd.pid, { graceMs: 10_000 }).catch(() => undefined);
      await killSubtree(cgroupRoot);
      await Promise.race([Promise.all(procs.map((p) => p.exited)), sleep(10_000)]);
      if (await linkExists(bridge)) await execFileAsync('ip', ['link', 'del', bridge]).catch(() => undefined);
      for (const dir of cgroupDirs(cgroupRoot)) {
        try {
          rmdirSync(dir);
        } catch {
          /* reported below */
        }
      }
      return {
        pids: [...procs.map((p) => p.pid).filter(isProcessAlive), ...pidsIn(cgroupDirs(cgroupRoot))],
        cgroups: cgroupDirs(cgroupRoot),
        interfaces: (await linkExists(bridge)) ? [bridge] : [],
        mounts: mountsUnder(o.dir),
      };
    })();
    return stopped;
  };

  try {
    // ---------------------------------------------------------------- the mount namespace
    const binds = HOST_PATHS.map((p) => `mkdir -p ${p} && mount --bind ${d('host', p.slice(1).replaceAll('/', '-'))} ${p}`);
    for (const [k, v] of Object.entries(readSysctls())) {
      const file = d('sysctl', k.replaceAll('/', '.'));
      writeFileSync(file, `${v}\n`);
      binds.push(`mount --bind ${file} /proc/sys/${k}`);
    }
    const holder = await spawnLogged({
      command: 'unshare',
      args: [
        '--mount',
        '--propagation',
        'private',
        '--',
        '/bin/sh',
        '-c',
        `set -e; ${joinCgroups}; ${binds.join('; ')}; touch ${d('namespace-ready')}; exec sleep 2147483647`,
      ],
      logFile: d('logs', 'namespace.log'),
      env: { ...process.env, MARINA_CGROUP_DIRS: cgroupDirsOf('runtime') },
    });
    procs.push(holder);
    namespacePid = holder.pid;
    for (let i = 0; !existsSync(d('namespace-ready')); i++) {
      if (holder.exitInfo() || i > 100) throw new Error(`the mount namespace was not set up: ${tailFile(holder.logFile, 2000)}`);
      await sleep(50);
    }

    // ---------------------------------------------------------------- containerd
    writeFileSync(d('containerd', 'config.toml'), containerdConfig(o, d, socket));
    writeFileSync(
      d('cni', 'net.d', '10-marina.conflist'),
      `${JSON.stringify(
        {
          cniVersion: '1.0.0',
          name: `marina-${id}`,
          plugins: [
            {
              type: 'bridge',
              bridge,
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: { type: 'host-local', ranges: [[{ subnet: o.podSubnet }]], dataDir: d('cni', 'networks') },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
          ],
        },
        null,
        2,
      )}\n`,
    );
    // containerd starts containerd-shim-runc-v2 from its PATH.
    const containerd = await spawnInWorker('containerd', 'runtime', o.runtime.containerd, ['--config', d('containerd', 'config.toml')], {
      ...process.env,
      PATH: `${o.runtime.pathDirs.join(':')}:${process.env.PATH ?? ''}`,
    });
    for (let i = 0; ; i++) {
      try {
        await ctr(['version']);
        break;
      } catch (err) {
        if (i > 300 || containerd.exitInfo()) throw new Error(`containerd did not start: ${String(err)}`);
        await sleep(100);
      }
    }
    for (const img of Object.values(o.images)) await ctr(['images', 'import', img.archive]);

    // ---------------------------------------------------------------- kubelet credentials
    const ca = o.pki.ca;
    const [client, serving] = await Promise.all([
      issueCertificate(ca, { commonName: `system:node:${nodeName}`, organizations: ['system:nodes'], usage: 'client' }),
      issueCertificate(ca, { commonName: nodeName, ipAddresses: [o.nodeAddress], usage: 'server' }),
    ]);
    writeFileSync(d('kubelet', 'pki', 'kubelet.crt'), serving.certPem);
    writeFileSync(d('kubelet', 'pki', 'kubelet.key'), serving.keyPem, { mode: 0o600 });
    writeFileSync(d('kubelet', 'pki', 'ca.crt'), ca.certPem);
    writeFileSync(
      d('kubelet', 'kubeconfig'),
      buildKubeconfig({
        server: o.apiServerURL,
        caPem: ca.certPem,
        userName: `system:node:${nodeName}`,
        clientCertPem: client.certPem,
        clientKeyPem: client.keyPem,
      }),
      { mode: 0o600 },
    );

    // ---------------------------------------------------------------- kubelet
    const [port, healthzPort] = (await findFreePorts(o.nodeAddress, 2)) as [number, number];
    const config = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: o.nodeAddress,
      port,
      readOnlyPort: 0,
      healthzBindAddress: o.nodeAddress,
      healthzPort,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: d('kubelet', 'pki', 'ca.crt') } },
      authorization: { mode: 'Webhook' },
      tlsCertFile: d('kubelet', 'pki', 'kubelet.crt'),
      tlsPrivateKeyFile: d('kubelet', 'pki', 'kubelet.key'),
      containerRuntimeEndpoint: `unix://${socket}`,
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      // kubelet >= 1.35 refuses to start on a cgroup v1 host unless told otherwise
      failCgroupV1: false,
      clusterDomain: 'cluster.local',
      resolvConf: '/etc/resolv.conf',
      // keep the locally imported images: nothing can be pulled again
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      ...o.kubeletConfig,
    };
    writeFileSync(d('kubelet', 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    // Without iptables on its PATH kubelet does not add its KUBE-IPTABLES-HINT, KUBE-FIREWALL and
    // canary chains to the host's (shared) tables; pods do not need them.
    await spawnInWorker(
      'kubelet',
      'kubelet',
      o.kubelet,
      [`--config=${d('kubelet', 'config.json')}`, `--kubeconfig=${d('kubelet', 'kubeconfig')}`, `--hostname-override=${nodeName}`, '--v=2'],
      { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' },
    );
    const memoryBytes = (): number => {
      const mp = cgroupMounts().find((m) => m.endsWith('/memory'));
      return mp ? Number(readFileSync(join(mp, cgroupRoot, 'memory.usage_in_bytes'), 'utf8')) : Number.NaN;
    };
    return { nodeName, id, cgroupRoot, bridge, containerdSocket: socket, namespacePid, ctr, memoryBytes, logs, stop };
  } catch (err) {
    const text = logs();
    const left = await stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nleft after cleanup: ${JSON.stringify(left)}\n${text}`);
  }
}
