// The add-on rules the API applies before anything is stored (AddonAdmission, wired into
// ValidationContext.addons): definitions whose manifests do not parse or whose placeholders name
// unknown values are refused when they are created, not when a cluster applies them; Addon values
// are checked against the definition's JSON Schema and every violation names its field
// (`spec.values.replicas`).
import {
  ADDON_POLICY_NAME,
  definitionName,
  type Addon,
  type AddonAdmission,
  type AddonDefinition,
  type AddonPolicy,
} from '../api/addons.js';
import type { FieldCause } from '../api/errors.js';
import { prepareDefinition, type DefinitionIndex } from './definitions.js';
import { clusterContext, renderAddon, RenderError } from './render.js';
import { resolveValues } from './values.js';

/** A cluster for trial renders of new definitions (what every cluster has). */
const SAMPLE_CLUSTER = clusterContext({ metadata: { name: 'sample' }, spec: { nodePools: [] } }, 'v1.36.0');

export function addonAdmission(index: DefinitionIndex): AddonAdmission {
  return {
    definition: (obj, old) => checkDefinition(obj, old),
    addon: (obj, old) => checkAddon(index, obj, old),
    policy: (obj) => checkPolicy(index, obj),
  };
}

function checkDefinition(obj: AddonDefinition, old: AddonDefinition | undefined): FieldCause[] {
  const spec = obj.spec;
  const causes: FieldCause[] = [];
  const want = definitionName(spec.addon, spec.version);
  if (obj.metadata.name !== want) causes.push({ field: 'metadata.name', message: `must be ${JSON.stringify(want)} (spec.addon + "-v" + spec.version with dots as dashes)` });
  if (old && (old.spec.addon !== spec.addon || old.spec.version !== spec.version)) {
    causes.push({ field: 'spec.version', message: 'spec.addon and spec.version are immutable; create a new definition for a new version' });
  }
  (spec.dependencies ?? []).forEach((d, i) => {
    if (d.addon === spec.addon) causes.push({ field: `spec.dependencies[${i}].addon`, message: 'an add-on cannot depend on itself' });
  });
  (spec.health?.rules ?? []).forEach((r, i) => {
    if (r.ignore && r.condition) causes.push({ field: `spec.health.rules[${i}].condition`, message: 'a rule either ignores objects or names a condition, not both' });
  });
  const { prepared, causes: prep } = prepareDefinition(spec);
  causes.push(...prep);
  if (!prepared) return causes;
  // The defaults must satisfy the schema on their own unless the schema requires values.
  const defaults = resolveValues(prepared.validate, {}, 'values');
  const requiresValues = defaults.causes.some((c) => /must have required property/.test(c.message));
  if (defaults.causes.length > 0 && !requiresValues) {
    causes.push({ field: 'spec.valuesSchema', message: `its defaults do not satisfy it: ${defaults.causes.map((c) => `${c.field}: ${c.message}`).join('; ')}` });
  } else if (defaults.causes.length === 0) {
    // A trial render with the defaults catches what only shows after substitution (empty names...).
    try {
      renderAddon({ ...prepared, definition: obj }, {}, SAMPLE_CLUSTER);
    } catch (err) {
      if (!(err instanceof RenderError)) throw err;
      causes.push({ field: 'spec.manifests', message: `rendering with the default values fails: ${err.message}` });
    }
  }
  return causes;
}

/** Where a definition is missing: the add-on (unknown) or its version (others exist). */
function missingDefinition(index: DefinitionIndex, addon: string, version: string | undefined, at: string): FieldCause {
  const versions = index.versions(addon);
  if (versions.length === 0) {
    const known = index.addons();
    return { field: `${at}.addon`, message: `no add-on ${JSON.stringify(addon)} in the catalog${known.length ? `; available: ${known.join(', ')}` : ''}` };
  }
  return { field: `${at}.version`, message: `no version ${JSON.stringify(version)} of ${addon}; available: ${versions.join(', ')}` };
}

function checkAddon(index: DefinitionIndex, obj: Addon, old: Addon | undefined): FieldCause[] {
  const spec = obj.spec;
  const causes: FieldCause[] = [];
  if (old && old.spec.cluster !== spec.cluster) causes.push({ field: 'spec.cluster', message: 'is immutable; enable the add-on on the other cluster instead' });
  if (old && old.spec.addon !== spec.addon) causes.push({ field: 'spec.addon', message: 'is immutable; disable this add-on and enable the other one' });
  const def = index.get(spec.addon, spec.version);
  if (!def) return [...causes, missingDefinition(index, spec.addon, spec.version, 'spec')];
  const prepared = index.prepare(def);
  if (typeof prepared === 'string') return [...causes, { field: 'spec.version', message: `definition ${def.metadata.name} is unusable: ${prepared}` }];
  causes.push(...resolveValues(prepared.validate, spec.values, 'spec.values').causes);
  return causes;
}

function checkPolicy(index: DefinitionIndex, obj: AddonPolicy): FieldCause[] {
  const causes: FieldCause[] = [];
  if (obj.metadata.name !== ADDON_POLICY_NAME) causes.push({ field: 'metadata.name', message: `the add-on policy is a single object named ${JSON.stringify(ADDON_POLICY_NAME)}` });
  const seen = new Set<string>();
  obj.spec.defaults.forEach((d, i) => {
    const at = `spec.defaults[${i}]`;
    if (seen.has(d.addon)) causes.push({ field: `${at}.addon`, message: `${d.addon} is listed twice` });
    seen.add(d.addon);
    const def = d.version ? index.get(d.addon, d.version) : index.newest(d.addon);
    if (!def) {
      causes.push(missingDefinition(index, d.addon, d.version, at));
      return;
    }
    const prepared = index.prepare(def);
    if (typeof prepared === 'string') {
      causes.push({ field: `${at}.version`, message: `definition ${def.metadata.name} is unusable: ${prepared}` });
      return;
    }
    causes.push(...resolveValues(prepared.validate, d.values, `${at}.values`).causes);
  });
  return causes;
}
