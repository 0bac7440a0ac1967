// Starts one Marina: the embedded SQLite store in a data directory, the REST API, and the
// controllers. On first start it creates the platform admin and prints its token once.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { API_VERSION } from '../api/meta.js';
import { loadMatrix } from '../toolchain/versions.js';
import { HealthRegistry } from '../health/registry.js';
import { loadOrCreateEncryptionKey, openSqliteStore } from '../store/sqlite.js';
import { startAlerting } from '../alerts/index.js';
import { openAddons } from '../addons/index.js';
import { buildApp } from './app.js';
import { startControlLoops } from './control-loops.js';
import { FunctionService } from '../functions/service.js';
import { buildProviderRegistry, nodeArtifacts } from './providers.js';
import { isLoopbackHost, loadOrCreateServerTls, serverNames, type TlsMode } from './tls.js';
import { JoinService } from '../joins/service.js';
import { ArtifactCatalog } from '../joins/artifacts.js';
import { networkInterfaces } from 'node:os';
import { createLogger, type LogFormat } from './log.js';

export interface ServerOptions {
  dataDir: string;
  /** host:port; port 0 picks a free one. */
  listen: string;
  logger?: Logger;
  /** Format of the log the server creates when no `logger` is given (default json). */
  logFormat?: LogFormat;
  /** Run the controllers (default true); false serves the API alone. */
  controllers?: boolean;
  /**
   * `auto`: serve HTTPS with Marina's own CA (made in `<dataDir>/tls`); `off`: plain HTTP.
   * Default: auto when listening beyond loopback, off on loopback.
   */
  tls?: TlsMode;
}

export interface RunningServer {
  url: string;
  /** With TLS: Marina's CA file and its pin (what join commands carry). */
  tls?: { caFile: string; caPin: string };
  /** Set only on the very first start of a data directory. */
  adminToken?: string;
  adminTokenFile: string;
  close(): Promise<void>;
}

export function defaultDataDir(): string {
  if (process.env.MARINA_DATA_DIR) return process.env.MARINA_DATA_DIR;
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'marina');
}

