// The orphan sweep: machines a provider runs that no Machine object accounts for. Nothing else
// would ever stop such a machine (the Machine controller acts only on Machine objects), and it
// holds an address, memory and possibly a Node name. Every `intervalMs` the sweep compares each
// provider's inventory (listMachines) with the Machine objects, by uid:
//
//   orphan seen  → reported at once: a warning log line and an OrphanedMachine alert (project and
//                  cluster of the machine), naming when it will be removed
//   still there  → after `graceMs` as an orphan it is deleted through the provider (deleteMachine
//                  with the orphan's own uid, so nothing of another object is touched), and its
//                  alert resolves
//
// Alerts rather than a metric: an orphan means Marina lost track of something (a crash, a restored
// store, someone's hands in the data directory), which a person should hear about through the
// channels they already watch; a metric would need a scraper and a rule first.
//
// The grace period covers what one pass cannot see atomically (a Machine deleted or created
// between the two lists) and gives a person time to look before the machine goes. It counts from
// when this process first saw the orphan, so a restart of Marina only delays removals. Providers
// whose machines are not Marina's to destroy (`sweepOrphans` false, e.g. imported servers) are
// never listed, let alone swept.
//
// A provider's resources of a whole cluster (listClusterResources: OpenStack's load balancers,
// security groups and server groups) go the same way, compared with the Cluster objects by uid:
// an `OrphanedResource` alert at once, deleteClusterResource after the grace period. A cluster's
// delete removes them, but a delete that could not (a group still in use by a port, a crash
// between the steps) or a cluster record lost would otherwise leave them for good.
import type { Logger } from 'pino';
import { LABEL_ALERT_SOURCE, RULES, type AlertInput, type AlertSink } from '../alerts/manager.js';
import type { InfrastructureProvider, ProviderClusterResource, ProviderMachine, ProviderRegistry } from '../providers/contract.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { errorMessage } from './common.js';

export const ORPHAN_ALERT_SOURCE = 'orphans';
export const DEFAULT_ORPHAN_SWEEP = { intervalMs: 60_000, graceMs: 5 * 60_000 };

export interface OrphanSweepOptions {
  store: Store;
  providers: ProviderRegistry;
  log: Logger;
  alerts?: AlertSink;
  /** Time between two passes (default 1 min). */
  intervalMs?: number;
  /** How long a machine stays an orphan before it is deleted (default 5 min). */
  graceMs?: number;
  now?: () => number;
}

export interface Orphan {
  provider: string;
  machine: ProviderMachine;
  /** When this process first saw it unaccounted for (ms since the epoch). */
  since: number;
}

export interface ResourceOrphan {
  provider: string;
  resource: ProviderClusterResource;
  since: number;
}

export interface SweepResult {
  /** Orphans still there after the pass (reported, waiting for their grace period to end). */
  orphans: Orphan[];
  removed: Orphan[];
  /** The same for resources of whole clusters. */
  resourceOrphans: ResourceOrphan[];
  resourcesRemoved: ResourceOrphan[];
}

/**
 * Sweep settings from the environment: MARINA_ORPHAN_GRACE_SECONDS and
 * MARINA_ORPHAN_SWEEP_INTERVAL_SECONDS (non-negative numbers; unset or invalid: the defaults).
 */
export function orphanSweepSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): { intervalMs: number; graceMs: number } {
  const seconds = (name: string, fallbackMs: number): number => {
    const raw = env[name]?.trim();
    const n = raw ? Number(raw) : NaN;
    return Number.isFinite(n) && n >= 0 ? n * 1000 : fallbackMs;
  };
  return {
    intervalMs: Math.max(1000, seconds('MARINA_ORPHAN_SWEEP_INTERVAL_SECONDS', DEFAULT_ORPHAN_SWEEP.intervalMs)),
    graceMs: seconds('MARINA_ORPHAN_GRACE_SECONDS', DEFAULT_ORPHAN_SWEEP.graceMs),
  };
}

const orphanKey = (provider: string, m: ProviderMachine): string =>
  JSON.stringify([provider, m.ref.uid, m.ref.project, m.ref.cluster, m.ref.name]);
