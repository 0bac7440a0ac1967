// `marina describe`: one object, for people. Metadata, a spec summary, status and conditions.
import { stringify as toYaml } from 'yaml';
import type { Condition, Resource } from '../api/meta.js';
import { age, channelEndpoint, formatTable } from './output.js';

type Rec = Record<string, unknown>;

export interface DescribeExtras {
  /** Machines of a Cluster (listed separately by the caller). */
  machines?: Resource[];
  now?: number;
}

export function describeResource(obj: Resource, extras: DescribeExtras = {}): string {
  const now = extras.now ?? Date.now();
  const m = obj.metadata;
  const spec = (obj.spec ?? {}) as Rec;
  const status = (obj.status ?? {}) as Rec;
  const out: string[] = [];
  const field = (label: string, value: unknown, indent = 0) => {
    out.push(`${' '.repeat(indent)}${(label + ':').padEnd(Math.max(20 - indent, label.length + 2))}${value === undefined || value === '' ? '<none>' : String(value)}`);
  };

  field('Name', m.name);
  field('Kind', obj.kind);
  if (m.project) field('Project', m.project);
  field('Labels', kv(m.labels));
  field('Annotations', kv(m.annotations));
  field('UID', m.uid);
  field('Resource Version', m.resourceVersion);
  const observed = status.observedGeneration;
  field('Generation', m.generation === undefined ? undefined : `${m.generation}${observed !== undefined ? ` (observed ${String(observed)})` : ''}`);
  field('Created', m.creationTimestamp ? `${m.creationTimestamp} (${age(m.creationTimestamp, now)} ago)` : undefined);
  if (m.deletionTimestamp) field('Deleting Since', `${m.deletionTimestamp} (${age(m.deletionTimestamp, now)} ago)`);
  field('Finalizers', m.finalizers && m.finalizers.length > 0 ? m.finalizers.join(', ') : undefined);

  out.push('Spec:');
  out.push(...specLines(obj.kind, spec));

  const { conditions, ...rest } = status as { conditions?: Condition[] } & Rec;
  delete rest.observedGeneration;
  out.push('Status:');
  out.push(...statusLines(obj.kind, rest));

  out.push('Conditions:');
  if (!conditions || conditions.length === 0) out.push('  <none>');
  else out.push(indent(formatConditions(conditions, now), 2));

  if (extras.machines) {
    out.push('Machines:');
    if (extras.machines.length === 0) out.push('  <none>');
    else {
      out.push(
        indent(
          formatTable(
            ['NAME', 'POOL', 'PHASE', 'ADDRESS', 'NODE', 'AGE'],
            extras.machines.map((mc) => {
              const s = (mc.spec ?? {}) as Rec;
              const st = (mc.status ?? {}) as Rec;
              return [mc.metadata.name, String(s.pool ?? ''), String(st.phase ?? '<none>'), String(st.address ?? '<none>'), String(st.nodeName ?? '<none>'), age(mc.metadata.creationTimestamp, now)];
            }),
          ),
          2,
        ),
      );
    }
  }
  return out.join('\n').replace(/\n+$/, '') + '\n';
}

export function formatConditions(conditions: Condition[], now: number = Date.now()): string {
  return formatTable(
    ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
    conditions.map((c) => [c.type, c.status, c.reason || '<none>', c.lastTransitionTime ? age(c.lastTransitionTime, now) : '<unknown>', oneLine(c.message ?? '')]),
  );
}

function specLines(kind: string, spec: Rec): string[] {
  switch (kind) {
    case 'Cluster': {
      const lines = [
        row('Provider', spec.provider ?? 'local (default)'),
        row('Kubernetes Version', spec.kubernetesVersion ?? '<default>'),
      ];
      const net = (spec.network ?? {}) as Rec;
      lines.push(row('Pod CIDR', net.podCIDR ?? '10.244.0.0/16 (default)'));
      lines.push(row('Service CIDR', net.serviceCIDR ?? '10.96.0.0/16 (default)'));
      if (net.cni) lines.push(row('CNI', net.cni));
      const pools = (spec.nodePools ?? []) as Rec[];
      lines.push('  Node Pools:');
      lines.push(
        indent(
          formatTable(
            ['NAME', 'ROLES', 'REPLICAS', 'MACHINE', 'LABELS', 'TAINTS'],
            pools.map((p) => [
              String(p.name),
              ((p.roles as string[]) ?? []).join(','),
              String(p.replicas),
              kvInline(p.machine as Rec | undefined),
              kvInline(p.labels as Rec | undefined),
              ((p.taints as Rec[] | undefined) ?? []).map((t) => `${String(t.key)}${t.value ? `=${String(t.value)}` : ''}:${String(t.effect)}`).join(',') || '<none>',
            ]),
          ),
          4,
        ),
      );
      return lines;
    }
    case 'Project': {
      const lines: string[] = [];
      if (spec.displayName) lines.push(row('Display Name', spec.displayName));
      const members = (spec.members ?? []) as { user: string; role: string }[];
      lines.push('  Members:');
      if (members.length === 0) lines.push('    <none>');
      else lines.push(indent(formatTable(['USER', 'ROLE'], members.map((mm) => [mm.user, mm.role])), 4));
      return lines;
    }
    case 'Secret': {
      // Never print secret values.
      const data = (spec.data ?? {}) as Record<string, string>;
      const lines = [row('Type', spec.type), '  Data:'];
      const keys = Object.keys(data).sort();
      if (keys.length === 0) lines.push('    <none>');
      for (const k of keys) lines.push(`    ${k}: ${Buffer.byteLength(data[k] ?? '', 'utf8')} bytes`);
      return lines;
    }
    case 'NotificationChannel': {
      // The URL's path often is the secret (Slack): `-o yaml` shows it to those who may read it.
      const { url, ...rest } = spec;
      return [row('Url', channelEndpoint(url)), ...(Object.keys(rest).length > 0 ? fieldLines(rest) : [])];
    }
    default:
      return fieldLines(spec);
  }
}

