// Upgrade and certificate-rotation durations and failed requests (issue 12), through the product's
// own surfaces: a real `marina server` process, the `marina` CLI, the real etcd / Kubernetes
// binaries of both pinned versions, a probe of the cluster's API.
//
//   npx tsc -p tsconfig.json && node dist/bench/upgrade.js [--from v1.35.4] [--to v1.36.3] [--etcd 3] [--controlplanes 2] [--workers 3] [--keep]
//
// One cluster created on --from, then, each with the probe running:
//   upgrade            `marina cluster upgrade --version <to>`: command to Succeeded
//   leaf rotation      `marina cluster rotate-certificates`
//   CA rotation        `marina cluster rotate-certificates --ca` (both phases)
// Per operation: wall time, the time of its roll steps (from the Operation's own step times), and
// the probe's failed / total requests: a ConfigMap list through the cluster's endpoint every
// 200 ms, each on a new TLS connection (test/support/api-probe.ts). The probe uses the kubeconfig
// downloaded before the operation; in a CA rotation it switches to the re-issued kubeconfig once
// phase 1 re-issued it (a kubeconfig from before stops working in phase 2 by design).
import { mkdirSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Operation } from '../src/api/operations.js';
import { findToolchain } from '../src/toolchain/resolve.js';
import { ApiProbe, describeProbe, type ProbeReport } from '../test/support/api-probe.js';
import { apiRequest, Cli, freePort, pickAddressBase, serverEnv, startServerProcess, teardown, type ServerProcess } from '../test/support/marina.js';
import { load, sec, table } from './support.js';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const FROM = arg('from', 'v1.35.4');
const TO = arg('to', 'v1.36.3');
const ETCD = Number(arg('etcd', '3'));
const CPS = Number(arg('controlplanes', '2'));
const WORKERS = Number(arg('workers', '3'));
const KEEP = args.includes('--keep');

for (const v of [FROM, TO]) {
  if (!findToolchain(v).ok) {
    console.error(`toolchain ${v} missing: scripts/toolchain/install.sh ${v}`);
    process.exit(2);
  }
}
const toolchain = (findToolchain(TO) as Extract<ReturnType<typeof findToolchain>, { ok: true }>).toolchain;

const stepsMs = (op: Operation, names: string[]): number => {
  let total = 0;
  for (const n of names) {
    const s = op.status?.steps?.find((x) => x.name === n);
    if (s?.startedAt && s.finishedAt) total += Date.parse(s.finishedAt) - Date.parse(s.startedAt);
  }
  return total;
};

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'marina-bench-upgrade-'));
  const dataDir = join(tmp, 'data');
  mkdirSync(join(tmp, 'home'));
  const cli = new Cli(join(tmp, 'home'));
  let server: ServerProcess | undefined;
  const probes: ApiProbe[] = [];
  try {
    // Both versions from the toolchain cache (MARINA_BIN_DIR would pin every cluster to one).
    const { MARINA_BIN_DIR: _one, ...env } = serverEnv({ home: join(tmp, 'home'), toolchain, addressBase: await pickAddressBase(), logLevel: 'warn' });
    server = await startServerProcess({
      dataDir,
      listen: `127.0.0.1:${await freePort()}`,
      logFile: join(tmp, 'server.log'),
      env: { ...env, MARINA_TOOLCHAIN_DIR: dirname(dirname(toolchain.paths.etcd)) },
    });
    await cli.ok(['login', server.url, '--token-file', join(dataDir, 'admin-token'), '--project', 'default']);
    const token = server.bootstrapToken!;
    const getOp = async (name: string) => (await apiRequest(server!.url, token, 'GET', `/projects/default/operations/${name}`)).json as Operation;
    const kubeconfig = async () => (await cli.ok(['cluster', 'kubeconfig', 'bench'])).stdout;

    const t0 = Date.now();
    await cli.ok(['cluster', 'create', 'bench', '--version', FROM, '--etcd', String(ETCD), '--controlplanes', String(CPS), '--workers', String(WORKERS), '--timeout', '10m'], 700_000);
    console.log(`# cluster (${ETCD} etcd, ${CPS} control planes, ${WORKERS} workers) Ready on ${FROM} in ${sec(Date.now() - t0)} s`);

    const rows: string[][] = [];
    const run = async (label: string, cmd: string[], rollSteps: string[], switchAfter?: string) => {
      const probe = new ApiProbe(await kubeconfig());
      probes.push(probe);
      probe.start();
      const started = Date.now();
      const created = await cli.ok([...cmd, '--no-wait']);
      const name = /operation\/(\S+) created/.exec(created.stdout)![1]!;
      let op = await getOp(name);
      let second: ApiProbe | undefined;
      let first: ProbeReport | undefined;
      while (!['Succeeded', 'Failed', 'Cancelled'].includes(op.status?.phase ?? '')) {
        await new Promise((r) => setTimeout(r, 500));
        op = await getOp(name);
        if (switchAfter && !second && op.status?.steps?.find((s) => s.name === switchAfter)?.state === 'Succeeded') {
          // The user downloads the re-issued kubeconfig, as the operation says.
          second = new ApiProbe(await kubeconfig());
          probes.push(second);
          second.start();
        }
        if (second && !first && op.status?.steps?.find((s) => s.name === 'dropOldCAs')?.state === 'Succeeded') first = await probe.stop();
      }
      const wall = Date.now() - started;
      const a = first ?? (await probe.stop());
      const b = second ? await second.stop() : undefined;
      if (op.status?.phase !== 'Succeeded') throw new Error(`${label}: ${op.status?.phase}: ${op.status?.message}`);
      const failed = a.failures + (b?.failures ?? 0);
      const requests = a.requests + (b?.requests ?? 0);
      rows.push([label, sec(wall), sec(stepsMs(op, rollSteps)), `${failed} / ${requests}`]);
      console.log(`# ${label}: ${sec(wall)} s; probe ${describeProbe(a)}${b ? `; re-issued kubeconfig: ${describeProbe(b)}` : ''}`);
    };

    await run(`upgrade ${FROM} → ${TO}`, ['cluster', 'upgrade', 'bench', '--version', TO], ['etcd', 'controlPlanes', 'workers']);
    await run('leaf rotation', ['cluster', 'rotate-certificates', 'bench'], ['etcd', 'controlPlanes', 'workers']);
    await run('CA rotation (2 phases)', ['cluster', 'rotate-certificates', 'bench', '--ca'], ['etcd', 'controlPlanes', 'workers', 'finalEtcd', 'finalControlPlanes', 'finalWorkers'], 'reissue');

    console.log(`\n${ETCD} etcd, ${CPS} control planes, ${WORKERS} workers (local provider), ${cpus().length} cores, load ${load()}\n`);
    table(['operation', 'total s', 'roll steps s', 'failed / requests'], rows);
  } finally {
    await Promise.all(probes.map((p) => p.stop()));
    if (KEEP) console.log(`# kept ${tmp}`);
    else await teardown({ tmp, dataDir, cli, server, cluster: 'bench' });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