const describe = (provider: string, m: ProviderMachine) => ({ provider, project: m.ref.project, cluster: m.ref.cluster, machine: m.ref.name, uid: m.ref.uid, state: m.state });
const resourceKey = (provider: string, r: ProviderClusterResource): string => JSON.stringify([provider, r.kind, r.id]);
const describeResource = (provider: string, r: ProviderClusterResource) => ({ provider, kind: r.kind, id: r.id, name: r.name, project: r.cluster.project, cluster: r.cluster.name, clusterUid: r.cluster.uid });
const scopeKey = (project: string, cluster: string): string => JSON.stringify([project, cluster]);

export class OrphanSweep {
  private readonly intervalMs: number;
  private readonly graceMs: number;
  private readonly now: () => number;
  /** The orphans of the last complete pass, by orphanKey. */
  private known = new Map<string, Orphan>();
  /** The resource orphans of the last complete pass, by resourceKey. */
  private knownResources = new Map<string, ResourceOrphan>();
  /** (project, cluster) scopes that may have firing orphan alerts; seeded from the store once. */
  private alertScopes: Set<string> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: OrphanSweepOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_ORPHAN_SWEEP.intervalMs;
    this.graceMs = o.graceMs ?? DEFAULT_ORPHAN_SWEEP.graceMs;
    this.now = o.now ?? Date.now;
  }

  /** Runs a pass every intervalMs (the first one interval after the start). */
  start(): void {
    const next = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.pass = this.sweep()
          .catch((err: unknown) => this.o.log.error({ err }, 'orphan sweep failed'))
          .finally(next);
      }, this.intervalMs);
      this.timer.unref();
    };
    next();
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.pass;
  }

  /** One pass: list, report, remove what outlived its grace period, resolve what is gone. */
  async sweep(): Promise<SweepResult> {
    // Machines before and after the inventories: a machine prepared for an object created during
    // the pass is in the second list, one deleted during the pass in the first.
    const before = await this.machineUids();
    const clustersBefore = await this.clusterUids();
    const listed: { provider: InfrastructureProvider; machine: ProviderMachine }[] = [];
    const listedResources: { provider: InfrastructureProvider; resource: ProviderClusterResource }[] = [];
    for (const provider of this.o.providers.list()) {
      if (!provider.sweepOrphans) continue;
      try {
        for (const machine of await provider.listMachines()) listed.push({ provider, machine });
        for (const resource of (await provider.listClusterResources?.()) ?? []) listedResources.push({ provider, resource });
      } catch (err) {
        // An incomplete inventory must not resolve alerts or restart grace periods: skip the pass.
        this.o.log.warn({ err, provider: provider.name }, 'orphan sweep: cannot list machines; skipping this pass');
        return { orphans: [...this.known.values()], removed: [], resourceOrphans: [...this.knownResources.values()], resourcesRemoved: [] };
      }
    }
    const after = await this.machineUids();
    const clustersAfter = await this.clusterUids();

    const now = this.now();
    const orphans = new Map<string, Orphan>();
    for (const { provider, machine } of listed) {
      if (machine.ref.uid && (before.has(machine.ref.uid) || after.has(machine.ref.uid))) continue;
      const key = orphanKey(provider.name, machine);
      const since = this.known.get(key)?.since ?? now;
      if (!this.known.has(key)) this.o.log.warn({ ...describe(provider.name, machine), removeAt: new Date(since + this.graceMs).toISOString() }, 'orphaned machine: no Machine object accounts for it');
      orphans.set(key, { provider: provider.name, machine, since });
    }
    this.known = orphans;
    const resourceOrphans = new Map<string, ResourceOrphan>();
    for (const { provider, resource } of listedResources) {
      if (resource.cluster.uid && (clustersBefore.has(resource.cluster.uid) || clustersAfter.has(resource.cluster.uid))) continue;
      const key = resourceKey(provider.name, resource);
      const since = this.knownResources.get(key)?.since ?? now;
      if (!this.knownResources.has(key)) this.o.log.warn({ ...describeResource(provider.name, resource), removeAt: new Date(since + this.graceMs).toISOString() }, 'orphaned resource: no Cluster object accounts for it');
      resourceOrphans.set(key, { provider: provider.name, resource, since });
    }
    this.knownResources = resourceOrphans;
    await this.report();

    const removed: Orphan[] = [];
    for (const [key, o] of orphans) {
      if (now - o.since < this.graceMs) continue;
      try {
        await this.o.providers.get(o.provider).deleteMachine(o.machine.ref);
        this.o.log.warn(describe(o.provider, o.machine), 'orphaned machine removed');
        orphans.delete(key);
        removed.push(o);
      } catch (err) {
        this.o.log.error({ err, ...describe(o.provider, o.machine) }, 'orphan sweep: cannot remove machine; trying again next pass');
      }
    }
    // Machines first: a load balancer or group goes more easily once no machine uses it.
    const resourcesRemoved: ResourceOrphan[] = [];
    for (const [key, o] of resourceOrphans) {
      if (now - o.since < this.graceMs) continue;
      try {
        const provider = this.o.providers.get(o.provider);
        if (!provider.deleteClusterResource) throw new Error(`provider ${o.provider} cannot delete a ${o.resource.kind}`);
        await provider.deleteClusterResource(o.resource);
        this.o.log.warn(describeResource(o.provider, o.resource), 'orphaned resource removed');
        resourceOrphans.delete(key);
        resourcesRemoved.push(o);
      } catch (err) {
        this.o.log.error({ err, ...describeResource(o.provider, o.resource) }, 'orphan sweep: cannot remove resource; trying again next pass');
      }
    }
    if (removed.length > 0 || resourcesRemoved.length > 0) await this.report(); // resolves the removed ones' alerts
    return { orphans: [...orphans.values()], removed, resourceOrphans: [...resourceOrphans.values()], resourcesRemoved };
  }

  private async machineUids(): Promise<Set<string>> {
    return new Set((await typed(this.o.store, 'Machine').list()).map((m) => m.metadata.uid ?? '').filter(Boolean));
  }

  private async clusterUids(): Promise<Set<string>> {
    return new Set((await typed(this.o.store, 'Cluster').list()).map((c) => c.metadata.uid ?? '').filter(Boolean));
  }

  /** Makes the firing OrphanedMachine alerts exactly the known orphans (level-based, per project and cluster). */
  private async report(): Promise<void> {
    const sink = this.o.alerts;
    if (!sink) return;
    if (!this.alertScopes) {
      const firing = await typed(this.o.store, 'Alert').list({ labelSelector: `${LABEL_ALERT_SOURCE}=${ORPHAN_ALERT_SOURCE}` });
      this.alertScopes = new Set(firing.filter((a) => a.status?.state === 'firing').map((a) => scopeKey(a.metadata.project ?? '', a.spec.cluster ?? '')));
    }
    const byScope = new Map<string, AlertInput[]>();
    for (const key of this.alertScopes) byScope.set(key, []);
    for (const o of this.known.values()) {
      const { project, cluster, name, uid } = o.machine.ref;
      const inputs = byScope.get(scopeKey(project, cluster)) ?? [];
      byScope.set(scopeKey(project, cluster), inputs);
      inputs.push({
        rule: RULES.OrphanedMachine,
        severity: 'warning',
        labels: { provider: o.provider, machine: name },
        summary: `machine ${name} (provider ${o.provider}) runs without a Machine object`,
        description: `No Machine object has uid ${uid || '(none recorded)'}. Marina removes the machine at ${new Date(o.since + this.graceMs).toISOString()} unless a Machine accounts for it by then.`,
      });
    }
    for (const o of this.knownResources.values()) {
      const r = o.resource;
      // In the project only: an alert of a cluster that is gone resolves at once (the notifier's rule).
      const scope = scopeKey(r.cluster.project, '');
      const inputs = byScope.get(scope) ?? [];
      byScope.set(scope, inputs);
      inputs.push({
        rule: RULES.OrphanedResource,
        severity: 'warning',
        labels: { provider: o.provider, kind: r.kind, resource: r.id, clusterUid: r.cluster.uid, ...(r.cluster.name ? { clusterName: r.cluster.name } : {}) },
        summary: `${r.kind} ${r.name} (${r.id}, provider ${o.provider}) was made for a cluster that no longer exists`,
        description: `No Cluster object has uid ${r.cluster.uid || '(none recorded)'}. Marina removes the ${r.kind} at ${new Date(o.since + this.graceMs).toISOString()} unless a Cluster accounts for it by then.`,
      });
    }
    for (const [key, inputs] of byScope) {
      const [project, cluster] = JSON.parse(key) as [string, string];
      try {
        await sink.sync({ project, ...(cluster ? { cluster } : {}), source: ORPHAN_ALERT_SOURCE }, inputs);
        if (inputs.length === 0) this.alertScopes.delete(key);
        else this.alertScopes.add(key);
      } catch (err) {
        this.o.log.warn({ err: errorMessage(err), project, cluster }, 'orphan sweep: cannot update alerts');
      }
    }
  }
}