function statusLines(kind: string, status: Rec): string[] {
  if (Object.keys(status).length === 0) return ['  <none>'];
  if (kind === 'Cluster') {
    const { pools, certificates, ...rest } = status as { pools?: Rec[]; certificates?: Rec[] } & Rec;
    const lines = Object.keys(rest).length > 0 ? fieldLines(rest) : [];
    if (pools && pools.length > 0) {
      lines.push('  Pools:');
      lines.push(indent(formatTable(['NAME', 'READY', 'REPLICAS'], pools.map((p) => [String(p.name), String(p.readyReplicas ?? 0), String(p.replicas ?? 0)])), 4));
    }
    if (certificates && certificates.length > 0) {
      lines.push('  Certificates:');
      lines.push(indent(formatTable(['NAME', 'NOT AFTER'], certificates.map((c) => [String(c.name), String(c.notAfter)])), 4));
    }
    return lines;
  }
  if (kind === 'Alert') {
    const { notifications, ...rest } = status as { notifications?: Rec[] } & Rec;
    const lines = Object.keys(rest).length > 0 ? fieldLines(rest) : [];
    lines.push('  Notifications:');
    if (!notifications || notifications.length === 0) lines.push('    <none>');
    else {
      lines.push(
        indent(
          formatTable(
            ['CHANNEL', 'STATE', 'OUTCOME', 'ATTEMPTS', 'AT', 'NEXT', 'ERROR'],
            notifications.map((n) => [
              String(n.channel),
              String(n.state),
              String(n.outcome),
              String(n.attempts),
              String(n.at),
              n.nextAttemptAt ? String(n.nextAttemptAt) : '-',
              oneLine(String(n.error ?? '')) || '-',
            ]),
          ),
          4,
        ),
      );
    }
    return lines;
  }
  if (kind === 'Machine') {
    const { providerStatus, ...rest } = status;
    const lines = fieldLines(rest);
    if (providerStatus !== undefined) lines.push(row('Provider Status', kvInline(providerStatus as Rec)));
    return lines;
  }
  return fieldLines(status);
}

/** `kubernetesVersion` → `Kubernetes Version`. */
export function titleCase(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[-_]/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1).replace(/ ([a-z])/g, (_m, c: string) => ` ${c.toUpperCase()}`);
}

/** Scalars as `  Label: value` rows; objects and arrays as indented YAML under their label. */
function fieldLines(v: Rec): string[] {
  if (Object.keys(v).length === 0) return ['  <none>'];
  const lines: string[] = [];
  for (const [k, val] of Object.entries(v)) {
    if (val !== null && typeof val === 'object') {
      lines.push(`  ${titleCase(k)}:`);
      lines.push(...toYaml(val).trimEnd().split('\n').map((l) => `    ${l}`));
    } else {
      lines.push(row(titleCase(k), val));
    }
  }
  return lines;
}

function row(label: string, value: unknown): string {
  return `  ${(label + ':').padEnd(22)}${value === undefined || value === '' ? '<none>' : String(value)}`;
}

function kv(m: Record<string, string> | undefined): string | undefined {
  if (!m || Object.keys(m).length === 0) return undefined;
  return Object.entries(m).map(([k, v]) => `${k}=${v}`).join(', ');
}

function kvInline(m: Rec | undefined): string {
  if (!m || Object.keys(m).length === 0) return '<none>';
  return Object.entries(m)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(',');
}

function indent(text: string, n: number): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 120 ? `${t.slice(0, 117)}...` : t;
}
