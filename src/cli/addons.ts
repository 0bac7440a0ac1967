// The add-on views and inputs of `marina addon ...`, as pure functions: values from --set and
// files, the tables of enabled add-ons and of the catalog, the description of one add-on.
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import type { Addon, AddonDefinition, AddonPolicy } from '../api/addons.js';
import { getCondition } from '../api/conditions.js';
import type { Condition } from '../api/meta.js';
import { AddonCondition } from '../api/wellknown.js';
import { formatConditions } from './describe.js';
import { CliError, EXIT } from './errors.js';
import { age, formatTable } from './output.js';

type Values = Record<string, unknown>;

/** `a.b=3` → `{ a: { b: 3 } }` merged into `into`; the value is read as YAML (3, true, "x", [a, b]). */
export function applySet(into: Values, expr: string): Values {
  const eq = expr.indexOf('=');
  if (eq <= 0) throw new CliError(`malformed --set ${JSON.stringify(expr)}; expected key=value, e.g. replicas=3`, EXIT.usage);
  const path = expr.slice(0, eq).split('.');
  if (path.some((p) => p === '')) throw new CliError(`malformed --set key ${JSON.stringify(expr.slice(0, eq))}`, EXIT.usage);
  let value: unknown;
  try {
    value = parseYaml(expr.slice(eq + 1));
  } catch {
    value = expr.slice(eq + 1);
  }
  const out = structuredClone(into);
  let cur: Values = out;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    cur[key] = next !== null && typeof next === 'object' && !Array.isArray(next) ? next : {};
    cur = cur[key] as Values;
  }
  cur[path.at(-1)!] = value ?? null;
  return out;
}

/** Values file (YAML or JSON): must be a mapping. */
export function parseValuesFile(text: string, name: string): Values {
  let v: unknown;
  try {
    v = parseYaml(text);
  } catch (e) {
    throw new CliError(`${name}: ${(e as Error).message}`, EXIT.invalid);
  }
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new CliError(`${name}: values must be a mapping`, EXIT.invalid);
  return v as Values;
}

/** The newest version of `addon` in the catalog, or a not-found error naming what exists. */
export function newestVersion(definitions: AddonDefinition[], addon: string): string {
  const versions = definitions.filter((d) => d.spec.addon === addon).map((d) => d.spec.version).sort(semver.rcompare);
  if (versions.length === 0) {
    const known = [...new Set(definitions.map((d) => d.spec.addon))].sort();
    throw new CliError(`no add-on ${JSON.stringify(addon)} in the catalog; available: ${known.join(', ') || 'none'}`, EXIT.notFound);
  }
  return versions[0]!;
}

const condition = (a: Addon, type: string): Condition | undefined => getCondition(a.status?.conditions, type);

/** `True`, `False (Reason)`, or `-`. */
function condCell(c: Condition | undefined): string {
  if (!c) return '-';
  return c.status === 'True' ? 'True' : `${c.status}${c.reason ? ` (${c.reason})` : ''}`;
}

/** Is the add-on at its spec, applied and healthy? */
export function addonSettled(a: Addon): boolean {
  return (
    !a.metadata.deletionTimestamp &&
    a.status?.observedGeneration === a.metadata.generation &&
    condition(a, AddonCondition.Applied)?.status === 'True' &&
    condition(a, AddonCondition.Healthy)?.status === 'True' &&
    a.status?.appliedVersion === a.spec.version
  );
}

