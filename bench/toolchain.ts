// Benchmark of one control-plane set (etcd + kube-apiserver + kube-controller-manager + kube-scheduler)
// started from the toolchain binaries: start-to-ready times and idle RSS of each component.
//
//   npx tsc -p tsconfig.json && node dist/bench/toolchain.js [--version v1.36.3] [--idle-seconds 30] [--runs 3] [--keep]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { generateControlPlanePki } from '../src/pki/index.js';
import { processRssBytes } from '../src/proc/index.js';
import { resolveToolchain } from '../src/toolchain/resolve.js';
import { defaultVersion } from '../src/toolchain/versions.js';
import { startControlPlane } from '../test/toolchain/controlplane.js';

const { values } = parseArgs({
  options: {
    version: { type: 'string', default: defaultVersion() },
    'idle-seconds': { type: 'string', default: '30' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const toolchain = resolveToolchain(values.version);
const idleSeconds = Number(values['idle-seconds']);
const runs = Number(values.runs);
const mib = (b: number | undefined): string => (b === undefined ? 'n/a' : `${(b / 1048576).toFixed(0)} MiB`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`toolchain ${toolchain.version} (etcd ${toolchain.etcdVersion}); ${runs} run(s), idle ${idleSeconds}s before RSS`);
{
  const dir = mkdtempSync(join(tmpdir(), 'marina-bench-pki-'));
  const t = Date.now();
  await generateControlPlanePki({ dir, apiServerHost: '127.0.10.1', apiServerPort: 6443 });
  console.log(`control-plane PKI (3 CAs, 11 leaves, ECDSA P-256, 3 kubeconfigs): ${Date.now() - t} ms`);
  rmSync(dir, { recursive: true, force: true });
}
const readyRows: Record<string, number[]> = {};
const rssRows: Record<string, number[]> = {};
for (let run = 1; run <= runs; run++) {
  const dir = mkdtempSync(join(tmpdir(), 'marina-bench-'));
  const t0 = Date.now();
  const cp = await startControlPlane({ toolchain, dir });
  const allReady = Date.now() - t0;
  try {
    const ok = (await cp.kubectl(['get', '--raw', '/readyz'])).trim();
    const kubectlMs = Date.now() - t0;
    (readyRows['start() -> all four healthy (incl. PKI)'] ??= []).push(allReady);
    (readyRows['start() -> kubectl get --raw /readyz ok'] ??= []).push(kubectlMs);
    (readyRows['etcd spawn -> kube-apiserver /readyz ok'] ??= []).push(cp.apiServerReadyMs ?? NaN);
    for (const c of cp.components) (readyRows[`${c.name} spawn -> healthy`] ??= []).push(c.readyMs ?? NaN);
    console.log(`run ${run}: kubectl /readyz=${ok} after ${kubectlMs} ms; all healthy after ${allReady} ms (dir ${dir})`);
    await sleep(idleSeconds * 1000);
    let total = 0;
    for (const c of cp.components) {
      const rss = processRssBytes(c.proc.pid) ?? NaN;
      total += rss;
      (rssRows[c.name] ??= []).push(rss);
    }
    (rssRows.total ??= []).push(total);
  } finally {
    const { leftoverPids, listeningPorts } = await cp.stop();
    if (leftoverPids.length || listeningPorts.length) console.error('LEFTOVERS', leftoverPids, listeningPorts);
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

console.log('\nstart-to-ready (ms)            median   all runs');
for (const [k, xs] of Object.entries(readyRows)) console.log(`  ${k.padEnd(42)} ${String(median(xs)).padStart(6)}   ${xs.join(', ')}`);
console.log(`\nidle RSS after ${idleSeconds}s                 median   all runs`);
for (const [k, xs] of Object.entries(rssRows)) console.log(`  ${k.padEnd(42)} ${mib(median(xs)).padStart(8)}   ${xs.map(mib).join(', ')}`);
