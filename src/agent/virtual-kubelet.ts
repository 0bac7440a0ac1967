// A virtual kubelet with kwok semantics: it registers the Node, keeps its Lease and status fresh,
// and moves the pods bound to it to Running (and deletes them for good when they are being
// deleted) without running any container. Every API failure is retried with backoff; nothing here
// throws out of the loops.
//
// A Node that disappears while the kubelet runs (or is missing at start although an earlier run
// registered it) is registered again, like Marina's real workers do: Marina deletes a machine's
// Node only after its agent was stopped, so a running kubelet losing its Node means someone else
// removed it — a restore of etcd data from before this machine joined, or `kubectl delete node`.
// A Node replaced by one with another uid is adopted. The kubelet carries on either way, with
// the pods still bound to its name.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  isAlreadyExists,
  isConflict,
  isForbidden,
  isNotFound,
  type KubeClient,
  objectKey,
  Resources,
  type WatchEvent,
  type Watcher,
} from '../kube/client.js';
import { WorkQueue } from '../runtime/workqueue.js';
import {
  buildLease,
  buildNode,
  buildNodeStatus,
  buildPodStatus,
  fallbackPodCidr,
  metaTime,
  microTime,
  NODE_LEASE_NAMESPACE,
  type NodeIdentity,
  nodeLabels,
  nodeNeedsReadyStatus,
  podAction,
  PodIPAllocator,
  podStatusUpToDate,
  splitLabels,
} from './kube-objects.js';
import type { Lease, Node, Pod } from '../kube/objects.js';

export type KubeletLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface VirtualKubeletOptions {
  /** The kubelet's own identity (system:node:<name>). */
  client: KubeClient;
  /** Optional second identity for labels NodeRestriction forbids the kubelet to set (node-role.kubernetes.io/*). */
  labeler?: KubeClient | undefined;
  identity: Omit<NodeIdentity, 'bootID'> & { bootID?: string };
  /** Directory for the registration marker (`node-uid`). */
  stateDir: string;
  log: KubeletLog;
  leaseDurationSeconds?: number;
  renewIntervalMs?: number;
  statusIntervalMs?: number;
  /** Re-check every pod this often even without events (level-triggered safety net). */
  resyncIntervalMs?: number;
}

/** `registering` covers the first registration and every registration again. */
export type KubeletPhase = 'registering' | 'running' | 'stopped';

export interface KubeletState {
  phase: KubeletPhase;
  nodeName: string;
  nodeUID?: string;
  /** Lease renewed within its duration. */
  heartbeating: boolean;
  lastHeartbeat?: string;
  lastStatusUpdate?: string;
  consecutiveHeartbeatFailures: number;
  podCIDR?: string;
  pods: number;
  /** Times the Node was registered again after it disappeared or was replaced. */
  reregistrations: number;
  /** Why and when the Node was last registered again. */
  lastReregistration?: { reason: string; at: string };
  /** Labels that could not be applied (NodeRestriction and no labeler credentials). */
  pendingLabels?: string[];
  lastError?: string;
}

