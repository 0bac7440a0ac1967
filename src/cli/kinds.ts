// Kind names as users type them: singular, plural, short forms, any case.
import { RESOURCES, type ResourceRef } from '../client/index.js';
import { CliError, EXIT } from './errors.js';

const SHORT: Record<string, string[]> = {
  User: ['usr'],
  Project: ['proj'],
  Secret: ['sec'],
  Cluster: ['cl'],
  NodePool: ['np', 'pool', 'pools'],
  Machine: ['m', 'mach'],
  Alert: ['al'],
  NotificationChannel: ['channel', 'channels', 'nc'],
  Operation: ['op', 'ops'],
  Snapshot: ['snap', 'snaps'],
  BackupTarget: ['bt', 'target', 'targets'],
  Function: ['fn'],
  Pipeline: ['pl'],
  EventSource: ['es'],
  AddonDefinition: ['addondef', 'addondefs', 'ad'],
  AddonPolicy: ['addonpolicy'],
  Addon: [],
};

const ALIASES = new Map<string, ResourceRef>();
for (const ref of RESOURCES) {
  for (const alias of [ref.kind, ref.plural, ...(SHORT[ref.kind] ?? [])]) ALIASES.set(alias.toLowerCase(), ref);
}

/** `cl` / `clusters` / `Cluster` → the Cluster ref; unknown → usage error listing what is known. */
export function resolveKind(input: string): ResourceRef {
  const ref = ALIASES.get(input.trim().toLowerCase());
  if (!ref) {
    const known = RESOURCES.map((r) => [r.kind.toLowerCase(), ...(SHORT[r.kind] ?? [])].join('/')).join(', ');
    throw new CliError(`unknown resource type ${JSON.stringify(input)}; known: ${known}`, EXIT.usage);
  }
  return ref;
}

/** Every accepted spelling of a kind (for help texts and tests). */
export function aliasesOf(kind: string): string[] {
  return [...ALIASES.entries()].filter(([, r]) => r.kind === kind).map(([a]) => a);
}

/**
 * `get KIND [NAME...]` also accepts `KIND/NAME` (as printed by `-o name`): returns the kind and the
 * names given either way.
 */
export function splitKindArgs(kindArg: string, names: string[]): { ref: ResourceRef; names: string[] } {
  const slash = kindArg.indexOf('/');
  if (slash > 0) {
    const ref = resolveKind(kindArg.slice(0, slash));
    const extra = names.map((n) => {
      const s = n.indexOf('/');
      if (s < 0) return n;
      if (resolveKind(n.slice(0, s)).kind !== ref.kind) throw new CliError(`cannot mix kinds in one command: ${kindArg} and ${n}`, EXIT.usage);
      return n.slice(s + 1);
    });
    return { ref, names: [kindArg.slice(slash + 1), ...extra] };
  }
  return { ref: resolveKind(kindArg), names };
}

/** `cluster/demo` as printed by `-o name` and by apply/delete. */
export function objectRef(kind: string, name: string): string {
  return `${kind.toLowerCase()}/${name}`;
}
