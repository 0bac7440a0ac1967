// Helpers for end-to-end tests through the product's own surfaces: a real `marina server` process
// (in its own process group, so a test can stop it, and only it, by group), the real `marina` CLI,
// the real kubectl / etcdctl, and what the local provider leaves on disk and in /proc.
//
// Cleanup rule: tests stop only what they started. The server is our child; the machines and
// endpoint balancers are its (detached) children, recorded with their pids in the data
// directory's `local/` records. `killLeftovers` signals exactly those process groups (after
// checking that the pid still belongs to this data directory), then any process whose command
// line names the test's temporary directory.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isProcessAlive, isProcessGroupAlive, isPortListening, tailFile } from '../../src/proc/index.js';
import type { ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { API_PATH, MarinaClient, type ApiResponse } from '../../src/client/index.js';

export { pickAddressBase } from './loopback.js';

const execFileAsync = promisify(execFile);

/** dist/test/support → repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'marina.js');


export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, pollMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(pollMs);
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

// ---------- the server process ----------

export interface ServerProcess {
  pid: number;
  url: string;
  logFile: string;
  child: ChildProcess;
  /** The admin token printed on the first start of a data directory. */
  bootstrapToken?: string;
  /** SIGTERM to the server's process group; waits for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }>;
  running(): boolean;
  log(): string;
}

export interface StartServerOptions {
  dataDir: string;
  /** 127.0.0.1:PORT */
  listen: string;
  /** Appended to (the server's stdout and stderr). */
  logFile: string;
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** More `marina server` flags, e.g. --no-controllers or --store kubernetes ... */
  args?: string[];
  /** Called with the pid as soon as the process exists (before it listens). */
  onSpawn?: (pid: number) => void;
}

/** Starts `node bin/marina.js server` detached (own process group) and waits for "listening". */
export async function startServerProcess(o: StartServerOptions): Promise<ServerProcess> {
  const before = existsSync(o.logFile) ? readFileSync(o.logFile, 'utf8').length : 0;
  const fd = openSync(o.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [BIN, 'server', '--data-dir', o.dataDir, '--listen', o.listen, ...(o.args ?? [])], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: o.env,
    });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const log = () => (existsSync(o.logFile) ? readFileSync(o.logFile, 'utf8').slice(before) : '');
  const running = () => child.exitCode === null && child.signalCode === null;
  const pid = child.pid!;
  o.onSpawn?.(pid);
  const stop: ServerProcess['stop'] = async (graceMs = 30_000) => {
    if (!running()) return { ...(await exited), killed: false };
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    return { ...(await exited), killed: timedOut };
  };
  const end = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    const text = log();
    const m = /Marina listening on (https?:\/\/\S+)/.exec(text);
    if (m) {
      const token = /bootstrap admin token: (\S+)/.exec(text)?.[1];
      return { pid, url: m[1]!, logFile: o.logFile, child, ...(token ? { bootstrapToken: token } : {}), stop, running, log };
    }
    if (!running() || Date.now() > end) {
      await stop(5_000);
      throw new Error(`marina server did not start:\n${text}`);
    }
    await sleep(50);
  }
}

/** The environment a test server runs with: nothing of the developer's Marina settings leaks in. */
export function serverEnv(o: { home: string; toolchain: ResolvedToolchain; addressBase: string; logLevel?: string }): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: o.home,
    // The toolchain the test found (the real $HOME's cache), whatever HOME the server sees.
    MARINA_BIN_DIR: dirname(o.toolchain.paths.etcd),
    MARINA_LOCAL_ADDRESS_BASE: o.addressBase,
    MARINA_LOG_LEVEL: o.logLevel ?? process.env.E2E_LOG_LEVEL ?? 'info',
  };
}

// ---------- the CLI ----------

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `marina` CLI with its own HOME and config file. */
export class Cli {
  constructor(private readonly home: string) {}

