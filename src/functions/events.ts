// The matching of subscriptions (Function and Pipeline event triggers) to Marina's platform events
// (src/events) and to external CloudEvents.
import type { CloudEvent, EventFilter } from '../api/functions.js';

const prefixMatch = (pattern: string, value: string | undefined) =>
  value !== undefined && (pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : value === pattern);

/** Does `event` pass `filter`? Every given criterion must hold; an empty filter matches everything. */
export function matchesFilter(filter: EventFilter, event: CloudEvent): boolean {
  if (filter.types && !filter.types.some((t) => prefixMatch(t, event.type))) return false;
  if (filter.source !== undefined && !event.source.startsWith(filter.source)) return false;
  if (filter.subject !== undefined && !prefixMatch(filter.subject, event.subject)) return false;
  for (const [k, v] of Object.entries(filter.extensions ?? {})) if (String(event[k]) !== v) return false;
  return true;
}
