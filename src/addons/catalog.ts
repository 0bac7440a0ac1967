// The certified catalog shipped in the repository (catalog/addons/<addon>/<version>/) and its
// loading into the store at start-up. Layout of one version:
//
//   addon.yaml       description, namespace, valuesSchema, health, dependencies
//   manifests/*.yaml the templated manifests, applied in install order (file order otherwise)
//
// and catalog/policy.yaml the AddonPolicy a new installation starts with (the default set).
//
// Loading never overrides a platform admin: a definition is (re)written only while its stored
// spec is still exactly what the catalog wrote last time (the digest annotation says so); one an
// admin changed, or created under a catalog name, is kept and the catalog's version skipped. The
// policy is created once and then belongs to the admins.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { ADDON_POLICY_NAME, definitionName, type AddonDefinition, type AddonDefinitionSpec, type AddonPolicy } from '../api/addons.js';
import { isApiError } from '../api/errors.js';
import { API_VERSION } from '../api/meta.js';
import { validateObject, type ValidationContext } from '../api/registry.js';
import { typed, type TypedStore } from '../store/typed.js';
import type { Store } from '../store/types.js';

/** dist/src/addons → the repository root's catalog/. */
export const DEFAULT_CATALOG_DIR = fileURLToPath(new URL('../../../catalog', import.meta.url));
export const ANNOTATION_CATALOG_DIGEST = 'addons.marina.dev/catalog-digest';
export const LABEL_SOURCE = 'addons.marina.dev/source';

export interface Catalog {
  definitions: AddonDefinition[];
  policy?: AddonPolicy;
}

const digestOf = (spec: unknown): string => createHash('sha256').update(JSON.stringify(spec)).digest('hex');

const dirs = (dir: string): string[] => readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory()).sort();

function readYaml(path: string): Record<string, unknown> {
  const v = parseYaml(readFileSync(path, 'utf8')) as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${path}: must be a YAML mapping`);
  return v as Record<string, unknown>;
}

/** Reads the catalog directory into objects (not yet validated). */
export function readCatalog(dir: string = DEFAULT_CATALOG_DIR): Catalog {
  const definitions: AddonDefinition[] = [];
  const root = join(dir, 'addons');
  for (const addon of existsSync(root) ? dirs(root) : []) {
    for (const version of dirs(join(root, addon))) {
      const base = join(root, addon, version);
      const meta = readYaml(join(base, 'addon.yaml'));
      const manifestDir = join(base, 'manifests');
      const manifests = readdirSync(manifestDir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((file) => ({ file, content: readFileSync(join(manifestDir, file), 'utf8') }));
      const spec = { ...meta, addon, version, manifests } as AddonDefinitionSpec;
      definitions.push({
        apiVersion: API_VERSION as AddonDefinition['apiVersion'],
        kind: 'AddonDefinition',
        metadata: { name: definitionName(addon, version), labels: { [LABEL_SOURCE]: 'catalog' }, annotations: { [ANNOTATION_CATALOG_DIGEST]: digestOf(spec) } },
        spec,
      });
    }
  }
  const policyPath = join(dir, 'policy.yaml');
  const policy = existsSync(policyPath)
    ? ({ apiVersion: API_VERSION, kind: 'AddonPolicy', metadata: { name: ADDON_POLICY_NAME }, spec: readYaml(policyPath) } as AddonPolicy)
    : undefined;
  return { definitions, ...(policy ? { policy } : {}) };
}

export interface LoadResult {
  created: string[];
  updated: string[];
  /** Catalog definitions not written because a platform admin changed the stored one. */
  keptAdmin: string[];
}

/** Writes one catalog definition unless the stored one is current or an admin's; what was done. */
async function loadDefinition(definitions: TypedStore<AddonDefinition>, def: AddonDefinition): Promise<keyof LoadResult | undefined> {
  const name = def.metadata.name;
  const stored = await definitions.get('', name);
  const digest = def.metadata.annotations![ANNOTATION_CATALOG_DIGEST]!;
  if (!stored) {
    await definitions.create(def);
    return 'created';
  }
  const written = stored.metadata.annotations?.[ANNOTATION_CATALOG_DIGEST];
  if (written === digest) return undefined;
  if (written === undefined || digestOf(stored.spec) !== written) return 'keptAdmin';
  await definitions.update({ ...stored, metadata: { ...stored.metadata, annotations: { ...stored.metadata.annotations, [ANNOTATION_CATALOG_DIGEST]: digest } }, spec: def.spec });
  return 'updated';
}

/**
 * Writes the catalog into the store. Every object passes the API's own validation first: a
 * catalog that the API would refuse is a bug and stops the start-up with the field named.
 */
export async function loadCatalog(store: Store, catalog: Catalog, validation: ValidationContext, log?: Logger): Promise<LoadResult> {
  const result: LoadResult = { created: [], updated: [], keptAdmin: [] };
  const definitions = typed(store, 'AddonDefinition');
  for (const def of catalog.definitions) {
    validateObject(def, undefined, validation);
    // Replicas starting together load the same catalog: a 409 means another wrote first; look again.
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await loadDefinition(definitions, def);
        if (outcome) result[outcome].push(def.metadata.name);
        break;
      } catch (err) {
        if (!(isApiError(err) && err.code === 409) || attempt === 3) throw err;
      }
    }
  }
  if (catalog.policy && !(await typed(store, 'AddonPolicy').get('', ADDON_POLICY_NAME))) {
    try {
      await store.create(validateObject(catalog.policy, undefined, validation));
      result.created.push(`policy/${ADDON_POLICY_NAME}`);
    } catch (err) {
      if (!(isApiError(err) && err.code === 409)) throw err;
    }
  }
  if (result.created.length || result.updated.length || result.keptAdmin.length) log?.info(result, 'add-on catalog loaded');
  return result;
}
