// The machine agent's configuration file (`agent.json`), written by Marina's local provider, and
// its validation. Errors name every bad field, e.g. `processes[1].readyUrl: must be an https:// URL`.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { parseCidr } from '../api/cidr.js';
import type { Taint } from '../kube/objects.js';
import { nodeConfigProblems, type AgentNodeConfig } from './node-runtime/config.js';

export interface AgentProcessTLS {
  /** PEM file paths used to probe `readyUrl` (CA of the server; client cert/key if it wants one). */
  ca: string;
  cert: string;
  key: string;
}

export interface AgentProcessConfig {
  /** Unique per agent; names the log file `<dataDir>/logs/<name>.log`. */
  name: string;
  /** Absolute path of the executable. */
  command: string;
  args: string[];
  /** Added to the agent's environment. */
  env?: Record<string, string>;
  /** HTTPS (or HTTP) URL answering 200 once the process is ready; the next process waits for it. */
  readyUrl?: string;
  tls?: AgentProcessTLS;
}

export interface AgentKubeletConfig {
  /** Credentials of the virtual kubelet (normally CN=system:node:<nodeName>, O=system:nodes). */
  kubeconfigPath: string;
  /**
   * Optional credentials used only to set labels that NodeRestriction forbids a kubelet to set on
   * itself (`node-role.kubernetes.io/*` and other unknown kubernetes.io labels), as kubeadm does
   * with admin credentials after the kubelet registered. Without it those labels are reported as
   * pending in /healthz instead.
   */
  labelerKubeconfigPath?: string;
  /** Node labels (pool labels etc.). `kubernetes.io/hostname`, os, arch and role labels are added. */
  labels?: Record<string, string>;
  /** Taints the Node registers with. */
  taints?: Taint[];
  capacity: { cpu: string; memory: string; pods: string; ephemeralStorage?: string };
  /** Reported as status.nodeInfo.kubeletVersion, e.g. v1.36.3. */
  kubeletVersion: string;
  /** spec.podCIDR at registration (else the one the node-ipam controller assigns, else a private range). */
  podCIDR?: string;
  /** The nameserver(s) pods get (the cluster DNS Service, by convention the 10th address of the service CIDR) and the DNS domain. */
  clusterDNS?: string[];
  clusterDomain?: string;
  /** Heartbeat tuning (defaults: lease 40 s renewed every 10 s, node status every 60 s). */
  leaseDurationSeconds?: number;
  renewIntervalSeconds?: number;
  statusIntervalSeconds?: number;
}

export interface AgentConfig {
  /** Marina's Machine name. */
  machine: string;
  /** Kubernetes Node name (DNS-1123 subdomain). */
  nodeName: string;
  /** The machine's own loopback address, e.g. 127.0.10.3. */
  address: string;
  /** Absolute directory for logs, pid file and kubelet state. */
  dataDir: string;
  /** The agent's HTTP port on `address`. */
  agentPort: number;
  /** Pool roles of the machine (etcd, controlplane, worker); reported in /facts and as node-role labels. */
  roles?: string[];
  /** Started in order; each waits for the previous one's readyUrl. */
  processes: AgentProcessConfig[];
  kubelet?: AgentKubeletConfig;
  /** Instead of `kubelet`: a real node (containerd, kubelet, kube-proxy); see node-runtime/. */
  node?: AgentNodeConfig;
  /** SIGTERM→SIGKILL grace for children at shutdown (default 10 s). */
  stopGraceSeconds?: number;
  /**
   * Ports also served on 127.0.0.1, relayed to the calling kube-apiserver's machine (see
   * loopback-relay.ts): kube-controller-manager's and kube-scheduler's, which ComponentStatus probes there.
   */
  loopbackRelayPorts?: number[];
  /**
   * Day-2 actions on this machine (stop/start services, restore etcd) over the agent's HTTP
   * endpoint, for callers that present this bearer token. Without it the actions are off.
   */
  control?: AgentControlConfig;
}

export interface AgentControlConfig {
  /** Bearer token the control endpoints require (at least 32 characters). */
  token: string;
  /** etcd's data directory on this machine (machines with an etcd member). */
  etcdDataDir?: string;
  /** Absolute path of etcdutl (restores a snapshot into a data directory). */
  etcdutl?: string;
}

