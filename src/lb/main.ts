// The endpoint load balancer process of one cluster: `node dist/src/lb/main.js --config lb.json`.
// The config is re-read on SIGHUP so the provider can change backends without a new address.
import { readFileSync } from 'node:fs';
import { TcpBalancer } from './balancer.js';

export interface BalancerConfig {
  host: string;
  port: number;
  /** More host:port addresses to listen on (changed on SIGHUP like the backends). */
  extraListen?: string[];
  backends: string[];
}

export function readBalancerConfig(path: string): BalancerConfig {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<BalancerConfig>;
  if (typeof raw.host !== 'string' || typeof raw.port !== 'number' || !Array.isArray(raw.backends)) {
    throw new Error(`${path}: needs host (string), port (number) and backends (array of host:port)`);
  }
  if (raw.extraListen !== undefined && !Array.isArray(raw.extraListen)) throw new Error(`${path}: extraListen must be an array of host:port`);
  return { host: raw.host, port: raw.port, backends: raw.backends.map(String), extraListen: (raw.extraListen ?? []).map(String) };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--config');
  const configPath = i > 0 ? process.argv[i + 1] : undefined;
  if (!configPath) {
    console.error('usage: lb --config <lb.json>');
    process.exit(2);
  }
  const log = (msg: string) => console.log(`${new Date().toISOString()} ${msg}`);
  const config = readBalancerConfig(configPath);
  const balancer = new TcpBalancer({ ...config, log });
  const reload = async () => {
    try {
      const next = readBalancerConfig(configPath);
      balancer.setBackends(next.backends);
      await balancer.setExtraListeners(next.extraListen ?? []);
      log(`reloaded: backends ${next.backends.join(', ') || '(none)'}; extra listeners ${(next.extraListen ?? []).join(', ') || '(none)'}`);
    } catch (err) {
      log(`reload failed: ${(err as Error).message}`);
    }
  };
  // Installed before the port opens: a provider that sees the port listening may signal at once,
  // and SIGHUP's default action would end the balancer. A reload asked for during the start
  // runs once it is done.
  let started = false;
  let reloadPending = false;
  process.on('SIGHUP', () => {
    if (started) void reload();
    else reloadPending = true;
  });
  await balancer.start();
  started = true;
  log(`listening on ${[`${config.host}:${config.port}`, ...(config.extraListen ?? [])].join(', ')}, backends ${config.backends.join(', ') || '(none)'}`);
  if (reloadPending) await reload();
  const shutdown = () => {
    void balancer.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
