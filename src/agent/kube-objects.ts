// Pure builders of what a kubelet writes: the Node object and its status, the heartbeat Lease, and
// the status of a pod it "runs". No I/O here, so every rule is unit-testable.
import { createHash } from 'node:crypto';
import { formatIPv4, parseCidr, parseIPv4 } from '../api/cidr.js';
import type { OwnerReference } from '../kube/client.js';
import type { ContainerStatus, Lease, Node, NodeCondition, NodeStatus, Pod, PodCondition, PodStatus, Taint } from '../kube/objects.js';
import { kubeletMaySetLabel } from '../kube/node-labels.js';

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/**
 * A metav1.MicroTime: RFC 3339 with exactly 6 fractional digits (`2026-01-02T03:04:05.123456Z`).
 * Lease renewTime/acquireTime must use it; a JS ISO date (3 digits) is rejected with 400.
 */
export function microTime(epochMs: number = performance.timeOrigin + performance.now()): string {
  const whole = Math.floor(epochMs);
  const micros = Math.floor((epochMs - whole) * 1000);
  const iso = new Date(whole).toISOString(); // ...T03:04:05.123Z
  return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/** A metav1.Time: RFC 3339 in whole seconds (what the API server stores for most timestamps). */
export function metaTime(epochMs: number = Date.now()): string {
  return `${new Date(epochMs).toISOString().slice(0, 19)}Z`;
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

/** Local-provider roles → the conventional `node-role.kubernetes.io/<role>` label names. */
const ROLE_LABEL_NAMES: Record<string, string> = { controlplane: 'control-plane', 'control-plane': 'control-plane' };

export function roleLabels(roles: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of roles) out[`node-role.kubernetes.io/${ROLE_LABEL_NAMES[r] ?? r}`] = '';
  return out;
}

export function splitLabels(labels: Record<string, string>): { own: Record<string, string>; restricted: Record<string, string> } {
  const own: Record<string, string> = {};
  const restricted: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) (kubeletMaySetLabel(k) ? own : restricted)[k] = v;
  return { own, restricted };
}

// ---------------------------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------------------------

export interface NodeIdentity {
  nodeName: string;
  machine: string;
  address: string;
  roles: readonly string[];
  labels: Record<string, string>;
  taints: readonly Taint[];
  capacity: Record<string, string>;
  kubeletVersion: string;
  podCIDR?: string | undefined;
  /** Port put into status.daemonEndpoints.kubeletEndpoint. */
  daemonPort: number;
  /** Changes with every agent start, like a real boot id. */
  bootID: string;
}

export const NODE_ARCH: string = process.arch === 'x64' ? 'amd64' : process.arch;

/** Every label the Node should carry: defaults, role labels, then the configured ones (which win). */
export function nodeLabels(id: NodeIdentity): Record<string, string> {
  return {
    'kubernetes.io/hostname': id.nodeName,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': NODE_ARCH,
    'marina.dev/machine': id.machine,
    'marina.dev/virtual-kubelet': 'true',
    ...roleLabels(id.roles),
    ...id.labels,
  };
}

/** The object POSTed at registration (labels: the subset given; taints and podCIDR only here). */
export function buildNode(id: NodeIdentity, labels: Record<string, string>): Node {
  const spec: NonNullable<Node['spec']> = {};
  if (id.taints.length) spec.taints = id.taints.map((t) => ({ ...t }));
  if (id.podCIDR) {
    spec.podCIDR = id.podCIDR;
    spec.podCIDRs = [id.podCIDR];
  }
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: id.nodeName,
      labels,
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'marina.dev/virtual-kubelet': 'true' },
    },
    spec,
  };
}

const hex = (s: string, len: number): string => createHash('sha256').update(s).digest('hex').slice(0, len);