export class AgentConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[], source?: string) {
    super(`invalid agent config${source ? ` ${source}` : ''}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'AgentConfigError';
    this.problems = problems;
  }
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** Kubernetes quantity (e.g. 2, 500m, 4Gi, 1e3). */
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$/;
const ALLOWED_TOP = new Set(['machine', 'nodeName', 'address', 'dataDir', 'agentPort', 'roles', 'processes', 'kubelet', 'node', 'stopGraceSeconds', 'loopbackRelayPorts', 'control']);
const ALLOWED_PROCESS = new Set(['name', 'command', 'args', 'env', 'readyUrl', 'tls']);
const ALLOWED_KUBELET = new Set([
  'kubeconfigPath',
  'labelerKubeconfigPath',
  'labels',
  'taints',
  'capacity',
  'kubeletVersion',
  'podCIDR',
  'clusterDNS',
  'clusterDomain',
  'leaseDurationSeconds',
  'renewIntervalSeconds',
  'statusIntervalSeconds',
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A Kubernetes label key: optional DNS-subdomain prefix + "/" + name (≤ 63 chars). */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

/** Checks a parsed agent.json; returns it typed or throws AgentConfigError listing every problem. */
export function validateAgentConfig(raw: unknown, source?: string): AgentConfig {
  const p: string[] = [];
  if (!isObject(raw)) throw new AgentConfigError(['<root>: must be a JSON object'], source);
  const unknownKeys = (obj: Record<string, unknown>, allowed: Set<string>, at: string) => {
    for (const k of Object.keys(obj)) if (!allowed.has(k)) p.push(`${at}${k}: unknown field`);
  };
  const str = (obj: Record<string, unknown>, key: string, at: string, required = true): string | undefined => {
    const v = obj[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v === '') {
      p.push(`${at}${key}: must be a non-empty string`);
      return undefined;
    }
    return v;
  };
  const absPath = (obj: Record<string, unknown>, key: string, at: string, required = true) => {
    const v = str(obj, key, at, required);
    if (v !== undefined && !isAbsolute(v)) p.push(`${at}${key}: must be an absolute path (got ${JSON.stringify(v)})`);
  };
  const int = (obj: Record<string, unknown>, key: string, at: string, min: number, max: number, required = true) => {
    const v = obj[key];
    if (v === undefined && !required) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) p.push(`${at}${key}: must be an integer from ${min} to ${max}`);
  };
  const labelsMap = (v: unknown, at: string) => {
    if (v === undefined) return;
    if (!isObject(v)) return void p.push(`${at}: must be an object of label key → value`);
    for (const [k, val] of Object.entries(v)) {
      if (!isLabelKey(k)) p.push(`${at}[${JSON.stringify(k)}]: invalid label key`);
      if (typeof val !== 'string' || val.length > 63 || !LABEL_VALUE.test(val)) p.push(`${at}[${JSON.stringify(k)}]: invalid label value ${JSON.stringify(val)}`);
    }
  };

  unknownKeys(raw, ALLOWED_TOP, '');
  const machine = str(raw, 'machine', '');
  if (machine !== undefined && (machine.length > 63 || !DNS1123_LABEL.test(machine))) p.push('machine: must be a DNS-1123 label');
  const nodeName = str(raw, 'nodeName', '');
  if (nodeName !== undefined && (nodeName.length > 253 || !DNS1123_SUBDOMAIN.test(nodeName))) p.push('nodeName: must be a DNS-1123 subdomain (lower-case)');
  const address = str(raw, 'address', '');
  if (address !== undefined && isIP(address) === 0) p.push(`address: must be an IP address (got ${JSON.stringify(address)})`);
  absPath(raw, 'dataDir', '');
  int(raw, 'agentPort', '', 1, 65535);
  int(raw, 'stopGraceSeconds', '', 0, 3600, false);
  if (raw.roles !== undefined) {
    if (!Array.isArray(raw.roles) || raw.roles.some((r) => typeof r !== 'string' || !DNS1123_LABEL.test(r))) {
      p.push('roles: must be an array of role names like "worker"');
    }
  }
  if (raw.loopbackRelayPorts !== undefined) {
    const ports = raw.loopbackRelayPorts;
    if (!Array.isArray(ports) || ports.some((n) => !Number.isInteger(n) || n < 1 || n > 65535) || new Set(ports).size !== ports.length) {
      p.push('loopbackRelayPorts: must be an array of distinct port numbers (1-65535)');
    }
  }

  if (!Array.isArray(raw.processes)) {
    p.push('processes: must be an array (may be empty)');
  } else {
    const names = new Set<string>();
    raw.processes.forEach((proc, i) => {
      const at = `processes[${i}].`;
      if (!isObject(proc)) return void p.push(`processes[${i}]: must be an object`);
      unknownKeys(proc, ALLOWED_PROCESS, at);
      const name = str(proc, 'name', at);
      if (name !== undefined) {
        if (!DNS1123_LABEL.test(name)) p.push(`${at}name: must be a DNS-1123 label (it names a log file)`);
        if (name === 'agent') p.push(`${at}name: "agent" is reserved for the agent itself`);
        if (names.has(name)) p.push(`${at}name: duplicate process name ${JSON.stringify(name)}`);
        names.add(name);
      }
      absPath(proc, 'command', at);
      if (!Array.isArray(proc.args) || proc.args.some((a) => typeof a !== 'string')) p.push(`${at}args: must be an array of strings`);
      if (proc.env !== undefined && (!isObject(proc.env) || Object.values(proc.env).some((v) => typeof v !== 'string'))) {
        p.push(`${at}env: must be an object of string values`);
      }
      const url = str(proc, 'readyUrl', at, false);
      if (url !== undefined && !/^https?:\/\/[^/]+/.test(url)) p.push(`${at}readyUrl: must be an http:// or https:// URL`);
      if (proc.tls !== undefined) {
        if (!isObject(proc.tls)) p.push(`${at}tls: must be an object {ca, cert, key}`);
        else {
          unknownKeys(proc.tls, new Set(['ca', 'cert', 'key']), `${at}tls.`);
          for (const k of ['ca', 'cert', 'key']) absPath(proc.tls, k, `${at}tls.`);
        }
      }
    });
  }

  if (raw.kubelet !== undefined) {
    const k = raw.kubelet;
    const at = 'kubelet.';
    if (!isObject(k)) p.push('kubelet: must be an object');
    else {
      unknownKeys(k, ALLOWED_KUBELET, at);
      absPath(k, 'kubeconfigPath', at);
      absPath(k, 'labelerKubeconfigPath', at, false);
      labelsMap(k.labels, 'kubelet.labels');
      if (k.taints !== undefined) {
        if (!Array.isArray(k.taints)) p.push('kubelet.taints: must be an array');
        else
          k.taints.forEach((t, i) => {
            const ta = `kubelet.taints[${i}].`;
            if (!isObject(t)) return void p.push(`kubelet.taints[${i}]: must be an object {key, value?, effect}`);
            unknownKeys(t, new Set(['key', 'value', 'effect']), ta);
            if (typeof t.key !== 'string' || !isLabelKey(t.key)) p.push(`${ta}key: must be a valid label-style key`);
            if (t.value !== undefined && (typeof t.value !== 'string' || t.value.length > 63 || !LABEL_VALUE.test(t.value))) p.push(`${ta}value: invalid`);
            if (!['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(t.effect as string)) {
              p.push(`${ta}effect: must be NoSchedule, PreferNoSchedule or NoExecute`);
            }
          });
      }
      if (!isObject(k.capacity)) p.push('kubelet.capacity: must be an object {cpu, memory, pods}');
      else {
        unknownKeys(k.capacity, new Set(['cpu', 'memory', 'pods', 'ephemeralStorage']), 'kubelet.capacity.');
        for (const key of ['cpu', 'memory', 'pods', 'ephemeralStorage']) {
          const v = k.capacity[key];
          if (v === undefined && key === 'ephemeralStorage') continue;
          if (typeof v !== 'string' || !QUANTITY.test(v)) p.push(`kubelet.capacity.${key}: must be a Kubernetes quantity string like "4", "500m" or "8Gi"`);
        }
        if (typeof k.capacity.pods === 'string' && !/^[0-9]+$/.test(k.capacity.pods)) p.push('kubelet.capacity.pods: must be a whole number');
      }
      const v = str(k, 'kubeletVersion', at);
      if (v !== undefined && !/^v\d+\.\d+\.\d+/.test(v)) p.push('kubelet.kubeletVersion: must look like v1.36.3');
      const cidr = str(k, 'podCIDR', at, false);
      const parsed = cidr === undefined ? undefined : parseCidr(cidr);
      if (typeof parsed === 'string') p.push(`kubelet.podCIDR: ${parsed}`);
      if (k.clusterDNS !== undefined && (!Array.isArray(k.clusterDNS) || k.clusterDNS.some((ip) => typeof ip !== 'string' || isIP(ip) === 0))) {
        p.push('kubelet.clusterDNS: must be a list of IP addresses');
      }
      if (k.clusterDomain !== undefined && (typeof k.clusterDomain !== 'string' || !DNS1123_SUBDOMAIN.test(k.clusterDomain))) p.push('kubelet.clusterDomain: must be a DNS domain');
      int(k, 'leaseDurationSeconds', at, 10, 3600, false);
      int(k, 'renewIntervalSeconds', at, 1, 600, false);
      int(k, 'statusIntervalSeconds', at, 1, 3600, false);
    }
  }

  if (raw.node !== undefined) {
    p.push(...nodeConfigProblems(raw.node));
    if (raw.kubelet !== undefined) p.push('node: a machine runs either the virtual kubelet (kubelet) or a real node (node), not both');
  }

  if (raw.control !== undefined) {
    const c = raw.control;
    if (!isObject(c)) p.push('control: must be an object {token, etcdDataDir?, etcdutl?}');
    else {
      unknownKeys(c, new Set(['token', 'etcdDataDir', 'etcdutl']), 'control.');
      const token = str(c, 'token', 'control.');
      if (token !== undefined && token.length < 32) p.push('control.token: must be at least 32 characters');
      absPath(c, 'etcdDataDir', 'control.', false);
      absPath(c, 'etcdutl', 'control.', false);
    }
  }

  if (p.length) throw new AgentConfigError(p, source);
  return raw as unknown as AgentConfig;
}

/** Reads and validates an agent.json. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new AgentConfigError([`cannot read: ${(err as Error).message}`], path);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AgentConfigError([`not valid JSON: ${(err as Error).message}`], path);
  }
  return validateAgentConfig(raw, path);
}