export function addonTable(items: Addon[], now = Date.now()): string {
  return formatTable(
    ['CLUSTER', 'ADDON', 'VERSION', 'APPLIED', 'HEALTHY', 'DRIFT', 'NAME', 'AGE'],
    [...items]
      .sort((a, b) => a.spec.cluster.localeCompare(b.spec.cluster) || a.spec.addon.localeCompare(b.spec.addon))
      .map((a) => [
        a.spec.cluster,
        a.spec.addon,
        a.status?.appliedVersion && a.status.appliedVersion !== a.spec.version ? `${a.status.appliedVersion}→${a.spec.version}` : a.spec.version,
        a.metadata.deletionTimestamp ? 'Removing' : condCell(condition(a, AddonCondition.Applied)),
        condCell(condition(a, AddonCondition.Healthy)),
        String(a.status?.driftCorrections ?? 0),
        a.metadata.name,
        age(a.metadata.creationTimestamp, now),
      ]),
  );
}

export function catalogTable(definitions: AddonDefinition[], policy?: AddonPolicy): string {
  const defaults = new Set((policy?.spec.defaults ?? []).map((d) => d.addon));
  const byAddon = new Map<string, AddonDefinition[]>();
  for (const d of definitions) byAddon.set(d.spec.addon, [...(byAddon.get(d.spec.addon) ?? []), d]);
  const rows = [...byAddon.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([addon, defs]) => {
      const sorted = [...defs].sort((a, b) => semver.rcompare(a.spec.version, b.spec.version));
      const description = sorted[0]!.spec.description.replace(/\s+/g, ' ').trim();
      return [addon, sorted.map((d) => d.spec.version).join(','), sorted[0]!.spec.namespace, defaults.has(addon) ? 'yes' : 'no', description.length > 70 ? `${description.slice(0, 67)}...` : description];
    });
  return formatTable(['ADDON', 'VERSIONS', 'NAMESPACE', 'DEFAULT', 'DESCRIPTION'], rows);
}

export function describeAddon(a: Addon, def: AddonDefinition | undefined, now = Date.now()): string {
  const s = a.status ?? {};
  const lines = [
    `Name:               ${a.metadata.name}`,
    `Project:            ${a.metadata.project ?? ''}`,
    `Cluster:            ${a.spec.cluster}`,
    `Add-on:             ${a.spec.addon} ${a.spec.version}${def ? ` (namespace ${def.spec.namespace})` : ' (not in the catalog)'}`,
    `Applied Version:    ${s.appliedVersion ?? '<none>'}`,
    `Last Applied:       ${s.lastAppliedAt ?? '<never>'}`,
    `Drift Corrections:  ${s.driftCorrections ?? 0}${s.lastDriftCorrection ? ` (last ${s.lastDriftCorrection.at}: ${s.lastDriftCorrection.objects.join(', ')})` : ''}`,
    `Created:            ${a.metadata.creationTimestamp ?? ''} (${age(a.metadata.creationTimestamp, now)} ago)`,
  ];
  if (a.metadata.deletionTimestamp) lines.push(`Removing Since:     ${a.metadata.deletionTimestamp}`);
  if (def) lines.push(`Description:        ${def.spec.description.replace(/\s+/g, ' ').trim()}`);
  if (def?.spec.dependencies?.length) lines.push(`Depends On:         ${def.spec.dependencies.map((d) => `${d.addon}${d.minVersion ? ` >= ${d.minVersion}` : ''}`).join(', ')}`);
  lines.push('Values:');
  const values = Object.entries(a.spec.values ?? {});
  if (values.length === 0) lines.push('  <defaults>');
  for (const [k, v] of values) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  lines.push('Conditions:');
  lines.push(s.conditions?.length ? formatConditions(s.conditions, now).trimEnd().replace(/^/gm, '  ') : '  <none>');
  if (s.unhealthy?.length) {
    lines.push('Unhealthy:');
    for (const u of s.unhealthy) lines.push(`  ${u}`);
  }
  lines.push('Objects:');
  const inv = s.inventory ?? [];
  if (inv.length === 0) lines.push('  <none>');
  else lines.push(formatTable(['KIND', 'NAMESPACE', 'NAME'], inv.map((r) => [r.kind, r.namespace ?? '-', r.name])).trimEnd().replace(/^/gm, '  '));
  return lines.join('\n') + '\n';
}
