// `marina addon list|enable|disable|describe`: the add-ons of a project's clusters and the catalog.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { addonObjectName, type Addon, type AddonDefinition, type AddonPolicy } from '../../api/addons.js';
import { addonSettled, addonTable, applySet, catalogTable, describeAddon, newestVersion, parseValuesFile } from '../addons.js';
import { LABEL_CLUSTER } from '../../api/wellknown.js';
import { API_VERSION, isConflict, isNotFound, resourceRef, sleep, type MarinaClient } from '../../client/index.js';
import { about, CliError, EXIT } from '../errors.js';
import { formatResources, humanDuration, parseOutputFormat } from '../output.js';
import { collect, err, out, parseDuration, Session } from '../session.js';
import { outputOption, projectOption } from './resources.js';

const ADDON = resourceRef('Addon');
const POLL_MS = 1000;

/** The Addon of `addon` on `cluster`: by its conventional name, else by looking through the project. */
async function findAddon(client: MarinaClient, project: string, cluster: string, addon: string): Promise<Addon | undefined> {
  const named = await client.getOptional<Addon>(ADDON, addonObjectName(cluster, addon), project);
  if (named && named.spec.cluster === cluster && named.spec.addon === addon) return named;
  const all = await client.listAll<Addon>(ADDON, { project });
  return all.items.find((a) => a.spec.cluster === cluster && a.spec.addon === addon);
}

async function catalog(client: MarinaClient): Promise<AddonDefinition[]> {
  return (await client.listAll<AddonDefinition>('AddonDefinition')).items;
}

/** Waits until `done` holds for the add-on (undefined: it is gone); prints each new state once. */
async function follow(client: MarinaClient, project: string, name: string, timeoutMs: number, done: (a: Addon | undefined) => boolean): Promise<void> {
  const started = Date.now();
  let last = '';
  for (;;) {
    const a = await client.getOptional<Addon>(ADDON, name, project);
    if (done(a)) return;
    const state = a ? (a.status?.conditions ?? []).map((c) => `${c.type}=${c.status}${c.reason ? `(${c.reason})` : ''}`).join(' ') : 'gone';
    if (state && state !== last) {
      err(`[${((Date.now() - started) / 1000).toFixed(1)}s] addon ${name}: ${state}`);
      last = state;
    }
    if (Date.now() - started > timeoutMs) throw new CliError(`timed out after ${humanDuration(timeoutMs)} waiting for addon ${name}`, EXIT.timeout);
    await sleep(POLL_MS);
  }
}

interface EnableOpts {
  project?: string;
  version?: string;
  set: string[];
  values?: string;
  wait?: boolean;
  timeout: string;
}