function uuidFrom(s: string): string {
  const h = hex(s, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const NODE_CONDITIONS: readonly [type: string, status: 'True' | 'False', reason: string, message: string][] = [
  ['MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'],
  ['DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'],
  ['PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'],
  ['NetworkUnavailable', 'False', 'VirtualNetworkReady', 'virtual node network is ready'],
  ['Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'],
];

/**
 * The full status a healthy kubelet reports. lastTransitionTime is kept from `current` when a
 * condition's status did not change (e.g. across an agent restart); lastHeartbeatTime is now.
 */
export function buildNodeStatus(id: NodeIdentity, current: NodeStatus | undefined, now: string): NodeStatus {
  const previous = new Map((current?.conditions ?? []).map((c) => [c.type, c]));
  const conditions: NodeCondition[] = NODE_CONDITIONS.map(([type, status, reason, message]) => {
    const old = previous.get(type);
    return {
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: old && old.status === status && old.lastTransitionTime ? old.lastTransitionTime : now,
    };
  });
  const capacity = { ...id.capacity };
  return {
    conditions,
    addresses: [
      { type: 'InternalIP', address: id.address },
      { type: 'Hostname', address: id.nodeName },
    ],
    capacity,
    allocatable: { ...capacity },
    nodeInfo: {
      machineID: hex(`machine:${id.machine}`, 32),
      systemUUID: uuidFrom(`system:${id.machine}`),
      bootID: id.bootID,
      kernelVersion: 'marina-virtual',
      osImage: 'Marina virtual node',
      containerRuntimeVersion: 'marina-virtual://0.1.0',
      kubeletVersion: id.kubeletVersion,
      kubeProxyVersion: '',
      operatingSystem: 'linux',
      architecture: NODE_ARCH,
    },
    daemonEndpoints: { kubeletEndpoint: { Port: id.daemonPort } },
  };
}

/** True if the node's Ready condition is anything but True (e.g. the node controller set Unknown). */
export function nodeNeedsReadyStatus(node: Node): boolean {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  return !ready || ready.status !== 'True';
}

// ---------------------------------------------------------------------------------------------
// Lease
// ---------------------------------------------------------------------------------------------

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

export function nodeOwnerReference(nodeName: string, nodeUID: string): OwnerReference {
  return { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: nodeUID };
}

/** A new heartbeat Lease, or `existing` renewed (keeping its resourceVersion for the update). */
export function buildLease(nodeName: string, nodeUID: string, durationSeconds: number, renewTime: string, existing?: Lease): Lease {
  const owner = nodeOwnerReference(nodeName, nodeUID);
  const base: Lease = existing ?? { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: nodeName, namespace: NODE_LEASE_NAMESPACE } };
  const owners = base.metadata.ownerReferences ?? [];
  const hasOwner = owners.some((o) => o.kind === 'Node' && o.name === nodeName && o.uid === nodeUID);
  return {
    ...base,
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      ...base.metadata,
      ownerReferences: hasOwner ? owners : [...owners.filter((o) => !(o.kind === 'Node' && o.name === nodeName)), owner],
    },
    spec: { ...base.spec, holderIdentity: nodeName, leaseDurationSeconds: durationSeconds, renewTime },
  };
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

/** `containerd://<64 hex>`: stable per pod uid and container name, so re-posts do not change it. */
export function fakeContainerID(podUID: string, container: string): string {
  return `containerd://${hex(`${podUID}/${container}`, 64)}`;
}

/** A digest-pinned image reference derived from the image name, as a real runtime reports it. */
export function fakeImageID(image: string): string {
  const repo = image.replace(/@sha256:[0-9a-f]+$/, '').replace(/:[^/:]+$/, '');
  const qualified = repo.includes('/') ? (repo.split('/')[0]!.includes('.') ? repo : `docker.io/${repo}`) : `docker.io/library/${repo}`;
  return `${qualified}@sha256:${hex(`image:${image}`, 64)}`;
}

/** Normalized image name as runtimes report it in containerStatuses[].image. */
function reportedImage(image: string | undefined): string {
  if (!image) return '';
  let ref = image;
  if (!/[:@]/.test(ref.split('/').pop()!)) ref += ':latest';
  if (!ref.includes('/')) return `docker.io/library/${ref}`;
  const first = ref.split('/')[0]!;
  return first.includes('.') || first.includes(':') || first === 'localhost' ? ref : `docker.io/${ref}`;
}

export interface PodStatusContext {
  hostIP: string;
  podIP: string;
  /** metav1.Time "now". */
  now: string;
}

function condition(existing: PodCondition[] | undefined, type: string, status: 'True' | 'False', now: string, reason?: string, message?: string): PodCondition {
  const old = existing?.find((c) => c.type === type);
  const c: PodCondition = {
    type,
    status,
    lastProbeTime: null,
    lastTransitionTime: old && old.status === status && old.lastTransitionTime ? old.lastTransitionTime : now,
  };
  if (reason) c.reason = reason;
  if (message) c.message = message;
  return c;
}

/**
 * The status that makes a pod Running with every container running and ready. Conditions set by
 * others (readiness gates, DisruptionTarget) are left alone: send it as a strategic merge patch,
 * where conditions merge by type. Times already set (startTime, startedAt, transitions) are kept.
 */
export function buildPodStatus(pod: Pod, ctx: PodStatusContext): PodStatus {
  const prev = pod.status ?? {};
  const uid = pod.metadata.uid ?? pod.metadata.name ?? '';
  const startTime = prev.startTime ?? ctx.now;
  const podIP = pod.spec?.hostNetwork ? ctx.hostIP : (prev.podIP ?? ctx.podIP);
  const startedAt = (name: string, list: ContainerStatus[] | undefined): string => {
    const running = list?.find((s) => s.name === name)?.state?.running?.startedAt;
    return typeof running === 'string' ? running : startTime;
  };

  const initContainerStatuses: ContainerStatus[] = (pod.spec?.initContainers ?? []).map((c): ContainerStatus => {
    const sidecar = c.restartPolicy === 'Always';
    const base = {
      name: c.name,
      image: reportedImage(c.image),
      imageID: fakeImageID(reportedImage(c.image)),
      containerID: fakeContainerID(uid, c.name),
      restartCount: 0,
    };
    return sidecar
      ? { ...base, ready: true, started: true, state: { running: { startedAt: startedAt(c.name, prev.initContainerStatuses) } } }
      : {
          ...base,
          ready: true,
          started: false,
          state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: startTime, finishedAt: startTime, containerID: base.containerID } },
        };
  });
  const containerStatuses: ContainerStatus[] = (pod.spec?.containers ?? []).map((c) => ({
    name: c.name,
    image: reportedImage(c.image),
    imageID: fakeImageID(reportedImage(c.image)),
    containerID: fakeContainerID(uid, c.name),
    ready: true,
    started: true,
    restartCount: 0,
    state: { running: { startedAt: startedAt(c.name, prev.containerStatuses) } },
    lastState: {},
  }));

  const existing = prev.conditions;
  const gates = (pod.spec?.readinessGates ?? []).map((g) => g.conditionType);
  const unmetGates = gates.filter((g) => existing?.find((c) => c.type === g)?.status !== 'True');
  const ready =
    unmetGates.length === 0
      ? condition(existing, 'Ready', 'True', ctx.now)
      : condition(
          existing,
          'Ready',
          'False',
          ctx.now,
          'ReadinessGatesNotReady',
          `corresponding condition of pod readiness gate ${unmetGates.map((g) => JSON.stringify(g)).join(', ')} does not exist.`,
        );

  const status: PodStatus = {
    phase: 'Running',
    conditions: [
      condition(existing, 'PodReadyToStartContainers', 'True', ctx.now),
      condition(existing, 'Initialized', 'True', ctx.now),
      ready,
      condition(existing, 'ContainersReady', 'True', ctx.now),
      condition(existing, 'PodScheduled', 'True', ctx.now),
    ],
    hostIP: ctx.hostIP,
    hostIPs: [{ ip: ctx.hostIP }],
    podIP,
    podIPs: [{ ip: podIP }],
    startTime,
    containerStatuses,
  };
  if (initContainerStatuses.length) status.initContainerStatuses = initContainerStatuses;
  if (pod.metadata.generation !== undefined) status.observedGeneration = pod.metadata.generation;
  return status;
}

