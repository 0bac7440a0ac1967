// Records the API does not stream (activations, dead letters, pipeline runs, instances) are read
// again every few seconds while a page shows them, and at once after the page changed something.
import { useCallback, useEffect, useRef, useState } from 'react';

export interface Polled<T> {
  data?: T;
  error?: string;
  /** Read again now (after an invoke, a replay, a run). */
  refresh(): void;
}

export function usePolled<T>(load: (signal: AbortSignal) => Promise<T>, key: string, intervalMs = 2_000): Polled<T> {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const data = await loadRef.current(ctl.signal);
        if (!ctl.signal.aborted) setState({ data });
      } catch (err) {
        if (!ctl.signal.aborted) setState((s) => ({ ...s, error: (err as Error).message }));
      }
      if (!ctl.signal.aborted && intervalMs > 0) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [key, tick, intervalMs]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, refresh };
}
