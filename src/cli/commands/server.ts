// `marina server`: runs the control plane in this process until SIGINT/SIGTERM.
import { Command, Option } from 'commander';
import { err, out } from '../session.js';
import type { StoreConfig } from '../../server/backend.js';

interface ServerFlags {
  dataDir?: string;
  listen?: string;
  controllers: boolean;
  logFormat?: string;
  store: string;
  kubeconfig?: string;
  namespace?: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  tls?: 'auto' | 'off';
}

function seconds(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a positive number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

/** The --store flags as the server's store configuration. */
export function storeConfig(opts: ServerFlags): StoreConfig {
  if (opts.store === 'sqlite') {
    if (opts.kubeconfig || opts.namespace) throw new Error('--kubeconfig and --namespace need --store kubernetes');
    return { kind: 'sqlite' };
  }
  if (opts.store !== 'kubernetes') throw new Error(`--store must be sqlite or kubernetes, got ${JSON.stringify(opts.store)}`);
  const config: StoreConfig = {
    kind: 'kubernetes',
    lease: {
      durationSeconds: seconds('--lease-duration', opts.leaseDuration),
      renewDeadlineSeconds: seconds('--renew-deadline', opts.renewDeadline),
      retryPeriodSeconds: seconds('--retry-period', opts.retryPeriod),
    },
  };
  const kubeconfig = opts.kubeconfig ?? process.env.MARINA_KUBECONFIG;
  if (kubeconfig) config.kubeconfig = kubeconfig;
  if (opts.namespace) config.namespace = opts.namespace;
  return config;
}

export function serverCommand(): Command {
  return new Command('server')
    .description('run the Marina control plane (REST API, store, controllers)')
    .option('--data-dir <dir>', 'state directory (default: $MARINA_DATA_DIR or ${XDG_DATA_HOME:-~/.local/share}/marina)')
    .option('--listen <host:port>', 'address to serve on (default: $MARINA_LISTEN or 127.0.0.1:7443)')
    .option('--no-controllers', 'serve the API only; nothing acts on the stored objects')
    .addOption(
      new Option('--tls <mode>', "auto: HTTPS with Marina's own CA, made in <data-dir>/tls (default when listening beyond loopback); off: plain HTTP (default on loopback)").choices([
        'auto',
        'off',
      ]),
    )
    .addOption(
      new Option('--log-format <format>', 'log lines as json or readable text (default: $MARINA_LOG_FORMAT, else text on a terminal, json otherwise)').choices([
        'json',
        'text',
      ]),
    )
    .option('--store <backend>', 'sqlite (one process, in the data directory) or kubernetes (a management cluster; several replicas)', process.env.MARINA_STORE ?? 'sqlite')
    .option('--kubeconfig <file>', 'with --store kubernetes: kubeconfig of the management cluster (default: in-cluster service account)')
    .option('--namespace <ns>', 'with --store kubernetes: namespace of Marina\'s objects and Lease (default: the pod\'s, else marina)')
    .option('--lease-duration <seconds>', 'with --store kubernetes: leader Lease duration', '15')
    .option('--renew-deadline <seconds>', 'with --store kubernetes: the leader gives up when it could not renew for this long', '10')
    .option('--retry-period <seconds>', 'with --store kubernetes: between attempts to acquire or renew the Lease', '2')
    .action(async (opts: ServerFlags) => {
      // Imported lazily: the server pulls in fastify, SQLite and the controllers, which no other
      // command needs. A bad MARINA_LOG_FORMAT is refused before all that loads.
      const { logFormatFrom } = await import('../../server/log.js');
      const logFormat = logFormatFrom(opts.logFormat);
      const { startServer, defaultDataDir, DEFAULT_LISTEN } = await import('../../server/main.js');
      const dataDir = opts.dataDir ?? defaultDataDir();
      const listen = opts.listen ?? process.env.MARINA_LISTEN ?? DEFAULT_LISTEN;
      const server = await startServer({ dataDir, listen, controllers: opts.controllers, logFormat, store: storeConfig(opts), ...(opts.tls ? { tls: opts.tls } : {}) });
      out(`Marina listening on ${server.url}\n`);
      if (server.tls) out(`Marina CA: ${server.tls.caFile} (pin ${server.tls.caPin}); clients trust it with --certificate-authority\n`);
      if (server.adminToken) {
        out(`bootstrap admin token: ${server.adminToken}\n`);
        const ca = server.tls ? ` --certificate-authority ${server.tls.caFile}` : '';
        out(`(also written to ${server.adminTokenFile}; log in with: marina login ${server.url} --token-file ${server.adminTokenFile}${ca})\n`);
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            err(`${signal} again: exiting without a clean shutdown`);
            process.exit(1);
          }
          stopping = true;
          err(`${signal}: shutting down`);
          server.close().then(resolve, (e: unknown) => {
            err(`shutdown failed: ${(e as Error).message}`);
            process.exitCode = 1;
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
