// How many clusters and machines Marina manages, by phase, for /metrics:
//   marina_clusters{phase}   marina_machines{phase}
// Kept current by a store watch (one list at start), so a scrape reads two small maps instead of
// listing thousands of objects.
import { Gauge, type Registry } from 'prom-client';
import type { Resource } from '../api/meta.js';
import type { Store, Watch } from '../store/types.js';

const KINDS = [
  { kind: 'Cluster', metric: 'marina_clusters', help: 'Clusters by status.phase (Provisioning, Ready, Degraded, Failed, Deleting)' },
  { kind: 'Machine', metric: 'marina_machines', help: 'Machines by status.phase (Pending, Provisioning, Running, Failed, Deleting)' },
] as const;

const phaseOf = (obj: Resource): string => (obj.status as { phase?: string } | undefined)?.phase ?? 'Pending';

export class Inventory {
  private readonly watches: Watch[] = [];

  private constructor() {}

  static async start(store: Store, registry: Registry): Promise<Inventory> {
    const inv = new Inventory();
    for (const { kind, metric, help } of KINDS) {
      const phases = new Map<string, string>();
      const key = (o: Resource) => `${o.metadata.project ?? ''}/${o.metadata.name}`;
      new Gauge({
        name: metric,
        help,
        labelNames: ['phase'],
        registers: [registry],
        collect() {
          this.reset();
          const counts = new Map<string, number>();
          for (const p of phases.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
          for (const [phase, n] of counts) this.set({ phase }, n);
        },
      });
      let cont: string | undefined;
      let rv: string | undefined;
      do {
        const page = await store.list(kind, { limit: 500, continue: cont });
        rv ??= page.resourceVersion;
        for (const o of page.items) phases.set(key(o), phaseOf(o));
        cont = page.continue;
      } while (cont);
      inv.watches.push(
        store.watch({ kind, resourceVersion: rv }, (ev) => {
          if (ev.type === 'DELETED') phases.delete(key(ev.object));
          else phases.set(key(ev.object), phaseOf(ev.object));
        }),
      );
    }
    return inv;
  }

  stop(): void {
    for (const w of this.watches) w.stop();
  }
}
