// How simulated calls fail, in the shapes the real clients fail in: a dead process refuses the
// connection at once; a host cut off by a partition (or an agent that hangs) answers nothing, so the
// caller waits for its own timeout.
import { setTimeout as sleep } from 'node:timers/promises';

/** A connection refused (what fetch and node:https report for a dead process on a live host). */
export function refused(target: string): Error {
  return new Error(`connect ECONNREFUSED ${target}`, { cause: { code: 'ECONNREFUSED' } });
}

/** Waits `timeoutMs` (or until `signal` aborts), then throws the TimeoutError a real client would. */
export async function noAnswer(timeoutMs: number, signal?: AbortSignal): Promise<never> {
  await sleep(timeoutMs, undefined, signal ? { signal } : {});
  throw new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError');
}

/** One round trip: `latencyMs`, or the next turn of the event loop (a real call never answers synchronously). */
export function roundTrip(latencyMs: number): Promise<void> {
  return latencyMs > 0 ? sleep(latencyMs).then(() => undefined) : new Promise((resolve) => setImmediate(resolve));
}
