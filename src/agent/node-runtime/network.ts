// The network of a real node. In `namespace` mode the node is a machine of its own on this host: a
// network namespace with one veth pair to a host bridge (the cluster's node network), its node IP
// on eth0, forwarding enabled inside the namespace only. In `host` mode (an imported server) it
// uses the network it runs in. Either way pods sit on a bridge `cni0` (bridge + host-local CNI)
// with the Node's pod CIDR; pods of other nodes are reached through routes via their node IPs
// (kept by routes.ts, "host-gw" style), and traffic leaving the cluster's pod CIDR is masqueraded
// to the node IP so that answers find their way back.
import { readFileSync, writeFileSync } from 'node:fs';
import { CommandError, inNetns, linkExists, run } from './exec.js';
import type { NodeNetwork } from './config.js';

/** Routes Marina adds to other nodes' pod CIDRs carry this protocol number, so it finds its own. */
export const ROUTE_PROTOCOL = '77';
/** The pods' bridge in the node's network. */
export const POD_BRIDGE = 'cni0';
/** nftables table of the node's masquerade rule. */
export const NAT_TABLE = 'marina-node';

/** Names of the veth pair's namespace end before it is renamed eth0. */
function peerName(hostVeth: string): string {
  return `${hostVeth.slice(0, 12)}-p`;
}

/** namespace mode: the veth pair to the host bridge, the node IP, the default route, forwarding. */
export async function setupNamespaceNetwork(pid: number, net: Extract<NodeNetwork, { mode: 'namespace' }>): Promise<void> {
  if (!(await linkExists(net.bridge))) throw new Error(`the node network bridge ${net.bridge} does not exist on this host`);
  const peer = peerName(net.hostVeth);
  if (await linkExists(net.hostVeth)) await run('ip', ['link', 'del', net.hostVeth]);
  await run('ip', ['link', 'add', net.hostVeth, 'type', 'veth', 'peer', 'name', peer]);
  await run('ip', ['link', 'set', peer, 'netns', String(pid)]);
  await run('ip', ['link', 'set', net.hostVeth, 'master', net.bridge]);
  await run('ip', ['link', 'set', net.hostVeth, 'up']);
  const ns = (args: string[]) => inNetns(pid, 'ip', args);
  await ns(['link', 'set', 'lo', 'up']);
  await ns(['link', 'set', peer, 'name', 'eth0']);
  await ns(['addr', 'add', `${net.address}/${net.prefixLength}`, 'dev', 'eth0']);
  await ns(['link', 'set', 'eth0', 'up']);
  await ns(['route', 'add', 'default', 'via', net.gateway]);
  // Per network namespace: this is the node's own setting, not the host's.
  await inNetns(pid, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/**
 * host mode: forwarding on, as every Kubernetes node needs (kubeadm's preflight demands it).
 * Returns the value before; leaving the cluster restores it.
 */
export function enableHostForwarding(): string {
  const before = readFileSync(IP_FORWARD, 'utf8').trim();
  if (before !== '1') writeFileSync(IP_FORWARD, '1\n');
  return before;
}

export function restoreHostForwarding(before: string): void {
  if (readFileSync(IP_FORWARD, 'utf8').trim() !== before) writeFileSync(IP_FORWARD, `${before}\n`);
}

/** The bridge CNI configuration for the Node's pod CIDR. */
export function cniConfig(podCIDR: string, dataDir: string): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'marina',
      plugins: [
        {
          type: 'bridge',
          bridge: POD_BRIDGE,
          isGateway: true,
          // masquerading is the node's own rule (below): it must spare the other nodes' pods
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: podCIDR }]], routes: [{ dst: '0.0.0.0/0' }], dataDir },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
}

export interface NatRules {
  /**
   * namespace mode: connections to 127.0.0.1:<localPort> inside the node go to the API endpoint at
   * target (kubelet and kube-proxy talk to https://127.0.0.1:<localPort>, a name every apiserver
   * certificate carries; kubelet drops tls-server-name when it writes its own kubeconfig).
   */
  apiRedirect?: { localPort: number; host: string; port: number };
  /** Masquerade pod traffic from podCIDR that leaves clusterCIDR (to the API endpoint, the host). */
  masquerade?: { podCIDR: string; clusterCIDR: string };
}

/** The node's nftables table for `rules` (one table, replaced as a whole). */
export function natRuleset(rules: NatRules): string {
  const output = rules.apiRedirect
    ? `  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.1 tcp dport ${rules.apiRedirect.localPort} dnat to ${rules.apiRedirect.host}:${rules.apiRedirect.port}
  }
`
    : '';
  const post = [
    rules.apiRedirect ? '    ip saddr 127.0.0.0/8 oifname "eth0" masquerade' : '',
    rules.masquerade ? `    ip saddr ${rules.masquerade.podCIDR} ip daddr != ${rules.masquerade.clusterCIDR} masquerade` : '',
  ].filter(Boolean);
  return `table ip ${NAT_TABLE} {
${output}  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
${post.join('\n')}
  }
}
`;
}

/** Replaces the node's nftables table (never duplicates it). */
export async function applyNat(pid: number | undefined, rules: NatRules): Promise<void> {
  if (rules.apiRedirect) {
    // 127.0.0.1 may leave the node only with route_localnet (a per-namespace setting here).
    await inNetns(pid, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet']);
  }
  await inNetns(pid, 'nft', ['delete', 'table', 'ip', NAT_TABLE]).catch(() => undefined);
  await inNetns(pid, 'nft', ['-f', '-'], { input: natRuleset(rules) });
}

export interface PodRoute {
  /** Another Node's pod CIDR. */
  cidr: string;
  /** That Node's InternalIP. */
  via: string;
}

/** Makes the node's routes to other nodes' pod CIDRs exactly `routes` (only routes Marina added are touched). */
export async function syncPodRoutes(pid: number | undefined, routes: PodRoute[]): Promise<void> {
  const current = JSON.parse((await inNetns(pid, 'ip', ['-j', '-4', 'route', 'show', 'proto', ROUTE_PROTOCOL])) || '[]') as { dst: string; gateway?: string }[];
  const want = new Map(routes.map((r) => [r.cidr, r.via]));
  for (const r of current) {
    if (want.get(r.dst) !== r.gateway) await inNetns(pid, 'ip', ['route', 'del', r.dst, 'proto', ROUTE_PROTOCOL]).catch(() => undefined);
  }
  for (const r of routes) {
    if (current.some((c) => c.dst === r.cidr && c.gateway === r.via)) continue;
    try {
      await inNetns(pid, 'ip', ['route', 'replace', r.cidr, 'via', r.via, 'proto', ROUTE_PROTOCOL]);
    } catch (err) {
      // A node on another subnet (not adjacent): no direct route possible; reported, not fatal.
      if (!(err instanceof CommandError)) throw err;
    }
  }
}

/** Whether `ip` is on a subnet the node is directly connected to (so a route via it works). */
export async function isAdjacent(pid: number | undefined, ip: string): Promise<boolean> {
  try {
    const out = JSON.parse(await inNetns(pid, 'ip', ['-j', 'route', 'get', ip])) as { gateway?: string; dev?: string }[];
    return out.length > 0 && !out[0]!.gateway && out[0]!.dev !== 'lo';
  } catch {
    return false;
  }
}
