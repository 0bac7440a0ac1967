// Runs a set of controllers as one unit: the server starts it after the store is open and stops
// it (gracefully, in parallel) on SIGTERM before closing the store.
import type { Controller } from './controller.js';

export class ControllerManager {
  private readonly list: Controller[] = [];
  private started = false;
  private stopPromise?: Promise<void>;

  constructor(controllers: Controller[] = []) {
    for (const c of controllers) this.add(c);
  }

  /** Registers a controller; names must be unique. Only before start(). */
  add(controller: Controller): this {
    if (this.started) throw new Error('controllers must be added before the manager starts');
    if (this.list.some((c) => c.name === controller.name)) throw new Error(`duplicate controller name ${controller.name}`);
    this.list.push(controller);
    return this;
  }

  get controllers(): readonly Controller[] {
    return this.list;
  }

  get(name: string): Controller | undefined {
    return this.list.find((c) => c.name === name);
  }

  /** Starts every controller. If one fails to start, the others are stopped and the error rethrown. */
  async start(): Promise<void> {
    if (this.started) throw new Error('controller manager already started');
    this.started = true;
    const results = await Promise.allSettled(this.list.map((c) => c.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.stop();
      throw failed.reason;
    }
  }

  /** Stops every controller in parallel, waiting for in-flight reconciles. Idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= Promise.all(this.list.map((c) => c.stop())).then(() => undefined);
    return this.stopPromise;
  }
}
