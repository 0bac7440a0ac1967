// The Operation framework: an operation type is an ordered list of named steps (the reconciler's
// phases), each of which moves the cluster one stage on and records what it did in its step's
// `record`, so that running it again after a crash of Marina at any point finds its own work and
// carries on instead of doing it twice. The reconciler (./controller.ts) persists every step's
// state before and after it runs; a new type (Upgrade, RotateCertificates, a rolling update) is a
// new OperationDefinition registered in ./index.ts.
import type { Logger } from 'pino';
import type { Cluster } from '../api/kinds.js';
import type { Operation, OperationType } from '../api/operations.js';
import type { ClusterConnections } from '../clusteraccess/access.js';
import type { ClusterSecrets } from '../clusteraccess/secrets.js';
import type { AlertSink } from '../alerts/manager.js';
import type { ProviderRegistry } from '../providers/contract.js';
import type { Store } from '../store/types.js';
import type { EventBus } from '../events/bus.js';

/** What every step may use. */
export interface OperationDeps {
  store: Store;
  providers: ProviderRegistry;
  connections: ClusterConnections;
  secrets: ClusterSecrets;
  /** Marina's data-encryption key: snapshots are encrypted with it. */
  encryptionKey: Buffer;
  /** Marina's data directory: the default backup target and the operations' work files live there. */
  dataDir: string;
  events: EventBus;
  alerts?: AlertSink;
  /** Kubernetes version of clusters that name none. */
  defaultKubernetesVersion: string;
  /** How long a step may keep waiting before the operation fails (default 15 min); tests shrink it. */
  stepTimeoutMs?: number;
  /** How often a waiting step looks again (default 2 s). */
  pollMs?: number;
}

/** What a step sees: the operation, its cluster, its own record, and the reconcile's context. */
export interface StepScope {
  readonly op: Operation;
  readonly cluster: Cluster;
  readonly deps: OperationDeps;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** This step's record from earlier runs (mutable: what is put here is persisted with the step). */
  readonly record: Record<string, unknown>;
  /** Records of the steps before this one, by step name. */
  readonly records: Readonly<Record<string, Record<string, unknown>>>;
  /** Adds to the operation's result (e.g. the snapshot's name). */
  result(key: string, value: string): void;
}

/**
 * A step's outcome: done (go on with the next step), skip (nothing to do for this operation, e.g.
 * the second phase of a rotation that has none; recorded Skipped), wait (look again; `message`
 * says for what), or fail (terminal: the operation ends Failed with this message). A step that
 * throws is retried on the next look, until its timeout.
 */
export type StepOutcome = { done: true; message?: string } | { skip: string } | { wait: true; message: string; afterMs?: number } | { fail: string };

export interface StepDefinition {
  readonly name: string;
  /** Taking it puts (part of) the cluster out of service: an operation cannot be cancelled from here on. */
  readonly disruptive?: boolean;
  /** Overrides the deps' step timeout. */
  readonly timeoutMs?: number;
  run(sc: StepScope): Promise<StepOutcome>;
}

export interface OperationDefinition {
  readonly type: OperationType;
  /** Whether one may run while another disruptive operation of the cluster runs (see DISRUPTIVE_TYPES). */
  readonly steps: readonly StepDefinition[];
  /**
   * After a failure or a cancel: bring back what can be brought back, and say in what state the
   * cluster is now (appended to the operation's message). Best effort: must not throw.
   */
  cleanup?(sc: Omit<StepScope, 'record' | 'result'>, why: 'failed' | 'cancelled'): Promise<string | undefined>;
}

export const done = (message?: string): StepOutcome => ({ done: true, ...(message ? { message } : {}) });
export const skip = (message: string): StepOutcome => ({ skip: message });
export const wait = (message: string, afterMs?: number): StepOutcome => ({ wait: true, message, ...(afterMs !== undefined ? { afterMs } : {}) });
export const fail = (message: string): StepOutcome => ({ fail: message });
