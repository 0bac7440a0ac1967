// Platform events derived from the store until the controllers publish on the EventBus
// themselves: the watch on Clusters, Projects, Alerts and NodePools shows creations, deletions,
// new members, alert transitions and healing's replacements. Event ids come from the object's uid
// and resourceVersion, so two Marina processes watching the same store publish the same ids and
// the queue's idempotency keys keep one delivery per subscriber.
import type { Alert, Cluster, NodePool, Project, Remediation } from '../api/kinds.js';
import type { Resource } from '../api/meta.js';
import type { Store, Watch, WatchEvent } from '../store/types.js';
import { platformEvent, type EventBus } from './events.js';

export class StoreEventBridge {
  private readonly watches: Watch[] = [];
  /** Last seen state per object key, to publish transitions only. */
  private readonly members = new Map<string, Set<string>>();
  private readonly alertStates = new Map<string, string | undefined>();
  private readonly remediations = new Map<string, Set<string>>();

  private constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly onError: (err: unknown) => void,
  ) {}

  static async start(store: Store, bus: EventBus, onError: (err: unknown) => void): Promise<StoreEventBridge> {
    const b = new StoreEventBridge(store, bus, onError);
    for (const kind of ['Cluster', 'Project', 'Alert', 'NodePool']) {
      const list = await store.list(kind);
      for (const o of list.items) b.remember(o);
      b.watches.push(store.watch({ kind, resourceVersion: list.resourceVersion }, (ev) => b.onEvent(ev)));
    }
    return b;
  }

  stop(): void {
    for (const w of this.watches) w.stop();
  }

  private remember(o: Resource): void {
    const key = `${o.kind}/${o.metadata.project ?? ''}/${o.metadata.name}`;
    if (o.kind === 'Project') this.members.set(key, new Set(((o as Project).spec.members ?? []).map((m) => m.user)));
    if (o.kind === 'Alert') this.alertStates.set(key, (o as Alert).status?.state);
    if (o.kind === 'NodePool') this.remediations.set(key, new Set(((o as NodePool).status?.remediations ?? []).map(remediationId)));
  }

  private publish(...args: Parameters<typeof platformEvent>): void {
    this.bus.publish(platformEvent(...args)).catch(this.onError);
  }

  private onEvent(ev: WatchEvent): void {
    const o = ev.object;
    const key = `${o.kind}/${o.metadata.project ?? ''}/${o.metadata.name}`;
    const id = `${o.metadata.uid}-${o.metadata.resourceVersion}`;
    const project = o.metadata.project ?? o.metadata.name;
    switch (o.kind) {
      case 'Cluster': {
        const c = o as Cluster;
        const base = { project, plural: 'clusters', name: c.metadata.name, subject: c.metadata.name, id };
        if (ev.type === 'ADDED') {
          this.publish({
            ...base,
            type: 'dev.marina.cluster.created',
            data: {
              cluster: c.metadata.name,
              kubernetesVersion: c.spec.kubernetesVersion ?? null,
              provider: c.spec.provider ?? 'local',
              nodePools: c.spec.nodePools.map((p) => ({ name: p.name, roles: p.roles, replicas: p.replicas })),
            },
          });
        } else if (ev.type === 'DELETED') {
          this.publish({ ...base, type: 'dev.marina.cluster.deleted', data: { cluster: c.metadata.name } });
        }
        return;
      }
      case 'Project': {
        const p = o as Project;
        const before = this.members.get(key) ?? new Set<string>();
        if (ev.type !== 'ADDED') {
          for (const m of ev.type === 'DELETED' ? [] : p.spec.members ?? []) {
            if (before.has(m.user)) continue;
            this.publish({ type: 'dev.marina.member.added', project: p.metadata.name, plural: 'members', name: m.user, subject: m.user, id: `${id}-${m.user}`, data: { user: m.user, role: m.role } });
          }
        }
        if (ev.type === 'DELETED') this.members.delete(key);
        else this.remember(o);
        return;
      }
      case 'Alert': {
        const a = o as Alert;
        const state = ev.type === 'DELETED' ? undefined : a.status?.state;
        const before = this.alertStates.get(key);
        if (ev.type === 'DELETED') this.alertStates.delete(key);
        else this.remember(o);
        if (!state || state === before) return;
        this.publish({
          type: state === 'firing' ? 'dev.marina.alert.fired' : 'dev.marina.alert.resolved',
          project,
          plural: 'alerts',
          name: a.metadata.name,
          subject: a.metadata.name,
          id,
          data: {
            alert: a.metadata.name,
            rule: a.spec.rule,
            severity: a.spec.severity,
            cluster: a.spec.cluster ?? null,
            labels: a.spec.labels ?? {},
            summary: a.spec.annotations.summary,
            startsAt: a.status?.startsAt ?? null,
            ...(state === 'resolved' ? { endsAt: a.status?.endsAt ?? null } : {}),
          },
        });
        return;
      }
      case 'NodePool': {
        const pool = o as NodePool;
        const list: Remediation[] = pool.status?.remediations ?? [];
        const seen = this.remediations.get(key) ?? new Set<string>();
        if (ev.type === 'DELETED') {
          this.remediations.delete(key);
          return;
        }
        this.remember(o);
        for (const r of list) {
          if (seen.has(remediationId(r))) continue;
          this.publish({
            type: 'dev.marina.machine.replaced',
            project,
            plural: 'nodepools',
            name: pool.metadata.name,
            subject: `${pool.spec.cluster}/${pool.metadata.name}/${r.machine}`,
            id: `${pool.metadata.uid}-${r.machine}-${r.at}`,
            data: { cluster: pool.spec.cluster, pool: pool.metadata.name, machine: r.machine, reason: r.reason, message: r.message, at: r.at },
          });
        }
        return;
      }
    }
  }
}

const remediationId = (r: Remediation) => `${r.machine}@${r.at}`;
