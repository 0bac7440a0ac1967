// The catalog in memory: every AddonDefinition, kept current by a store watch (the store notifies
// synchronously, so a definition is visible here as soon as its create returns), plus each
// definition parsed and compiled once per revision. Admission (synchronous, at the API edge) and
// the add-on controllers read it.
import type { ValidateFunction } from 'ajv';
import semver from 'semver';
import type { FieldCause } from '../api/errors.js';
import type { AddonDefinition, AddonDefinitionSpec } from '../api/addons.js';
import type { Store, Watch } from '../store/types.js';
import { checkPlaceholders, parseManifests, type ParsedTemplate } from './template.js';
import { compileValuesSchema } from './values.js';

export interface PreparedDefinition {
  definition: AddonDefinition;
  template: ParsedTemplate;
  validate: ValidateFunction;
}

/** Parses the manifests and compiles the values schema; causes name the offending spec fields. */
export function prepareDefinition(spec: AddonDefinitionSpec): { prepared?: Omit<PreparedDefinition, 'definition'>; causes: FieldCause[] } {
  const causes: FieldCause[] = [];
  const compiled = compileValuesSchema(spec.valuesSchema);
  if (!compiled.ok) causes.push({ field: 'spec.valuesSchema', message: compiled.message });
  const { template, causes: parseCauses } = parseManifests(spec.manifests);
  causes.push(...parseCauses);
  if (parseCauses.length === 0 && compiled.ok) causes.push(...checkPlaceholders(template.placeholders, spec.valuesSchema));
  if (causes.length > 0 || !compiled.ok) return { causes };
  return { prepared: { template, validate: compiled.validate }, causes };
}

export class DefinitionIndex {
  /** addon → version → definition */
  private readonly byAddon = new Map<string, Map<string, AddonDefinition>>();
  private readonly prepared = new Map<string, { rv: string; result: PreparedDefinition | string }>();
  private readonly listeners = new Set<(def: AddonDefinition) => void>();
  private watch?: Watch;

  /** Lists every definition and follows changes from that list's revision. */
  static async start(store: Store): Promise<DefinitionIndex> {
    const index = new DefinitionIndex();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await store.list('AddonDefinition', { limit: 500, continue: cont });
      rv ??= page.resourceVersion;
      for (const d of page.items) index.note(d as AddonDefinition, false);
      cont = page.continue;
    } while (cont);
    index.watch = store.watch({ kind: 'AddonDefinition', resourceVersion: rv }, (ev) => index.note(ev.object as AddonDefinition, ev.type === 'DELETED'));
    return index;
  }

  stop(): void {
    this.watch?.stop();
    this.watch = undefined;
  }

  /** Called with every changed or deleted definition. */
  onChange(listener: (def: AddonDefinition) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(addon: string, version: string): AddonDefinition | undefined {
    return this.byAddon.get(addon)?.get(version);
  }

  /** Versions of an add-on, newest first (semver precedence). */
  versions(addon: string): string[] {
    return [...(this.byAddon.get(addon)?.keys() ?? [])].sort(semver.rcompare);
  }

  newest(addon: string): AddonDefinition | undefined {
    const v = this.versions(addon)[0];
    return v === undefined ? undefined : this.get(addon, v);
  }

  addons(): string[] {
    return [...this.byAddon.keys()].sort();
  }

  /** The parsed and compiled definition, or why it cannot be used (cached per revision). */
  prepare(def: AddonDefinition): PreparedDefinition | string {
    const key = def.metadata.name;
    const rv = def.metadata.resourceVersion ?? '';
    const hit = this.prepared.get(key);
    if (hit && hit.rv === rv) return hit.result;
    const { prepared, causes } = prepareDefinition(def.spec);
    const result = prepared ? { ...prepared, definition: def } : causes.map((c) => `${c.field}: ${c.message}`).join('; ');
    this.prepared.set(key, { rv, result });
    return result;
  }

  private note(def: AddonDefinition, deleted: boolean): void {
    const { addon, version } = def.spec;
    if (deleted) {
      this.byAddon.get(addon)?.delete(version);
      if (this.byAddon.get(addon)?.size === 0) this.byAddon.delete(addon);
      this.prepared.delete(def.metadata.name);
    } else {
      let versions = this.byAddon.get(addon);
      if (!versions) this.byAddon.set(addon, (versions = new Map()));
      versions.set(version, def);
    }
    for (const l of this.listeners) l(def);
  }
}
