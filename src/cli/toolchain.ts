// `marina toolchain install [versions...]` and `marina toolchain path [version]`.
import { Command } from 'commander';
import { installToolchain } from '../toolchain/install.js';
import { findToolchain, ToolchainMissingError } from '../toolchain/resolve.js';
import { BINARY_NAMES, defaultVersion, loadMatrix } from '../toolchain/versions.js';

export function toolchainCommand(): Command {
  const cmd = new Command('toolchain').description(
    'Kubernetes binaries (etcd, etcdctl, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)',
  );

  cmd
    .command('install')
    .description('download or build the pinned binaries into the toolchain cache (default: the default version)')
    .argument('[versions...]', 'Kubernetes versions, e.g. v1.36.3')
    .option('--source <source>', 'auto | download | build', 'auto')
    .option('--force', 'reinstall even if the cache is valid')
    .action(async (versions: string[], opts: { source: string; force?: boolean }) => {
      const env: NodeJS.ProcessEnv = { MARINA_TOOLCHAIN_SOURCE: opts.source };
      if (opts.force) env.MARINA_TOOLCHAIN_FORCE = '1';
      await installToolchain(versions, { env });
    });

  cmd
    .command('path')
    .description('print where the binaries of a version are (directory, or one line per binary if mixed)')
    .argument('[version]', 'Kubernetes version', undefined)
    .option('--json', 'print every binary path as JSON')
    .action((version: string | undefined, opts: { json?: boolean }) => {
      const v = version ?? defaultVersion();
      const found = findToolchain(v);
      if (!found.ok) {
        const err = new ToolchainMissingError(v.startsWith('v') ? v : `v${v}`, found.missing, found.searched);
        process.stderr.write(`${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      const t = found.toolchain;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ version: t.version, etcdVersion: t.etcdVersion, paths: t.paths, sources: t.sources }, null, 2)}\n`);
        return;
      }
      const dirs = new Set(BINARY_NAMES.map((n) => t.paths[n].slice(0, t.paths[n].length - n.length - 1)));
      if (dirs.size === 1) {
        process.stdout.write(`${[...dirs][0]}\n`);
      } else {
        for (const n of BINARY_NAMES) process.stdout.write(`${n}\t${t.paths[n]}\n`);
      }
    });

  cmd
    .command('versions')
    .description('list the pinned versions')
    .action(() => {
      const m = loadMatrix();
      for (const v of m.versions) {
        process.stdout.write(`${v.kubernetes}\tetcd ${v.etcd}\tgo>=${v.go}${v.kubernetes === m.default ? '\t(default)' : ''}\n`);
      }
    });

  return cmd;
}