export const DEFAULT_LISTEN = '127.0.0.1:7443';

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.*):([0-9]{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new Error(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(m[2]) };
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger({ format: opts.logFormat ?? 'json' });
  const { host, port } = parseListen(opts.listen);
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const encryptionKey = loadOrCreateEncryptionKey(opts.dataDir);
  const store = openSqliteStore({ path: join(opts.dataDir, 'marina.db'), encryptionKey });
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });

  const adminTokenFile = join(opts.dataDir, 'admin-token');
  const adminToken = await bootstrapAdmin(store, adminTokenFile);

  const matrix = loadMatrix();
  const tlsMode = opts.tls ?? (isLoopbackHost(host) ? 'off' : 'auto');
  const externalHost = process.env.MARINA_EXTERNAL_URL ? new URL(process.env.MARINA_EXTERNAL_URL).hostname : undefined;
  const tls = tlsMode === 'auto' ? await loadOrCreateServerTls(opts.dataDir, serverNames(host, externalHost ? [externalHost] : [])) : undefined;
  // Beyond loopback, cluster endpoints are published on this host too, for imported servers.
  const advertise = externalHost ?? (host === '0.0.0.0' || host === '::' ? firstExternalIPv4() : host);
  const providers = buildProviderRegistry(opts.dataDir, isLoopbackHost(host) || !advertise ? {} : { publicAddress: { bind: host, advertise } });
  let serverURL = '';
  const joinTarget = () => (tls ? { url: process.env.MARINA_EXTERNAL_URL ?? serverURL, caPin: tls.caPin, caPem: tls.caPem } : undefined);
  const validation = { kubernetesVersions: matrix.versions.map((v) => v.kubernetes), defaultKubernetesVersion: matrix.default };
  // The catalog in memory and the add-on checks the API edge needs; the shipped catalog is loaded.
  const addons = await openAddons({ store, logger: logger.child({ module: 'addons' }), validation });
  // The health checker writes the newest report of each cluster here; the API and the
  // controllers read it. Without controllers nothing checks health: it stays empty.
  const health = new HealthRegistry();
  const functions = await FunctionService.start({ store, dbPath: join(opts.dataDir, 'marina.db'), metrics, logger: logger.child({ module: 'functions' }) });
  const { app, close: closeApp } = await buildApp({
    ...(tls ? { https: { key: tls.keyPem, cert: `${tls.certPem}${tls.caPem}` } } : {}),
    joins: { service: new JoinService(store, providers.imports), imports: providers.imports, artifacts: new ArtifactCatalog(nodeArtifacts), target: joinTarget },
    functions,
    store,
    tokens: store.tokens,
    audit: store.audit,
    validation: { ...validation, addons: addons.admission },
    metrics,
    logger: logger.child({ module: 'api' }),
    health: { latest: (project, cluster) => health.get(project, cluster), series: store.series },
  });
  // Alerting first: the controllers (health checks, healing) raise alerts through its manager.
  // Backlinks in notifications point at this server.
  let externalURL: string | undefined;
  const alerting =
    opts.controllers === false
      ? undefined
      : await startAlerting({ store, metrics, logger: logger.child({ module: 'alerts' }), externalURL: () => process.env.MARINA_EXTERNAL_URL ?? externalURL, events: functions });
  const loops =
    opts.controllers === false
      ? undefined
      : await startControlLoops({
          store,
          providers,
          metrics,
          logger: logger.child({ module: 'controllers' }),
          defaultKubernetesVersion: matrix.default,
          health,
          series: store.series,
          addons,
          ...(alerting ? { alerts: alerting.manager } : {}),
          // Platform events (clusters, healing, etcd members, operations, backups) trigger functions.
          events: functions,
          operations: { encryptionKey, dataDir: opts.dataDir, ...(stepTimeoutFromEnv() ? { stepTimeoutMs: stepTimeoutFromEnv() } : {}) },
        });
  const address = await app.listen({ host, port });
  const url = address.replace('[::1]', '127.0.0.1');
  externalURL = url;
  // Listening on every address: joining servers get the advertised one.
  serverURL = (host === '0.0.0.0' || host === '::') && advertise ? `${new URL(url).protocol}//${advertise}:${new URL(url).port}` : url;

  let closed = false;
  return {
    url,
    ...(tls ? { tls: { caFile: tls.caFile, caPin: tls.caPin } } : {}),
    adminToken,
    adminTokenFile,
    async close() {
      if (closed) return;
      closed = true;
      await closeApp();
      await loops?.stop();
      await addons.stop();
      await alerting?.stop();
      // Last of the three: the controllers and the AlertManager publish events into it.
      await functions.stop();
      await providers.close();
      await store.close();
    },
  };
}

/** An IPv4 address of this host other hosts may reach (the first non-internal one). */
function firstExternalIPv4(): string | undefined {
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

/** `MARINA_OPERATION_STEP_TIMEOUT_SECONDS`: how long an operation step may wait (tests shorten it). */
function stepTimeoutFromEnv(): number | undefined {
  const v = Number(process.env.MARINA_OPERATION_STEP_TIMEOUT_SECONDS);
  return Number.isFinite(v) && v > 0 ? v * 1000 : undefined;
}

/** First start only: the platform admin, the `default` project, and an admin token (also in a 0600 file). */
async function bootstrapAdmin(store: ReturnType<typeof openSqliteStore>, tokenFile: string): Promise<string | undefined> {
  const users = await store.list('User', { limit: 1 });
  if (users.items.length > 0) return undefined;
  await store.create({
    apiVersion: API_VERSION,
    kind: 'User',
    metadata: { name: 'admin' },
    spec: { displayName: 'Platform administrator', platformAdmin: true },
  });
  // A first project so that a newcomer can create a cluster right away.
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Project',
    metadata: { name: 'default' },
    spec: { displayName: 'Default project', members: [{ user: 'admin', role: 'admin' }] },
  });
  const issued = await store.tokens.issue({ user: 'admin', description: 'bootstrap admin token' });
  writeFileSync(tokenFile, issued.token + '\n', { mode: 0o600 });
  chmodSync(tokenFile, 0o600); // the mode above applies only when the file is new
  return issued.token;
}