export function addonCommand(): Command {
  const cmd = new Command('addon').alias('addons').description('add-ons of clusters: list, enable (or change), disable, describe');

  cmd
    .command('list')
    .alias('ls')
    .description('add-ons enabled in a project (or on one cluster) with their state; --catalog: what can be enabled')
    .argument('[cluster]')
    .addOption(projectOption())
    .option('-A, --all-projects', 'every project you can see')
    .option('--catalog', 'the catalog: every add-on, its versions, whether new clusters get it')
    .addOption(outputOption('table|json|yaml'))
    .action(async (cluster: string | undefined, opts: { project?: string; allProjects?: boolean; catalog?: boolean; output: string }, sub: Command) => {
      const format = parseOutputFormat(opts.output, ['table', 'json', 'yaml']);
      const s = Session.of(sub);
      if (opts.catalog) {
        const defs = await catalog(s.client);
        if (format !== 'table') return out(formatResources(format, 'AddonDefinition', defs));
        const policy = await s.client.getOptional<AddonPolicy>('AddonPolicy', 'default');
        return out(catalogTable(defs, policy));
      }
      const project = opts.allProjects ? undefined : await s.project(opts.project);
      const items = (await s.client.listAll<Addon>(ADDON, { project })).items.filter((a) => !cluster || a.spec.cluster === cluster);
      if (format !== 'table') return out(formatResources(format, 'Addon', items));
      if (items.length === 0) return err(`No add-ons${cluster ? ` on cluster ${cluster}` : ''}${project ? ` in project ${project}` : ''}.`);
      out(addonTable(items));
    });

  cmd
    .command('enable')
    .description('enable an add-on on a cluster, or change the version or values of an enabled one (upgrade)')
    .argument('<cluster>')
    .argument('<addon>')
    .addOption(projectOption())
    .option('--version <version>', 'catalog version (default: the newest for a new add-on, unchanged for an enabled one)')
    .option('--set <key=value>', 'a value, e.g. replicas=3 or output.host=logs.example (YAML value); repeatable', collect, [])
    .option('-f, --values <file>', 'values from a YAML/JSON file (replaces the current values; --set applies on top)')
    .option('--wait', 'wait until the add-on is applied and healthy')
    .option('--timeout <duration>', 'with --wait: give up after this long', '5m')
    .action(async (cluster: string, addon: string, opts: EnableOpts, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const timeoutMs = parseDuration(opts.timeout);
      const existing = await findAddon(s.client, project, cluster, addon);
      let values: Record<string, unknown> | undefined = opts.values ? parseValuesFile(readFileSync(opts.values, 'utf8'), opts.values) : existing?.spec.values;
      for (const expr of opts.set) values = applySet(values ?? {}, expr);
      const version = opts.version ?? existing?.spec.version ?? newestVersion(await catalog(s.client), addon);
      const spec: Addon['spec'] = { cluster, addon, version, ...(values && Object.keys(values).length > 0 ? { values } : {}) };
      let name: string;
      if (existing) {
        name = existing.metadata.name;
        for (let attempt = 0; ; attempt++) {
          const current = attempt === 0 ? existing : await s.client.get<Addon>(ADDON, name, project);
          try {
            await about({ kind: 'Addon', name }, () => s.client.replace({ ...current, spec }, project));
            break;
          } catch (e) {
            if (!isConflict(e) || attempt >= 5) throw e;
          }
        }
        const from = existing.spec.version === version ? version : `${existing.spec.version} → ${version}`;
        out(`addon/${name} updated on cluster ${cluster} (${addon} ${from})\n`);
      } else {
        name = addonObjectName(cluster, addon);
        const obj = { apiVersion: API_VERSION, kind: 'Addon', metadata: { name, project, labels: { [LABEL_CLUSTER]: cluster } }, spec } as Addon;
        await about({ kind: 'Addon', name }, () => s.client.create(obj, project));
        out(`addon/${name} enabled on cluster ${cluster} (${addon} ${version})\n`);
      }
      if (opts.wait) {
        await follow(s.client, project, name, timeoutMs, (a) => {
          if (!a) throw new CliError(`addon ${name} was deleted`, EXIT.notFound);
          return addonSettled(a);
        });
        out(`addon/${name} is applied and healthy\n`);
      }
    });

  cmd
    .command('disable')
    .description('disable an add-on: everything it put into the cluster is removed (except objects annotated addons.marina.dev/keep)')
    .argument('<cluster>')
    .argument('<addon>')
    .addOption(projectOption())
    .option('--wait', 'wait until its objects are gone from the cluster')
    .option('--timeout <duration>', 'with --wait: give up after this long', '5m')
    .option('--ignore-not-found', 'succeed when the add-on is not enabled')
    .action(async (cluster: string, addon: string, opts: { project?: string; wait?: boolean; timeout: string; ignoreNotFound?: boolean }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const timeoutMs = parseDuration(opts.timeout);
      const existing = await findAddon(s.client, project, cluster, addon);
      if (!existing) {
        if (opts.ignoreNotFound) return;
        throw new CliError(`add-on ${addon} is not enabled on cluster ${cluster} in project ${project}`, EXIT.notFound);
      }
      const name = existing.metadata.name;
      try {
        await s.client.delete(ADDON, name, project);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      out(`addon/${name} disabled on cluster ${cluster}${opts.wait ? '' : ' (its objects are being removed)'}\n`);
      if (opts.wait) {
        await follow(s.client, project, name, timeoutMs, (a) => a === undefined);
        out(`addon/${name} removed from cluster ${cluster}\n`);
      }
    });

  cmd
    .command('describe')
    .description('one add-on of a cluster: version, values, conditions, unhealthy objects, drift corrections, the objects it applied')
    .argument('<cluster>')
    .argument('<addon>')
    .addOption(projectOption())
    .action(async (cluster: string, addon: string, opts: { project?: string }, sub: Command) => {
      const s = Session.of(sub);
      const project = await s.project(opts.project);
      const a = await findAddon(s.client, project, cluster, addon);
      if (!a) throw new CliError(`add-on ${addon} is not enabled on cluster ${cluster} in project ${project}`, EXIT.notFound);
      const def = (await catalog(s.client)).find((d) => d.spec.addon === addon && d.spec.version === a.spec.version);
      out(describeAddon(a, def));
    });

  return cmd;
}