/** Sleeps until `ms` passed, `wake()` is called, or the signal aborts. */
class Waker {
  private resolve: (() => void) | undefined;
  private pending = false;
  wake(): void {
    this.pending = true;
    this.resolve?.();
  }
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.resolve = undefined;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.resolve = done;
    });
  }
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class VirtualKubelet {
  private readonly client: KubeClient;
  private readonly labeler: KubeClient | undefined;
  private readonly id: NodeIdentity;
  private readonly log: KubeletLog;
  private readonly stateDir: string;
  private readonly leaseSeconds: number;
  private readonly renewMs: number;
  private readonly statusMs: number;
  private readonly resyncMs: number;

  private phase: KubeletPhase = 'registering';
  private readonly abort = new AbortController();
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly statusWaker = new Waker();
  private readonly heartbeatWaker = new Waker();

  private node: Node | undefined;
  private nodeUID: string | undefined;
  private lease: Lease | undefined;
  private lastHeartbeatMs: number | undefined;
  private lastStatusMs: number | undefined;
  private heartbeatFailures = 0;
  private lastError: string | undefined;
  /** Why the running registration again was started. */
  private pendingReason: string | undefined;
  private reregistrations = 0;
  private lastReregistration: { reason: string; at: string } | undefined;
  /** Labels NodeRestriction keeps the kubelet from setting itself (applied via the labeler, if any). */
  private restrictedLabels: Record<string, string> = {};

  private nodeWatch: Watcher<Node> | undefined;
  private podWatch: Watcher<Pod> | undefined;
  private ipam: PodIPAllocator | undefined;
  /** Pod keys to reconcile; failed ones come back with per-key backoff (0.5 s doubling to 30 s). */
  private readonly podQueue = new WorkQueue({ backoff: { baseDelayMs: 500, maxDelayMs: 30_000 } });
  private readonly aborted: Promise<void>;
  private readonly lastWarn = new Map<string, number>();

  constructor(opts: VirtualKubeletOptions) {
    this.client = opts.client;
    this.labeler = opts.labeler;
    this.id = { ...opts.identity, bootID: opts.identity.bootID ?? randomUUID() };
    this.log = opts.log;
    this.stateDir = opts.stateDir;
    this.leaseSeconds = opts.leaseDurationSeconds ?? 40;
    this.renewMs = opts.renewIntervalMs ?? Math.max(1000, (this.leaseSeconds * 1000) / 4);
    this.statusMs = opts.statusIntervalMs ?? 60_000;
    this.resyncMs = opts.resyncIntervalMs ?? 30_000;
    this.aborted = new Promise((resolve) => this.abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    this.abort.signal.addEventListener('abort', () => this.podQueue.shutDown(), { once: true });
  }

  get nodeName(): string {
    return this.id.nodeName;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Starts registration and, once registered, the heartbeat, status and pod loops. */
  start(): void {
    this.track(this.run());
  }

  /** Stops every loop and watch; waits for in-flight calls. The Node and Lease are left as they are. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.nodeWatch?.stop();
    this.podWatch?.stop();
    while (this.tasks.size) await Promise.allSettled([...this.tasks]);
    this.phase = 'stopped';
  }

  /** Lease renewed within its duration (what the node-lifecycle controller looks at). */
  heartbeating(now = Date.now()): boolean {
    return this.phase === 'running' && this.lastHeartbeatMs !== undefined && now - this.lastHeartbeatMs < this.leaseSeconds * 1000;
  }

  /** Epoch seconds of the last successful Lease renewal, if any. */
  lastHeartbeatSeconds(): number | undefined {
    return this.lastHeartbeatMs === undefined ? undefined : this.lastHeartbeatMs / 1000;
  }

  state(): KubeletState {
    const s: KubeletState = {
      phase: this.phase,
      nodeName: this.id.nodeName,
      heartbeating: this.heartbeating(),
      consecutiveHeartbeatFailures: this.heartbeatFailures,
      pods: this.podWatch?.store.size ?? 0,
      reregistrations: this.reregistrations,
    };
    if (this.lastReregistration) s.lastReregistration = this.lastReregistration;
    if (this.nodeUID) s.nodeUID = this.nodeUID;
    if (this.lastHeartbeatMs !== undefined) s.lastHeartbeat = new Date(this.lastHeartbeatMs).toISOString();
    if (this.lastStatusMs !== undefined) s.lastStatusUpdate = new Date(this.lastStatusMs).toISOString();
    if (this.ipam) s.podCIDR = this.ipam.cidr;
    const pending = Object.keys(this.pendingLabels());
    if (pending.length) s.pendingLabels = pending;
    if (this.lastError) s.lastError = this.lastError;
    return s;
  }

  // -------------------------------------------------------------------------------------------

  private track<T>(p: Promise<T>): Promise<T> {
    const t = p.catch((err: unknown) => this.log.error({ err }, 'virtual kubelet task failed unexpectedly'));
    this.tasks.add(t);
    void t.finally(() => this.tasks.delete(t));
    return p;
  }

  private sleep(ms: number): Promise<void> {
    return new Waker().wait(ms, this.abort.signal);
  }

  /** warn at most once per 30 s per topic (outages would otherwise flood the log). */
  private warn(topic: string, err: unknown, msg: string): void {
    this.lastError = `${msg}: ${errText(err)}`;
    const now = Date.now();
    if (now - (this.lastWarn.get(topic) ?? 0) < 30_000) return;
    this.lastWarn.set(topic, now);
    this.log.warn({ err: errText(err), node: this.id.nodeName }, msg);
  }

  private async run(): Promise<void> {
    await this.register(await this.readMarker());
    if (this.stopped) return;
    this.startWatches();
    this.track(this.heartbeatLoop());
    this.track(this.statusLoop());
    this.track(this.resyncLoop());
    this.track(this.podWorker());
  }

  // ------------------------------------------------------------------ registration

  private get markerPath(): string {
    return join(this.stateDir, 'node-uid');
  }

  private async readMarker(): Promise<string | undefined> {
    try {
      const text = (await readFile(this.markerPath, 'utf8')).trim();
      const [name, uid] = text.split(/\s+/);
      return name === this.id.nodeName && uid ? uid : undefined;
    } catch {
      return undefined;
    }
  }

  private async writeMarker(uid: string): Promise<void> {
    await mkdir(this.stateDir, { recursive: true });
    const tmp = `${this.markerPath}.tmp`;
    await writeFile(tmp, `${this.id.nodeName} ${uid}\n`);
    await rename(tmp, this.markerPath);
  }

  /** Registers until it succeeds or the kubelet stops. `known`: the uid registered before, if any. */
  private async register(known: string | undefined): Promise<void> {
    let delay = 500;
    while (!this.stopped) {
      try {
        await this.registerOnce(known);
        return;
      } catch (err) {
        if (this.stopped) return;
        this.warn('register', err, `registering Node ${this.id.nodeName} failed; retrying`);
        await this.sleep(delay * (0.75 + Math.random() / 2));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  /**
   * Adopts the Node of our name if there is one, else creates it (with the labels and taints of
   * the configured identity). `known` is the uid registered before (the marker at start, the
   * current Node while running): a Node with another uid, or none, makes this a registration again.
   */
  private async registerOnce(known: string | undefined): Promise<void> {
    const name = this.id.nodeName;
    const labels = nodeLabels(this.id);
    const { own, restricted } = splitLabels(labels);
    let node: Node | undefined;
    if (known) {
      try {
        node = await this.client.get<Node>(Resources.nodes, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    node ??= await this.createNode(labels, own);
    const uid = node.metadata.uid;
    if (!uid) throw new Error(`Node ${name} has no uid`);
    this.node = node;
    this.nodeUID = uid;
    await this.writeMarker(uid);
    await this.ensureLabels(own, restricted);
    this.phase = 'running';
    if (known && uid !== known) {
      this.reregistrations++;
      this.lastReregistration = { reason: this.pendingReason ?? `Node ${name} (uid ${known}) was gone at start`, at: new Date().toISOString() };
      this.log.warn({ node: name, uid, previousUID: known, reason: this.lastReregistration.reason }, 'node registered again');
    } else {
      this.log.info({ node: name, uid, adopted: known === uid }, 'node registered');
    }
    this.pendingReason = undefined;
  }

  private async createNode(labels: Record<string, string>, own: Record<string, string>): Promise<Node> {
    const create = async (l: Record<string, string>): Promise<Node> => {
      try {
        return await this.client.create<Node>(Resources.nodes, buildNode(this.id, l));
      } catch (err) {
        if (isAlreadyExists(err)) return this.client.get<Node>(Resources.nodes, this.id.nodeName);
        throw err;
      }
    };
    try {
      return await create(labels);
    } catch (err) {
      // NodeRestriction: "node ... is not allowed to set the following labels: node-role..." —
      // register with the labels a kubelet may set; ensureLabels applies the rest.
      if (isForbidden(err) && /labels/.test(errText(err)) && Object.keys(own).length < Object.keys(labels).length) {
        this.log.info({ err: errText(err) }, 'registering without the labels NodeRestriction forbids');
        return create(own);
      }
      throw err;
    }
  }

  /** Wanted labels the Node (as last seen) does not carry with the wanted value. */
  private missingLabels(want: Record<string, string>): Record<string, string> {
    const have = this.node?.metadata.labels ?? {};
    return Object.fromEntries(Object.entries(want).filter(([k, v]) => have[k] !== v));
  }

  /**
   * Restricted labels still missing. Derived from the Node as last seen, so labels someone else
   * applies (Marina's controllers with admin credentials) stop counting as pending.
   */
  private pendingLabels(): Record<string, string> {
    return this.missingLabels(this.restrictedLabels);
  }

  /** Adds configured labels the Node lacks (never removes any). Restricted ones go through the labeler. */
  private async ensureLabels(own: Record<string, string>, restricted: Record<string, string>): Promise<void> {
    this.restrictedLabels = restricted;
    const mOwn = this.missingLabels(own);
    if (Object.keys(mOwn).length) {
      try {
        this.node = await this.client.patch<Node>(Resources.nodes, this.id.nodeName, { metadata: { labels: mOwn } }, { type: 'merge' });
      } catch (err) {
        this.warn('labels', err, 'could not update Node labels');
      }
    }
    const pending = Object.keys(this.pendingLabels());
    if (pending.length && !this.labeler) {
      this.log.info({ labels: pending }, 'labels a kubelet may not set on itself are left to Marina (no labelerKubeconfigPath)');
    }
    await this.applyRestrictedLabels();
  }

  private async applyRestrictedLabels(): Promise<void> {
    const labels = this.pendingLabels();
    if (!Object.keys(labels).length || !this.labeler) return;
    try {
      // Precondition on uid so a stale labeler never touches a different Node of the same name.
      this.node = await this.labeler.patch<Node>(Resources.nodes, this.id.nodeName, { metadata: { uid: this.nodeUID, labels } }, { type: 'merge' });
    } catch (err) {
      this.warn('labels', err, 'applying restricted Node labels failed; will retry');
    }
  }

  /**
   * Our Node is gone or replaced while running: register again (see the top of this file). The
   * loops keep going but skip their calls until the registration is done; it wakes them then.
   * A stale signal (e.g. an old Node's event arriving after the registration again) finds the
   * current Node in place and changes nothing.
   */
  private nodeGone(why: string): void {
    if (this.phase !== 'running' || this.stopped) return;
    this.phase = 'registering';
    this.pendingReason = why;
    this.log.warn({ node: this.id.nodeName, uid: this.nodeUID }, `${why}; registering the Node again`);
    const known = this.nodeUID;
    this.lease = undefined;
    this.track(
      this.register(known).then(() => {
        this.heartbeatWaker.wake();
        this.statusWaker.wake();
        // Pods skipped meanwhile: look at them now rather than at the next resync.
        for (const key of this.podWatch?.store.keys() ?? []) this.enqueue(key);
      }),
    );
  }

  // ------------------------------------------------------------------ node status and lease

  private async heartbeatLoop(): Promise<void> {
    let retry = 200;
    while (!this.stopped) {
      if (this.phase !== 'running') {
        await this.heartbeatWaker.wait(this.renewMs, this.abort.signal);
        continue;
      }
      const ok = await this.renewLease();
      if (ok) retry = 200;
      await this.heartbeatWaker.wait(ok ? this.renewMs : retry, this.abort.signal);
      if (!ok) retry = Math.min(retry * 2, this.renewMs);
    }
  }

  /** One renewal (creating the Lease if needed). Never throws. */
  async renewLease(): Promise<boolean> {
    const name = this.id.nodeName;
    const leases = Resources.leases;
    try {
      for (let attempt = 0; ; attempt++) {
        if (!this.lease) {
          try {
            this.lease = await this.client.get<Lease>(leases, name, { namespace: NODE_LEASE_NAMESPACE });
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
        try {
          const body = buildLease(name, this.nodeUID!, this.leaseSeconds, microTime(), this.lease);
          this.lease = this.lease
            ? await this.client.replace<Lease>(leases, body)
            : await this.client.create<Lease>(leases, body);
          break;
        } catch (err) {
          this.lease = undefined;
          if (attempt === 0 && (isConflict(err) || isAlreadyExists(err) || isNotFound(err))) continue;
          throw err;
        }
      }
      if (this.heartbeatFailures > 0) this.log.info({ node: name, failures: this.heartbeatFailures }, 'heartbeat recovered');
      this.heartbeatFailures = 0;
      this.lastHeartbeatMs = Date.now();
      return true;
    } catch (err) {
      this.heartbeatFailures++;
      if (!this.stopped) this.warn('lease', err, `renewing Lease ${NODE_LEASE_NAMESPACE}/${name} failed`);
      return false;
    }
  }

  private async statusLoop(): Promise<void> {
    let retry = 500;
    while (!this.stopped) {
      if (this.phase !== 'running') {
        await this.statusWaker.wait(this.statusMs, this.abort.signal);
        continue;
      }
      const ok = await this.updateNodeStatus();
      if (ok) await this.applyRestrictedLabels();
      if (ok) retry = 500;
      await this.statusWaker.wait(ok ? this.statusMs : retry, this.abort.signal);
      if (!ok) retry = Math.min(retry * 2, 10_000);
      // Even when woken by a Node event, never post more than once a second.
      await this.sleep(Math.max(0, 1000 - (Date.now() - (this.lastStatusMs ?? 0))));
    }
  }

  /**
   * Posts the full Ready status as a strategic merge patch of the status subresource (conditions
   * merge by type, so conditions owned by others survive). Never throws.
   */
  async updateNodeStatus(): Promise<boolean> {
    const status = buildNodeStatus(this.id, this.node?.status, metaTime());
    try {
      this.node = await this.client.patch<Node>(Resources.nodes, this.id.nodeName, { status }, { type: 'strategic', subresource: 'status' });
      this.lastStatusMs = Date.now();
      return true;
    } catch (err) {
      if (this.stopped) return false;
      if (isNotFound(err)) {
        this.nodeGone(`Node ${this.id.nodeName} was deleted`);
        return false;
      }
      this.warn('status', err, `updating Node ${this.id.nodeName} status failed`);
      return false;
    }
  }

  // ------------------------------------------------------------------ watches

  private startWatches(): void {
    const name = this.id.nodeName;
    const nodeWatch = this.client.watch<Node>(Resources.nodes, {
      fieldSelector: `metadata.name=${name}`,
      onEvent: (ev) => this.onNodeEvent(ev),
      onSynced: () => {
        // A (re)list without our Node, e.g. after an outage during which it was deleted.
        if (!nodeWatch.store.has(name)) this.nodeGone(`Node ${name} no longer exists`);
      },
      onError: (err) => this.warn('node-watch', err, 'Node watch interrupted; resuming'),
    });
    this.nodeWatch = nodeWatch;
    const podWatch = this.client.watch<Pod>(Resources.pods, {
      fieldSelector: `spec.nodeName=${name}`,
      onEvent: (ev) => this.onPodEvent(ev),
      onSynced: () => {
        for (const key of podWatch.store.keys()) this.enqueue(key);
      },
      onError: (err) => this.warn('pod-watch', err, 'Pod watch interrupted; resuming'),
    });
    this.podWatch = podWatch;
  }

  private onNodeEvent(ev: WatchEvent<Node>): void {
    const node = ev.object;
    // While registering, the registration itself reads the Node.
    if (this.phase !== 'running') return;
    if (ev.type === 'DELETED') {
      // An older Node's deletion can arrive after a status update found it gone and we registered again.
      if (node.metadata.uid === this.nodeUID) this.nodeGone(`Node ${this.id.nodeName} was deleted`);
      return;
    }
    if (node.metadata.uid !== this.nodeUID) {
      this.nodeGone(`Node ${this.id.nodeName} was replaced (uid ${node.metadata.uid})`);
      return;
    }
    this.node = node;
    // The node-lifecycle controller marks us Unknown after an outage: report Ready right away.
    if (nodeNeedsReadyStatus(node)) this.statusWaker.wake();
    // kube-controller-manager may assign a podCIDR after registration.
    if (node.spec?.podCIDR && this.ipam && this.ipam.cidr !== node.spec.podCIDR) this.allocator();
  }

  private onPodEvent(ev: WatchEvent<Pod>): void {
    const pod = ev.object;
    const key = objectKey(pod);
    const uid = pod.metadata.uid ?? key;
    if (ev.type === 'DELETED') {
      this.ipam?.release(uid);
      this.podQueue.forget(key);
      return;
    }
    if (pod.status?.podIP && !pod.spec?.hostNetwork) this.ipam?.adopt(uid, pod.status.podIP);
    this.enqueue(key);
  }

  /** The IP allocator for the current pod range; rebuilt (adopting existing pod IPs) when it changes. */
  private allocator(): PodIPAllocator {
    const cidr = this.node?.spec?.podCIDR ?? this.id.podCIDR ?? fallbackPodCidr(this.id.nodeName);
    if (!this.ipam || this.ipam.cidr !== cidr) {
      this.ipam = new PodIPAllocator(cidr);
      for (const p of this.podWatch?.store.values() ?? []) {
        if (p.status?.podIP && !p.spec?.hostNetwork) this.ipam.adopt(p.metadata.uid ?? objectKey(p), p.status.podIP);
      }
    }
    return this.ipam;
  }

  // ------------------------------------------------------------------ pods

  private enqueue(key: string): void {
    this.podQueue.add(key);
  }

  /** One worker: pods are few per node and each update is one small request. */
  private async podWorker(): Promise<void> {
    // Pod IPs of existing pods must be known (adopted) before any new one is handed out.
    await Promise.race([this.podWatch?.synced, this.aborted]);
    for (;;) {
      const key = await this.podQueue.get();
      if (key === undefined) return;
      try {
        await this.reconcilePod(key);
        this.podQueue.forget(key);
      } catch (err) {
        if (!this.stopped) {
          const delay = this.podQueue.addRateLimited(key);
          this.warn('pod', err, `updating pod ${key} failed; retrying in ${delay} ms`);
        }
      } finally {
        this.podQueue.done(key);
      }
    }
  }

  private async reconcilePod(key: string): Promise<void> {
    const pod = this.podWatch?.store.get(key);
    if (!pod || this.phase !== 'running') return;
    const { name, namespace, uid } = pod.metadata;
    if (!name || !namespace) return;
    switch (podAction(pod)) {
      case 'ignore':
        return;
      case 'delete':
        // Nothing to stop: finish the graceful deletion at once, or the pod stays Terminating.
        try {
          await this.client.delete(Resources.pods, name, { namespace, gracePeriodSeconds: 0, ...(uid ? { preconditions: { uid } } : {}) });
          this.log.debug({ pod: key }, 'pod deleted');
        } catch (err) {
          if (isNotFound(err) || isConflict(err)) return;
          throw err;
        }
        return;
      case 'run': {
        const podIP = pod.spec?.hostNetwork ? this.id.address : (pod.status?.podIP ?? this.allocator().allocate(uid ?? key));
        const status = buildPodStatus(pod, { hostIP: this.id.address, podIP, now: metaTime() });
        if (podStatusUpToDate(pod, status)) return;
        try {
          await this.client.patch(
            Resources.pods,
            name,
            { metadata: { uid }, status },
            { type: 'strategic', namespace, subresource: 'status' },
          );
          this.log.debug({ pod: key, podIP }, 'pod running');
        } catch (err) {
          if (isNotFound(err)) return;
          throw err;
        }
        return;
      }
    }
  }

  private async resyncLoop(): Promise<void> {
    while (!this.stopped) {
      await this.sleep(this.resyncMs);
      for (const key of this.podWatch?.store.keys() ?? []) this.enqueue(key);
    }
  }
}
