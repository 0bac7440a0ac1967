// The node network of a local cluster with real workers: a host bridge with a private /24, the
// cluster endpoint's balancer also listening on the bridge's gateway address, and one address per
// real worker (each worker is a network namespace of its own with a veth on this bridge). Workers
// reach each other (and each other's pods, via routes) over the bridge, which is plain layer-2
// switching: the host forwards nothing, so its net.ipv4.ip_forward does not matter. The host itself
// reaches every worker through its address on the bridge (the apiserver → kubelet for logs, exec,
// port-forward).
//
// State lives in the endpoint's directory (node-network.json), next to the balancer's.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { formatIPv4, parseIPv4 } from '../../api/cidr.js';

const execFileAsync = promisify(execFile);

export interface NodeNetworkRecord {
  bridge: string;
  /** a.b.c.0/24 */
  subnet: string;
  /** a.b.c.1: the host's address on the bridge; the balancer listens here too. */
  gateway: string;
  /** Machine uid → node address. */
  nodes: Record<string, string>;
  /** Last host part handed out (addresses are not reused at once). */
  last: number;
}

const NODE_NETWORK_FILE = 'node-network.json';
export const PREFIX_LENGTH = 24;

/** Default block node networks are allocated from (a /24 each); MARINA_NODE_NETWORK_BASE overrides. */
const DEFAULT_NODE_NETWORK_BLOCK = '172.30.0.0/15';

const shortHash = (s: string, n = 8): string => createHash('sha256').update(s).digest('hex').slice(0, n);

function bridgeName(clusterUid: string): string {
  return `mrn${shortHash(clusterUid)}`;
}

export function hostVethName(machineUid: string): string {
  return `mv${shortHash(machineUid)}`;
}

async function ip(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('ip', args, { timeout: 30_000 });
  return stdout;
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await ip(['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

function readRecord(dir: string): NodeNetworkRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, NODE_NETWORK_FILE), 'utf8')) as NodeNetworkRecord;
  } catch {
    return undefined;
  }
}

function writeRecord(dir: string, r: NodeNetworkRecord): void {
  const path = join(dir, NODE_NETWORK_FILE);
  writeFileSync(`${path}.tmp`, JSON.stringify(r, null, 2), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** The /24s the host routes already (its own networks, other clusters' bridges, other tools'). */
async function routedPrefixes(): Promise<Set<string>> {
  const out = await ip(['-4', 'route', 'show', 'table', 'all']);
  const taken = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /^(?:local |broadcast )?(\d+\.\d+\.\d+)\.\d+/.exec(line);
    if (m) taken.add(m[1]!);
  }
  return taken;
}

export class NodeNetworks {
  constructor(
    /** Directory holding every endpoint's directory (`<root>/endpoints`). */
    private readonly endpointsRoot: string,
    private readonly block = process.env.MARINA_NODE_NETWORK_BASE?.trim() || DEFAULT_NODE_NETWORK_BLOCK,
  ) {}

  get(endpointDir: string): NodeNetworkRecord | undefined {
    return readRecord(endpointDir);
  }

  /**
   * The cluster's node network: allocated on first use, its bridge (re)created when missing (after
   * a host reboot). Called serialized by the provider.
   */
  async ensure(endpointDir: string, clusterUid: string): Promise<NodeNetworkRecord> {
    let r = readRecord(endpointDir);
    if (!r) {
      const subnet = await this.freeSubnet();
      const prefix = subnet.slice(0, subnet.lastIndexOf('.'));
      r = { bridge: bridgeName(clusterUid), subnet, gateway: `${prefix}.1`, nodes: {}, last: 1 };
      writeRecord(endpointDir, r);
    }
    if (!(await linkExists(r.bridge))) {
      await ip(['link', 'add', r.bridge, 'type', 'bridge']);
      await ip(['addr', 'add', `${r.gateway}/${PREFIX_LENGTH}`, 'dev', r.bridge]);
      await ip(['link', 'set', r.bridge, 'up']);
    }
    return r;
  }

  /** The node address of a machine (the same one when asked again). */
  assign(endpointDir: string, machineUid: string): string {
    const r = readRecord(endpointDir);
    if (!r) throw new Error(`no node network in ${endpointDir}`);
    const have = r.nodes[machineUid];
    if (have) return have;
    const base = parseIPv4(r.subnet.split('/')[0]!)!;
    const used = new Set(Object.values(r.nodes));
    for (let k = 1; k <= 253; k++) {
      const host = ((r.last - 1 + k) % 253) + 2; // 2..254
      const address = formatIPv4(base + host);
      if (used.has(address)) continue;
      r.nodes[machineUid] = address;
      r.last = host;
      writeRecord(endpointDir, r);
      return address;
    }
    throw new Error(`node network ${r.subnet} is full`);
  }

  release(endpointDir: string, machineUid: string): void {
    const r = readRecord(endpointDir);
    if (!r || !(machineUid in r.nodes)) return;
    delete r.nodes[machineUid];
    writeRecord(endpointDir, r);
  }

  /** Deletes the bridge (with the endpoint). */
  async remove(endpointDir: string): Promise<void> {
    const r = readRecord(endpointDir);
    if (r && (await linkExists(r.bridge))) await ip(['link', 'del', r.bridge]);
  }

  /** A /24 of the block that no route of the host and no other cluster uses, picked at random. */
  private async freeSubnet(): Promise<string> {
    const [net, bits] = this.block.split('/');
    const start = parseIPv4(net ?? '');
    const len = Number(bits);
    if (start === undefined || !Number.isInteger(len) || len < 8 || len > 24) throw new Error(`MARINA_NODE_NETWORK_BASE must be an IPv4 block like 172.30.0.0/15, got ${this.block}`);
    const taken = await routedPrefixes();
    for (const e of existsSync(this.endpointsRoot) ? readdirSync(this.endpointsRoot) : []) {
      for (const c of existsSync(join(this.endpointsRoot, e)) ? readdirSync(join(this.endpointsRoot, e)) : []) {
        const r = readRecord(join(this.endpointsRoot, e, c));
        if (r) taken.add(r.subnet.slice(0, r.subnet.lastIndexOf('.')));
      }
    }
    const count = 2 ** (24 - len);
    const offset = Math.floor(Math.random() * count);
    for (let i = 0; i < count; i++) {
      const candidate = formatIPv4(start + ((offset + i) % count) * 256);
      const prefix = candidate.slice(0, candidate.lastIndexOf('.'));
      if (!taken.has(prefix)) return `${candidate}/${PREFIX_LENGTH}`;
    }
    throw new Error(`no free /24 left in ${this.block} for a node network`);
  }
}
