// Alerting: Alert objects (opened and resolved by the AlertManager on behalf of evaluators) and
// their delivery to NotificationChannels (the notifier controller).
//
//   const alerting = await startAlerting({ store, logger, metrics });
//   await alerting.manager.sync({ project, cluster, source: 'health' }, [
//     { rule: 'NodeConditionUnhealthy', severity: 'warning', labels: { node: 'w-1', condition: 'Ready' },
//       summary: 'Node w-1 is NotReady', description: 'since 2m: kubelet stopped posting status' },
//   ]);
//   ...
//   await alerting.stop();
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Alert } from '../api/kinds.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import { Controller } from '../runtime/controller.js';
import { RuntimeMetrics } from '../runtime/metrics.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { AlertManager, type AlertManagerOptions } from './manager.js';
import { AlertNotifier, type NotifierOptions } from './notifier.js';

export * from './fingerprint.js';
export * from './manager.js';
export * from './notifier.js';
export * from './payload.js';

export interface AlertingDeps {
  store: Store;
  logger?: Logger;
  /** Registry for the controller's and the notifier's metrics. */
  metrics?: Registry;
  /** Marina's base URL for backlinks in notifications; a function is read at send time. */
  externalURL?: string | (() => string | undefined);
  /** Retry, timeout and retention settings of the notifier (tests shrink them). */
  notifier?: Omit<NotifierOptions, 'store' | 'logger' | 'metrics' | 'externalURL'>;
  /** Concurrent deliveries (alerts at a time); default 4. */
  workers?: number;
  /** Full relist period of the notifier (default 5 min). */
  resyncPeriodMs?: number;
  /** See AlertManagerOptions.evaluatedRefreshMs. */
  evaluatedRefreshMs?: number;
  /** See AlertManagerOptions.events. */
  events?: AlertManagerOptions['events'];
}

export interface RunningAlerting {
  /** For evaluators: sync / raise / resolve alerts. */
  manager: AlertManager;
  notifier: AlertNotifier;
  controller: Controller;
  stop(): Promise<void>;
}

/**
 * Firing alerts per project, so that a new or changed channel wakes exactly the alerts it may
 * now owe a notification (a resolved alert never does: it notifies only channels that got its
 * firing notification).
 */
class FiringIndex {
  private readonly byProject = new Map<string, Set<string>>();
  note(a: Alert): void {
    const project = a.metadata.project ?? '';
    let set = this.byProject.get(project);
    if (a.status?.state === 'firing') {
      if (!set) this.byProject.set(project, (set = new Set()));
      set.add(a.metadata.name);
    } else {
      this.forget({ kind: 'Alert', project, name: a.metadata.name });
    }
  }
  forget(key: ObjectKey): void {
    const set = this.byProject.get(key.project);
    set?.delete(key.name);
    if (set && set.size === 0) this.byProject.delete(key.project);
  }
  keys(project: string): ObjectKey[] {
    return [...(this.byProject.get(project) ?? [])].map((name) => ({ kind: 'Alert', project, name }));
  }
}

export async function startAlerting(deps: AlertingDeps): Promise<RunningAlerting> {
  const log = deps.logger ?? pino({ level: 'silent' });
  const manager = new AlertManager({ store: deps.store, logger: log, evaluatedRefreshMs: deps.evaluatedRefreshMs, events: deps.events });
  const notifier = new AlertNotifier({ ...deps.notifier, store: deps.store, logger: log, metrics: deps.metrics, externalURL: deps.externalURL });

  const firing = new FiringIndex();
  notifier.onGone = (key) => firing.forget(key);
  const channelGenerations = new Map<string, string>();
  const signature = (c: Resource) => `${c.metadata.uid ?? ''}/${c.metadata.generation ?? 0}`;
  const channelKey = (c: Resource) => `${c.metadata.project ?? ''}/${c.metadata.name}`;
  for (const a of await typed(deps.store, 'Alert').list()) firing.note(a);
  for (const c of await typed(deps.store, 'NotificationChannel').list()) channelGenerations.set(channelKey(c), signature(c));

  const controller = new Controller({
    name: 'alert-notifier',
    kind: 'Alert',
    store: deps.store,
    reconciler: notifier,
    workers: deps.workers ?? 4,
    resyncPeriodMs: deps.resyncPeriodMs,
    stopGracePeriodMs: 15_000,
    logger: log,
    metrics: deps.metrics ? new RuntimeMetrics(deps.metrics) : undefined,
    watches: [
      { kind: 'Alert', mapTo: (a) => (firing.note(a), []) },
      {
        // A new channel, or a changed spec (not the delivery statistics in its status), wakes the
        // project's firing alerts.
        kind: 'NotificationChannel',
        mapTo: (c) => {
          const k = channelKey(c);
          const sig = signature(c);
          if (channelGenerations.get(k) === sig) return [];
          channelGenerations.set(k, sig);
          return firing.keys(c.metadata.project ?? '');
        },
      },
    ],
  });
  await controller.start();
  log.info('alert notifier started');
  return {
    manager,
    notifier,
    controller,
    stop: () => controller.stop(),
  };
}