  env(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH, HOME: this.home, MARINA_CONFIG: join(this.home, 'config.yaml') };
  }

  run(args: string[], timeoutMs = 60_000): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`marina ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Runs and requires exit code `want` (0), with the output in the failure message. */
  async ok(args: string[], timeoutMs = 60_000, want = 0): Promise<CliResult> {
    const r = await this.run(args, timeoutMs);
    if (r.code !== want) {
      throw new Error(`marina ${args.join(' ')} exited ${r.code}, wanted ${want}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
    return r;
  }

  async json<T>(args: string[]): Promise<T> {
    return JSON.parse((await this.ok([...args, '-o', 'json'])).stdout) as T;
  }
}

// ---------- kubectl / etcdctl ----------

export async function kubectl(toolchain: ResolvedToolchain, kubeconfig: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const { stdout } = await execFileAsync(toolchain.paths.kubectl, ['--kubeconfig', kubeconfig, ...args], { timeout: timeoutMs });
  return stdout;
}

/** etcdctl against `endpoints` with a client certificate from an etcd machine's directory. */
export async function etcdctl(toolchain: ResolvedToolchain, machineDir: string, endpoints: string[], args: string[], timeoutMs = 15_000): Promise<string> {
  const { stdout } = await execFileAsync(
    toolchain.paths.etcdctl,
    [
      `--endpoints=${endpoints.join(',')}`,
      `--cacert=${join(machineDir, 'pki/etcd/ca.crt')}`,
      `--cert=${join(machineDir, 'pki/probe.crt')}`,
      `--key=${join(machineDir, 'pki/probe.key')}`,
      '--dial-timeout=3s',
      '--command-timeout=5s',
      ...args,
    ],
    { timeout: timeoutMs },
  );
  return stdout;
}

// ---------- what the local provider keeps on disk ----------

export interface MachineRecordOnDisk {
  project: string;
  cluster: string;
  name: string;
  dir: string;
  uid: string;
  address: string;
  pid?: number;
}

export interface EndpointRecordOnDisk {
  project: string;
  cluster: string;
  dir: string;
  address: string;
  port: number;
  pid?: number;
}

const subdirs = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name) : [];

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Every `local/machines/<project>/<cluster>/<machine>/machine.json` of a data directory. */
export function machineRecords(dataDir: string): MachineRecordOnDisk[] {
  const root = join(dataDir, 'local', 'machines');
  const out: MachineRecordOnDisk[] = [];
  for (const project of subdirs(root)) {
    for (const cluster of subdirs(join(root, project))) {
      for (const name of subdirs(join(root, project, cluster))) {
        const dir = join(root, project, cluster, name);
        const r = readJson<{ uid: string; address: string; pid?: number }>(join(dir, 'machine.json'));
        if (r) out.push({ project, cluster, name, dir, ...r });
      }
    }
  }
  return out;
}

/** Every `local/endpoints/<project>/<cluster>/endpoint.json` of a data directory. */
export function endpointRecords(dataDir: string): EndpointRecordOnDisk[] {
  const root = join(dataDir, 'local', 'endpoints');
  const out: EndpointRecordOnDisk[] = [];
  for (const project of subdirs(root)) {
    for (const cluster of subdirs(join(root, project))) {
      const dir = join(root, project, cluster);
      const r = readJson<{ address: string; port: number; pid?: number }>(join(dir, 'endpoint.json'));
      if (r) out.push({ project, cluster, dir, ...r });
    }
  }
  return out;
}

function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

/** PIDs of processes (not this one) whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    if (cmdline(Number(entry))?.join(' ').includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Machine agent processes of a data directory (their command line names an agent.json under it),
 * with the Machine uid they were started for (`--machine-uid`).
 */
export function agentProcesses(dataDir: string): { pid: number; config: string; uid?: string }[] {
  const prefix = join(dataDir, 'local', 'machines') + '/';
  const out: { pid: number; config: string; uid?: string }[] = [];
  for (const pid of processesMentioning(prefix)) {
    const args = cmdline(pid) ?? [];
    const i = args.indexOf('--config');
    const config = i >= 0 ? args[i + 1] : undefined;
    const u = args.indexOf('--machine-uid');
    if (args.some((a) => a.endsWith('/agent/main.js')) && config?.startsWith(prefix) && config.endsWith('/agent.json')) {
      out.push({ pid, config, ...(u >= 0 && args[u + 1] ? { uid: args[u + 1] } : {}) });
    }
  }
  return out;
}

