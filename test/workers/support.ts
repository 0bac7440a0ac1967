// Shared by the real-worker and import end-to-end tests: what they need installed, the server's
// environment, and what a real node leaves on the host (to prove it leaves nothing).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cgroupMounts, mountPoints, pidsIn, cgroupDirs } from '../../src/agent/node-runtime/cgroups.js';
import { KUBELET_SYSCTLS } from '../../src/agent/node-runtime/runtime.js';
import { sweepNode } from '../../src/agent/node-runtime/sweep.js';
import { marinaCacheBase } from '../../src/toolchain/components.js';
import { defaultVersion } from '../../src/toolchain/versions.js';
import { ensureImages, ensureNodeRuntime, ensureToolchain } from '../toolchain/ensure.js';

const execFileAsync = promisify(execFile);

/** Why real nodes cannot run here (false when they can). */
export function realNodeSkip(): string | false {
  if (process.platform !== 'linux') return 'real workers need Linux';
  if (process.getuid?.() !== 0) return 'real workers need root (cgroups, namespaces, network interfaces)';
  if (cgroupMounts().length === 0) return 'no cgroup hierarchy is mounted';
  return false;
}

/** Toolchain, node runtime and images, built by the project's scripts when missing (minutes). */
export async function ensureRealNodeArtifacts(version = defaultVersion()) {
  const [toolchain] = await Promise.all([ensureToolchain(version), ensureNodeRuntime(), ensureImages()]);
  return toolchain;
}

/** The server finds the node runtime and images in the real cache whatever HOME it runs with. */
export function nodeCacheEnv(): NodeJS.ProcessEnv {
  return { MARINA_CACHE_DIR: marinaCacheBase() };
}

/** What a real node's agent was configured with (from its agent.json). */
export interface NodeFootprint {
  machine: string;
  dir: string;
  cgroupRoot: string;
  runDir: string;
  hostVeth?: string;
  bridge?: string;
}

export function nodeFootprints(dataDir: string): NodeFootprint[] {
  const out: NodeFootprint[] = [];
  const root = join(dataDir, 'local', 'machines');
  const walk = (dir: string, depth: number): void => {
    if (!existsSync(dir)) return;
    if (depth === 0) {
      const file = join(dir, 'agent.json');
      if (!existsSync(file)) return;
      const cfg = JSON.parse(readFileSync(file, 'utf8')) as { machine: string; node?: { dir: string; cgroupRoot: string; runDir: string; network: { hostVeth?: string; bridge?: string } } };
      if (cfg.node) {
        out.push({
          machine: cfg.machine,
          dir: cfg.node.dir,
          cgroupRoot: cfg.node.cgroupRoot,
          runDir: cfg.node.runDir,
          ...(cfg.node.network.hostVeth ? { hostVeth: cfg.node.network.hostVeth } : {}),
          ...(cfg.node.network.bridge ? { bridge: cfg.node.network.bridge } : {}),
        });
      }
      return;
    }
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name), depth - 1);
  };
  walk(root, 3);
  return out;
}

export async function linkExists(name: string, netns?: string): Promise<boolean> {
  try {
    await execFileAsync(netns ? 'nsenter' : 'ip', netns ? [`--net=/run/netns/${netns}`, 'ip', 'link', 'show', 'dev', name] : ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

/** Everything of these nodes still on the host (every list empty when nothing is left). */
export async function leftovers(nodes: NodeFootprint[]): Promise<{ processes: number[]; cgroups: string[]; interfaces: string[]; mounts: string[]; dirs: string[] }> {
  const cgroups = nodes.flatMap((n) => cgroupDirs(n.cgroupRoot));
  const interfaces: string[] = [];
  for (const n of nodes) {
    for (const link of [n.hostVeth, n.bridge]) if (link && (await linkExists(link))) interfaces.push(link);
  }
  const mounts = mountPoints()
    .map((m) => m.path)
    .filter((p) => nodes.some((n) => p.startsWith(n.dir) || p.startsWith(n.runDir)));
  return {
    processes: pidsIn(cgroups),
    cgroups,
    interfaces: [...new Set(interfaces)],
    mounts,
    dirs: nodes.flatMap((n) => [n.dir, n.runDir]).filter((d) => existsSync(d)),
  };
}

export function readSysctls(): Record<string, string> {
  return Object.fromEntries(KUBELET_SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()]));
}

/** Last resort after a failed test: take apart whatever of these nodes is still there (no files needed). */
export async function sweepLeftoverNodes(nodes: NodeFootprint[]): Promise<void> {
  for (const n of nodes) {
    await sweepNode({ cgroupRoot: n.cgroupRoot, runDir: n.runDir, mode: n.hostVeth ? 'namespace' : 'host', ...(n.hostVeth ? { hostVeth: n.hostVeth } : {}) }).catch(() => undefined);
  }
  for (const n of nodes) {
    for (const link of [n.hostVeth, n.bridge]) if (link && (await linkExists(link))) await execFileAsync('ip', ['link', 'del', link]).catch(() => undefined);
  }
}

/** A /30 in 10.200.0.0/13 that no route of the host uses (for a test's own network namespace). */
export async function freeSubnet30(): Promise<{ host: string; peer: string }> {
  const { stdout } = await execFileAsync('ip', ['-4', 'route', 'show', 'table', 'all']);
  for (;;) {
    const a = 200 + Math.floor(Math.random() * 8);
    const b = Math.floor(Math.random() * 256);
    const c = Math.floor(Math.random() * 64) * 4;
    if (stdout.includes(`10.${a}.${b}.`)) continue;
    return { host: `10.${a}.${b}.${c + 1}`, peer: `10.${a}.${b}.${c + 2}` };
  }
}