/**
 * True when the pod already shows what buildPodStatus would write (ignoring timestamps), so the
 * kubelet does not re-post its own status on every watch event it caused.
 */
export function podStatusUpToDate(pod: Pod, desired: PodStatus): boolean {
  const s = pod.status;
  if (!s || s.phase !== desired.phase || s.podIP !== desired.podIP || s.hostIP !== desired.hostIP || !s.startTime) return false;
  for (const want of desired.conditions ?? []) {
    const have = s.conditions?.find((c) => c.type === want.type);
    if (!have || have.status !== want.status) return false;
  }
  const sameContainers = (have: ContainerStatus[] | undefined, want: ContainerStatus[] | undefined): boolean => {
    const w = want ?? [];
    const h = have ?? [];
    if (h.length !== w.length) return false;
    return w.every((c) => {
      const x = h.find((y) => y.name === c.name);
      return (
        x !== undefined &&
        x.ready === c.ready &&
        x.image === c.image &&
        x.containerID === c.containerID &&
        Object.keys(x.state ?? {}).join() === Object.keys(c.state).join()
      );
    });
  };
  return sameContainers(s.containerStatuses, desired.containerStatuses) && sameContainers(s.initContainerStatuses, desired.initContainerStatuses);
}

/** What the kubelet should do with a pod bound to it. */
export function podAction(pod: Pod): 'delete' | 'run' | 'ignore' {
  if (pod.metadata.deletionTimestamp) return 'delete';
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return 'ignore';
  return 'run';
}