/** Is `pid` alive and still the process whose command line names `configPath` (pids get reused)? */
export function isOurProcess(pid: number, configPath: string): boolean {
  return isProcessAlive(pid) && (cmdline(pid) ?? []).includes(configPath);
}

/** Ports the local provider's machines and endpoints listen on. */
export const MACHINE_PORTS = [2379, 2380, 6443, 10250, 10257, 10259];

export async function listeningPorts(machineAddresses: Iterable<string>, endpointAddresses: Iterable<string>): Promise<string[]> {
  const listening: string[] = [];
  for (const host of machineAddresses) {
    for (const port of MACHINE_PORTS) if (await isPortListening(host, port, 300)) listening.push(`${host}:${port}`);
  }
  for (const host of endpointAddresses) if (await isPortListening(host, 6443, 300)) listening.push(`${host}:6443`);
  return listening;
}

/**
 * Last-resort cleanup after a failed test: SIGKILL the process groups recorded in the data
 * directory (only while the pid still runs our config), then any process naming `tmp`.
 * Returns what it had to kill, so a test can report it.
 */
export async function killLeftovers(dataDir: string, tmp: string): Promise<number[]> {
  const killed: number[] = [];
  const groups: { pid: number; config: string }[] = [
    ...machineRecords(dataDir).flatMap((r) => (r.pid ? [{ pid: r.pid, config: join(r.dir, 'agent.json') }] : [])),
    ...endpointRecords(dataDir).flatMap((r) => (r.pid ? [{ pid: r.pid, config: join(r.dir, 'lb.json') }] : [])),
  ];
  for (const g of groups) {
    if (g.pid > 1 && isOurProcess(g.pid, g.config) && isProcessGroupAlive(g.pid)) {
      try {
        process.kill(-g.pid, 'SIGKILL');
        killed.push(g.pid);
      } catch {
        /* gone meanwhile */
      }
    }
  }
  for (const pid of processesMentioning(tmp)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  if (killed.length > 0) await sleep(500);
  return killed;
}

export function serverLogTail(logFile: string, chars = 4000): string {
  return tailFile(logFile, chars);
}

/**
 * after(): deletes the cluster if a failed test left it (so the server stops its machines), stops
 * the server, kills whatever is left of the data directory's machines, removes `tmp`. Never throws
 * before `tmp` is gone.
 */
export async function teardown(o: { tmp: string; dataDir: string; cli?: Cli; server?: ServerProcess; cluster: string }): Promise<void> {
  if (!o.tmp) return;
  try {
    if (o.cli && o.server?.running() && existsSync(join(o.tmp, 'home', 'config.yaml'))) {
      const left = await o.cli.run(['get', 'clusters', '-o', 'name'], 30_000).catch(() => undefined);
      if (left?.stdout.includes(`cluster/${o.cluster}`)) {
        const r = await o.cli
          .run(['cluster', 'delete', o.cluster, '--wait', '--timeout', '3m'], 200_000)
          .catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
        if (r.code !== 0) console.log(`# cleanup: cluster delete failed (${r.code}): ${r.stderr}`);
      }
    }
  } catch (err) {
    console.log(`# cleanup: ${(err as Error).message}`);
  }
  try {
    const stopped = await o.server?.stop();
    if (stopped?.killed) console.log('# cleanup: the server needed SIGKILL');
  } catch (err) {
    console.log(`# cleanup: ${(err as Error).message}`);
  }
  try {
    const killed = await killLeftovers(o.dataDir, o.tmp);
    if (killed.length > 0) console.log(`# cleanup: killed leftover processes ${killed.join(' ')}`);
    if (process.env.E2E_KEEP_LOGS) console.log(`# server log:\n${serverLogTail(join(o.tmp, 'server.log'), 50_000)}`);
  } finally {
    rmSync(o.tmp, { recursive: true, force: true });
  }
}

/** One call to a Marina API under API_PATH, through the client; never throws on an HTTP status. */
export function apiRequest(url: string, token: string, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  return new MarinaClient({ server: url, token }).call(method, `${API_PATH}${path}`, { body });
}
