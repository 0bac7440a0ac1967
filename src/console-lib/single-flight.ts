// Nothing is sent twice by a double click: a submit runs only when no other submit of the same
// form is in flight. The button is disabled too, but a disabled attribute arrives only with the
// next render, and a double click's second click can come before it; this guard does not wait.

export class SingleFlight {
  private running = false;
  private readonly listeners = new Set<(busy: boolean) => void>();

  get busy(): boolean {
    return this.running;
  }

  /** Runs `fn` unless a run is in flight; answers `{ ran: false }` without calling it otherwise. */
  async run<T>(fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    if (this.running) return { ran: false };
    this.set(true);
    try {
      return { ran: true, value: await fn() };
    } finally {
      this.set(false);
    }
  }

  onChange(listener: (busy: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(busy: boolean): void {
    this.running = busy;
    for (const l of [...this.listeners]) l(busy);
  }
}