// ---------------------------------------------------------------------------------------------
// Pod IPs
// ---------------------------------------------------------------------------------------------

/** Range of pod IPs when the Node has no podCIDR: a /24 in 100.64.0.0/10 picked by node name. */
export function fallbackPodCidr(nodeName: string): string {
  const n = createHash('sha256').update(nodeName).digest().readUInt32BE(0) % 16384; // /24s in a /10
  return `${formatIPv4(parseIPv4('100.64.0.0')! + n * 256)}/24`;
}

/**
 * Hands out pod IPs from one CIDR, lowest free first (network address, the first address (gateway)
 * and broadcast are never handed out). Keyed by pod uid; `adopt` records IPs pods already have.
 */
export class PodIPAllocator {
  readonly cidr: string;
  private readonly base: number;
  private readonly size: number;
  private readonly byUID = new Map<string, number>();
  private readonly used = new Set<number>();

  constructor(cidr: string) {
    const parsed = parseCidr(cidr);
    if (typeof parsed === 'string') throw new Error(`pod CIDR: ${parsed}`);
    this.cidr = cidr;
    this.base = parsed.base;
    this.size = 2 ** (32 - parsed.prefix);
  }

  /** Records an IP a pod already has, if it lies in this range. */
  adopt(uid: string, ip: string): boolean {
    const n = parseIPv4(ip);
    if (n === undefined || n <= this.base || n >= this.base + this.size - 1) return false;
    if (this.byUID.get(uid) === n) return true;
    if (this.used.has(n)) return false;
    this.release(uid);
    this.byUID.set(uid, n);
    this.used.add(n);
    return true;
  }

  allocate(uid: string): string {
    const have = this.byUID.get(uid);
    if (have !== undefined) return formatIPv4(have);
    for (let i = 2; i < this.size - 1; i++) {
      const n = this.base + i;
      if (!this.used.has(n)) {
        this.used.add(n);
        this.byUID.set(uid, n);
        return formatIPv4(n);
      }
    }
    throw new Error(`pod CIDR ${this.cidr} is exhausted (${this.used.size} addresses in use)`);
  }

  release(uid: string): void {
    const n = this.byUID.get(uid);
    if (n === undefined) return;
    this.byUID.delete(uid);
    this.used.delete(n);
  }

  get inUse(): number {
    return this.used.size;
  }
}
