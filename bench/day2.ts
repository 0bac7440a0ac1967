// Snapshot and restore time (issue 11) for a default cluster (3 etcd, 1 control plane, 2 workers)
// holding 10,000 ConfigMaps, through the product's own surfaces: a real `marina server` process,
// the `marina` CLI, kubectl, the real etcd / Kubernetes binaries.
//
//   npx tsc -p tsconfig.json && node dist/bench/day2.js [--configmaps 10000] [--runs 1] [--keep]
//
// Figures per run, from the Operation's own step times (written by the server) and wall clocks:
//   snapshot           `marina cluster snapshot` from the command to Succeeded (take + store + verify)
//   restore total      `marina cluster restore` from the command to Succeeded (preflight included)
//   restore → Nodes    from the first disruptive step (control plane stopped) to every Node Ready
//                      again (the end of waitNodes): the time the cluster is out of service
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Operation, Snapshot } from '../src/api/operations.js';
import { findToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { apiRequest, Cli, freePort, kubectl, pickAddressBase, serverEnv, startServerProcess, teardown, type ServerProcess } from '../test/support/marina.js';
import { load, sec, table } from './support.js';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const COUNT = Number(arg('configmaps', '10000'));
const RUNS = Number(arg('runs', '1'));
const KEEP = args.includes('--keep');

const found = findToolchain(defaultVersion());
if (!found.ok) {
  console.error(`toolchain ${defaultVersion()} missing: scripts/toolchain/install.sh`);
  process.exit(2);
}
const toolchain = found.toolchain;

const stepMs = (op: Operation, from: string, to: string): number => {
  const s = op.status?.steps ?? [];
  const a = s.find((x) => x.name === from)?.startedAt;
  const b = s.find((x) => x.name === to)?.finishedAt;
  return a && b ? Date.parse(b) - Date.parse(a) : NaN;
};

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'marina-bench-day2-'));
  const dataDir = join(tmp, 'data');
  mkdirSync(join(tmp, 'home'));
  const cli = new Cli(join(tmp, 'home'));
  let server: ServerProcess | undefined;
  try {
    const env = serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase(), logLevel: 'warn' });
    server = await startServerProcess({ dataDir, listen: `127.0.0.1:${await freePort()}`, logFile: join(tmp, 'server.log'), env });
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token'), '--project', 'default']);
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const t0 = Date.now();
    await cli.ok(['cluster', 'create', 'bench', '--timeout', '10m'], 700_000);
    console.log(`# cluster Ready in ${sec(Date.now() - t0)} s`);
    const kc = join(tmp, 'kubeconfig');
    writeFileSync(kc, (await cli.ok(['cluster', 'kubeconfig', 'bench'])).stdout, { mode: 0o600 });

    // 10,000 ConfigMaps in 4 parallel kubectl creates of one List each.
    const t1 = Date.now();
    const per = Math.ceil(COUNT / 4);
    await Promise.all(
      [0, 1, 2, 3].map(async (part) => {
        const items = [];
        for (let i = part * per; i < Math.min(COUNT, (part + 1) * per); i++) {
          items.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}`, labels: { bench: 'day2' } }, data: { value: `payload-${i}-${'x'.repeat(200)}` } });
        }
        const file = join(tmp, `cms-${part}.json`);
        writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
        await kubectl(toolchain, kc, ['create', '-f', file, '-o', 'name'], 900_000);
      }),
    );
    const count = async () => (await kubectl(toolchain, kc, ['get', 'configmaps', '-l', 'bench=day2', '-o', 'name'], 120_000)).split('\n').filter(Boolean).length;
    console.log(`# ${await count()} ConfigMaps written in ${sec(Date.now() - t1)} s`);

    const rows: string[][] = [];
    const stepHeader: string[] = ['run'];
    const stepRows: string[][] = [];
    for (let run = 1; run <= RUNS; run++) {
      const s0 = Date.now();
      const snapOut = await cli.ok(['cluster', 'snapshot', 'bench', '--timeout', '20m'], 1_300_000);
      const snapWall = Date.now() - s0;
      const snapOp = (await apiRequest(server.url, token, 'GET', `/projects/default/operations/${/operation\/(\S+) created/.exec(snapOut.stdout)![1]}`)).json as Operation;
      const snapName = snapOp.status!.result!.snapshot!;
      const snap = (await apiRequest(server.url, token, 'GET', `/projects/default/snapshots/${snapName}`)).json as Snapshot;
      await kubectl(toolchain, kc, ['delete', 'configmap', 'cm-0', 'cm-1']);
      const r0 = Date.now();
      const restoreOut = await cli.ok(['cluster', 'restore', 'bench', '--snapshot', snapName, '--timeout', '20m'], 1_300_000);
      const restoreWall = Date.now() - r0;
      const op = (await apiRequest(server.url, token, 'GET', `/projects/default/operations/${/operation\/(\S+) created/.exec(restoreOut.stdout)![1]}`)).json as Operation;
      const n = await count();
      if (n !== COUNT) throw new Error(`after the restore ${n} ConfigMaps, expected ${COUNT}`);
      stepRows.push([String(run), ...(op.status?.steps ?? []).map((st) => sec(stepMs(op, st.name, st.name)))]);
      if (run === 1) stepHeader.push(...(op.status?.steps ?? []).map((st) => st.name));
      rows.push([
        String(run),
        `${((snap.status?.size ?? 0) / 2 ** 20).toFixed(1)} MiB`,
        sec(snapWall),
        sec(stepMs(snapOp, 'take', 'take')),
        sec(restoreWall),
        sec(stepMs(op, 'preflight', 'preflight')),
        sec(stepMs(op, 'stopControlPlane', 'waitNodes')),
        sec(stepMs(op, 'restoreEtcd', 'restoreEtcd')),
        sec(stepMs(op, 'startControlPlane', 'startControlPlane')),
        sec(stepMs(op, 'waitNodes', 'waitNodes')),
      ]);
    }
    console.log(`\n${COUNT} ConfigMaps, default cluster (3 etcd, 1 control plane, 2 workers), ${cpus().length} cores, load ${load()}\n`);
    table(['run', 'snapshot size', 'snapshot s', 'take s', 'restore total s', 'preflight s', 'restore → Nodes Ready s', 'restoreEtcd s', 'startControlPlane s', 'waitNodes s'], rows);
    console.log('\nRestore steps (s):\n');
    table(stepHeader, stepRows);
  } finally {
    if (KEEP) console.log(`# kept ${tmp}`);
    else await teardown({ tmp, dataDir, cli, server, cluster: 'bench' });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
