// Taking a real node apart so that nothing is left: its processes (everything in its cgroup
// subtree: containerd, shims, kubelet, kube-proxy, pods, the namespace holder), its cgroups, its
// network (namespace mode: the veth pair and everything inside die with the namespace; host mode:
// the pod bridge, Marina's routes and nftables tables, forwarding restored), its mounts (all made
// in its private mount namespace, gone with its last process) and its socket directory.
//
// The agent sweeps when it stops; the local provider sweeps again after the agent is gone (it may
// have been killed mid-way). A sweep works from the state file alone and may run any number of times.
import { existsSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { cgroupDirs, killSubtree, mountsUnder, pidsIn, removeCgroups } from './cgroups.js';
import { linkExists, run } from './exec.js';
import { NAT_TABLE, POD_BRIDGE, ROUTE_PROTOCOL, restoreHostForwarding } from './network.js';

export interface NodeState {
  cgroupRoot: string;
  runDir: string;
  mode: 'namespace' | 'host';
  /** namespace mode: the host end of the veth pair. */
  hostVeth?: string;
  /** host mode: net.ipv4.ip_forward before the node turned it on. */
  ipForwardBefore?: string;
}

/** What a sweep found still there afterwards (every list empty when all went well). */
export interface Leftovers {
  pids: number[];
  cgroups: string[];
  interfaces: string[];
  mounts: string[];
}

const STATE_FILE = 'node-state.json';

export function writeNodeState(dir: string, state: NodeState): void {
  writeFileSync(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

export function readNodeState(dir: string): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/** Tables kube-proxy creates in nftables mode (host mode: removed on leave). */
const KUBE_PROXY_TABLES = [
  ['ip', 'kube-proxy'],
  ['ip6', 'kube-proxy'],
];

export async function sweepNode(state: NodeState, dir?: string): Promise<Leftovers> {
  // Pods first (kubelet would restart them), then the rest of the subtree.
  await killSubtree(`${state.cgroupRoot}/kubepods`);
  const pids = await killSubtree(state.cgroupRoot);
  const interfaces: string[] = [];
  if (state.mode === 'namespace') {
    // Gone with the namespace; a veth whose namespace end never moved stays on the host.
    if (state.hostVeth && (await linkExists(state.hostVeth))) await run('ip', ['link', 'del', state.hostVeth]).catch(() => undefined);
    if (state.hostVeth && (await linkExists(state.hostVeth))) interfaces.push(state.hostVeth);
  } else {
    if (await linkExists(POD_BRIDGE)) await run('ip', ['link', 'del', POD_BRIDGE]).catch(() => undefined);
    if (await linkExists(POD_BRIDGE)) interfaces.push(POD_BRIDGE);
    const routes = await run('ip', ['-4', 'route', 'show', 'proto', ROUTE_PROTOCOL]).catch(() => '');
    for (const line of routes.split('\n').filter(Boolean)) {
      await run('ip', ['route', 'del', line.split(' ')[0]!, 'proto', ROUTE_PROTOCOL]).catch(() => undefined);
    }
    for (const [family, table] of [['ip', NAT_TABLE], ...KUBE_PROXY_TABLES] as [string, string][]) {
      await run('nft', ['delete', 'table', family, table]).catch(() => undefined);
    }
    if (state.ipForwardBefore !== undefined) restoreHostForwarding(state.ipForwardBefore);
  }
  const cgroups = removeCgroups(state.cgroupRoot);
  rmSync(state.runDir, { recursive: true, force: true });
  // The shared parent of socket directories (/run/marina) goes with its last node.
  if (basename(dirname(state.runDir)) === 'marina') {
    try {
      rmdirSync(dirname(state.runDir));
    } catch {
      /* other nodes still use it */
    }
  }
  return {
    pids: [...new Set([...pids, ...pidsIn(cgroupDirs(state.cgroupRoot))])],
    cgroups,
    interfaces,
    mounts: [...mountsUnder(state.runDir), ...(dir ? mountsUnder(dir) : [])],
  };
}

/** Sweeps the node whose state file is in `dir`, if there is one. */
export async function sweepNodeDir(dir: string): Promise<Leftovers | undefined> {
  const state = existsSync(join(dir, STATE_FILE)) ? readNodeState(dir) : undefined;
  return state ? sweepNode(state, dir) : undefined;
}
