// Starts one Marina: its store (the embedded SQLite database in a data directory, or the Kubernetes
// API of a management cluster shared by several replicas), the REST API, and the controllers (with
// the Kubernetes store only on the replica holding the Lease). On first start it creates the
// platform admin and prints its token once.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { isApiError } from '../api/errors.js';
import { API_VERSION } from '../api/meta.js';
import { loadMatrix } from '../toolchain/versions.js';
import { HealthRegistry } from '../health/registry.js';
import { newestReport } from '../health/shared.js';
import { startAlerting } from '../alerts/index.js';
import { LeaderElector, type Leadership } from '../runtime/leader.js';
import { openBackend, type ServerStore, type StoreConfig } from './backend.js';
import { openAddons } from '../addons/index.js';
import { buildApp } from './app.js';
import { Inventory } from './inventory.js';
import { startControlLoops } from './control-loops.js';
import { FunctionService } from '../functions/service.js';
import { buildProviderRegistry, nodeArtifacts, toolchainBinaries } from './providers.js';
import { StoreCloudDirectory } from './openstack-directory.js';
import { BoundMachineJoins } from '../joins/machine-joins.js';
import { isLoopbackHost, loadOrCreateServerTls, serverNames, type TlsMode } from './tls.js';
import { JoinService } from '../joins/service.js';
import { ArtifactCatalog } from '../joins/artifacts.js';
import { networkInterfaces } from 'node:os';
import { sqlitePersistence } from '../sim/persist.js';
import type { SimTiming } from '../sim/timing.js';
import { SimWorld } from '../sim/world.js';
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
   * Offer the `sim` provider (simulated machines and clusters, for scale tests and benchmarks)
   * with these start-up times, and the fault-injection endpoint. Off by default.
   */
  sim?: { timing?: Partial<SimTiming> };
  /** Where the state lives (default: SQLite in dataDir). */
  store?: StoreConfig;
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
  const backend = await openBackend(opts.store ?? { kind: 'sqlite' }, opts.dataDir, logger);
  const store = backend.store;
  logger.info({ store: backend.describe }, 'store open');
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const inventory = await Inventory.start(store, metrics);

  const adminTokenFile = join(opts.dataDir, 'admin-token');
  const adminToken = await bootstrapAdmin(store, adminTokenFile, backend.saveAdminToken);

  const matrix = loadMatrix();
  const tlsMode = opts.tls ?? (isLoopbackHost(host) ? 'off' : 'auto');
  const externalHost = process.env.MARINA_EXTERNAL_URL ? new URL(process.env.MARINA_EXTERNAL_URL).hostname : undefined;
  const tls = tlsMode === 'auto' ? await loadOrCreateServerTls(opts.dataDir, serverNames(host, externalHost ? [externalHost] : [])) : undefined;
  // Beyond loopback, cluster endpoints are published on this host too, for imported servers.
  const advertise = externalHost ?? (host === '0.0.0.0' || host === '::' ? firstExternalIPv4() : host);
  // Simulated machines outlive the server like real ones: their world is kept in the data directory
  // (so the sim is for one replica: its world is not shared through the store).
  const sim = opts.sim ? new SimWorld({ timing: opts.sim.timing, persistence: sqlitePersistence(join(opts.dataDir, 'sim', 'world.db')) }) : undefined;
  let serverURL = '';
  const joinTarget = () => (tls ? { url: process.env.MARINA_EXTERNAL_URL ?? serverURL, caPin: tls.caPin, caPem: tls.caPem } : undefined);
  const providers = buildProviderRegistry(opts.dataDir, {
    ...(isLoopbackHost(host) || !advertise ? {} : { publicAddress: { bind: host, advertise } }),
    ...(sim ? { sim } : {}),
    // A VM joins with a token bound to its Machine, through the same join routes as an imported server.
    openstack: {
      directory: new StoreCloudDirectory(store),
      joins: (imports) => new BoundMachineJoins({ service: new JoinService(store, imports), imports, target: joinTarget, issuer: 'openstack' }),
    },
  });
  const validation = { kubernetesVersions: matrix.versions.map((v) => v.kubernetes), defaultKubernetesVersion: matrix.default };
  // The catalog in memory and the add-on checks the API edge needs; the shipped catalog is loaded.
  const addons = await openAddons({ store, logger: logger.child({ module: 'addons' }), validation });
  // The health checker writes the newest report of each cluster here; the API and the
  // controllers read it. Where nothing checks health (no controllers, or a replica without the
  // Lease) it stays empty and the API answers what the checking replica shared in the store.
  const health = new HealthRegistry();
  const functions = await FunctionService.start({ store, dbPath: join(opts.dataDir, 'marina.db'), metrics, logger: logger.child({ module: 'functions' }) });
  const { app, close: closeApp } = await buildApp({
    ...(tls ? { https: { key: tls.keyPem, cert: `${tls.certPem}${tls.caPem}` } } : {}),
    joins: { service: new JoinService(store, providers.imports), imports: providers.imports, artifacts: new ArtifactCatalog(nodeArtifacts, toolchainBinaries), target: joinTarget },
    functions,
    store,
    tokens: store.tokens,
    // With several replicas a token may be revoked through another one: verify it every time.
    cacheTokens: backend.election === undefined,
    audit: store.audit,
    validation: { ...validation, addons: addons.admission },
    metrics,
    logger: logger.child({ module: 'api' }),
    health: { latest: (project, cluster) => newestReport(health, store.series, project, cluster), series: store.series },
    ...(sim ? { sim } : {}),
  });
  let externalURL: string | undefined;
  // The leader's work: alerting first (the controllers' health checks and healing raise alerts
  // through its manager; backlinks in notifications point at this server), then the control loops,
  // which also run the orphan sweep.
  const startWork = async (): Promise<Leadership> => {
    const alerting = await startAlerting({ store, metrics, logger: logger.child({ module: 'alerts' }), externalURL: () => process.env.MARINA_EXTERNAL_URL ?? externalURL, events: functions });
    const loops = await startControlLoops({
      store,
      providers,
      metrics,
      logger: logger.child({ module: 'controllers' }),
      defaultKubernetesVersion: matrix.default,
      health,
      series: store.series,
      ...(sim ? { sim } : {}),
      addons,
      alerts: alerting.manager,
      // Platform events (clusters, healing, etcd members, operations, backups) trigger functions.
      events: functions,
      operations: { encryptionKey: backend.encryptionKey, dataDir: opts.dataDir, ...(stepTimeoutFromEnv() ? { stepTimeoutMs: stepTimeoutFromEnv() } : {}) },
    }).catch(async (err: unknown) => {
      await alerting.stop();
      throw err;
    });
    return {
      async stop() {
        await loops.stop();
        await alerting.stop();
        // From now on another replica checks health: answer what it shares, not this one's last reports.
        health.clear();
      },
    };
  };
  let work: Leadership | undefined;
  let elector: LeaderElector | undefined;
  if (opts.controllers !== false) {
    if (backend.election) {
      // Several replicas: only the Lease holder runs the work, and hands it over when it loses it.
      elector = new LeaderElector({ ...backend.election, name: 'marina-controllers', logger: logger.child({ module: 'leader-election' }) }, startWork);
      elector.start();
    } else {
      work = await startWork();
    }
  }
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
      await elector?.stop();
      await work?.stop();
      await addons.stop();
      // Last: the controllers and the AlertManager publish events into it.
      await functions.stop();
      await providers.close();
      sim?.close();
      inventory.stop();
      await backend.close();
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
async function bootstrapAdmin(store: ServerStore, tokenFile: string, save?: (token: string) => Promise<void>): Promise<string | undefined> {
  const users = await store.list('User', { limit: 1 });
  if (users.items.length > 0) return undefined;
  try {
    await store.create({
      apiVersion: API_VERSION,
      kind: 'User',
      metadata: { name: 'admin' },
      spec: { displayName: 'Platform administrator', platformAdmin: true },
    });
  } catch (err) {
    // Another replica starting at the same moment bootstrapped first.
    if (isApiError(err) && err.code === 409) return undefined;
    throw err;
  }
  // A first project so that a newcomer can create a cluster right away.
  await store.create({
    apiVersion: API_VERSION,
    kind: 'Project',
    metadata: { name: 'default' },
    spec: { displayName: 'Default project', members: [{ user: 'admin', role: 'admin' }] },
  });
  const issued = await store.tokens.issue({ user: 'admin', description: 'bootstrap admin token' });
  writeFileSync(tokenFile, issued.token + '\n', { mode: 0o600 });
  await save?.(issued.token);
  chmodSync(tokenFile, 0o600); // the mode above applies only when the file is new
  return issued.token;
}
