// Runs the machine's processes (etcd, kube-apiserver, ...) as children of the agent, in the agent's
// own process group, like systemd units with Restart=always: started in order (each waiting for the
// previous one's readyUrl), restarted with exponential backoff when they exit, stopped with
// SIGTERM then SIGKILL. The agent leads the group, so killing the group kills everything.
//
// src/proc's spawnLogged is not used because it always detaches (a new process group per child),
// which would let children survive when Marina kills the agent's group.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { httpsRequest } from '../proc/http.js';
import type { AgentProcessConfig, AgentProcessTLS } from './config.js';
import type { KubeletLog } from './virtual-kubelet.js';

/** `held`: stopped on request (a day-2 operation) and not restarted until released. */
export type ProcessState = 'pending' | 'running' | 'backoff' | 'stopping' | 'stopped' | 'held';

export interface ProcessInfo {
  name: string;
  state: ProcessState;
  pid?: number;
  /** readyUrl answered 200 since the last (re)start (true at once when there is no readyUrl). */
  ready: boolean;
  restarts: number;
  startedAt?: string;
  lastExit?: { code: number | null; signal: string | null; at: string };
  lastError?: string;
}

export interface SupervisorOptions {
  logDir: string;
  log: KubeletLog;
  /** SIGTERM → SIGKILL grace at stop (default 10 s). */
  stopGraceMs?: number;
  /** Restart backoff (default 1 s doubling to 30 s; reset after 60 s of uptime). */
  backoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number };
  /** Pause between readiness probes (default 250 ms). */
  probeIntervalMs?: number;
  /** Processes held (stopped on request) when the agent starts: they stay down until released. */
  held?: readonly string[];
}

/**
 * One probe of a readiness URL: true on HTTP 200. TLS files are read at every probe, so rotated
 * certificates are picked up without restarting the agent.
 */
async function probe(url: string, tls: AgentProcessTLS | undefined): Promise<boolean> {
  if (url.startsWith('https:')) {
    const material = tls
      ? await Promise.all([readFile(tls.ca), readFile(tls.cert), readFile(tls.key)]).then(([ca, cert, key]) => ({ ca, cert, key }))
      : {};
    const res = await httpsRequest(url, { ...material, requestTimeoutMs: 2000 });
    return res.status === 200;
  }
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

class Managed {
  child: ChildProcess | undefined;
  state: ProcessState = 'pending';
  ready = false;
  restarts = 0;
  startedAtMs: number | undefined;
  lastExit: ProcessInfo['lastExit'];
  lastError: string | undefined;
  backoffMs: number;
  restartTimer: NodeJS.Timeout | undefined;
  exited: Promise<void> = Promise.resolve();
  /** Resolves when the current incarnation became ready or exited. */
  readiness: Promise<boolean> = Promise.resolve(false);
  /** Stopped on request: not restarted until released. */
  held = false;

  constructor(
    readonly spec: AgentProcessConfig,
    initialBackoff: number,
  ) {
    this.backoffMs = initialBackoff;
  }

  info(): ProcessInfo {
    const i: ProcessInfo = { name: this.spec.name, state: this.state, ready: this.ready, restarts: this.restarts };
    if (this.child?.pid !== undefined) i.pid = this.child.pid;
    if (this.startedAtMs !== undefined && this.child) i.startedAt = new Date(this.startedAtMs).toISOString();
    if (this.lastExit) i.lastExit = this.lastExit;
    if (this.lastError) i.lastError = this.lastError;
    return i;
  }
}

export class ProcessSupervisor {
  private readonly procs: Managed[];
  private readonly logDir: string;
  private readonly log: KubeletLog;
  private readonly stopGraceMs: number;
  private readonly initialBackoff: number;
  private readonly maxBackoff: number;
  private readonly resetAfter: number;
  private readonly probeInterval: number;
  private stopping = false;

  constructor(specs: AgentProcessConfig[], opts: SupervisorOptions) {
    this.logDir = opts.logDir;
    this.log = opts.log;
    this.stopGraceMs = opts.stopGraceMs ?? 10_000;
    this.initialBackoff = opts.backoff?.initialMs ?? 1000;
    this.maxBackoff = opts.backoff?.maxMs ?? 30_000;
    this.resetAfter = opts.backoff?.resetAfterMs ?? 60_000;
    this.probeInterval = opts.probeIntervalMs ?? 250;
    this.procs = specs.map((s) => new Managed(s, this.initialBackoff));
    for (const p of this.procs) if (opts.held?.includes(p.spec.name)) (p.held = true), (p.state = 'held');
  }

  /** Names of the processes held down on request. */
  heldNames(): string[] {
    return this.procs.filter((p) => p.held).map((p) => p.spec.name);
  }

  /**
   * Stops the named processes (last started first) and keeps them down, surviving crashes of
   * theirs, until release(). Unknown names throw before anything stops. Idempotent. `immediate`:
   * SIGKILL at once, for a caller that throws the process's state away anyway (a restore).
   */
  async hold(names: readonly string[], opts: { immediate?: boolean } = {}): Promise<void> {
    const targets = this.pick(names);
    for (const p of targets) p.held = true;
    for (const p of [...targets].reverse()) {
      if (p.restartTimer) clearTimeout(p.restartTimer);
      p.restartTimer = undefined;
      await this.terminate(p, opts.immediate ? 0 : this.stopGraceMs);
      p.state = 'held';
    }
  }

  /** Starts the named held processes again (in start order), without waiting for their readiness. */
  release(names: readonly string[]): void {
    for (const p of this.pick(names)) {
      if (!p.held) continue;
      p.held = false;
      if (this.stopping) continue;
      if (p.state === 'held' || p.state === 'stopped') this.spawn(p);
    }
  }

  private pick(names: readonly string[]): Managed[] {
    const unknown = names.filter((n) => !this.procs.some((p) => p.spec.name === n));
    if (unknown.length > 0) throw new Error(`no process named ${unknown.join(', ')}; this machine runs ${this.procs.map((p) => p.spec.name).join(', ') || 'none'}`);
    return this.procs.filter((p) => names.includes(p.spec.name));
  }

  /** SIGTERM, then SIGKILL after `graceMs` (0: SIGKILL at once); resolves once the child exited. */
  private async terminate(p: Managed, graceMs = this.stopGraceMs): Promise<void> {
    const child = p.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    p.state = 'stopping';
    child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const timer = setTimeout(() => {
      this.log.warn({ process: p.spec.name, pid: child.pid }, 'process ignored SIGTERM; sending SIGKILL');
      child.kill('SIGKILL');
    }, graceMs);
    await p.exited;
    clearTimeout(timer);
  }

  processes(): ProcessInfo[] {
    return this.procs.map((p) => p.info());
  }

  /** pid per running process. */
  pids(): { name: string; pid: number }[] {
    return this.procs.flatMap((p) => (p.child?.pid !== undefined && p.state === 'running' ? [{ name: p.spec.name, pid: p.child.pid }] : []));
  }

  /** Every process spawned and alive. */
  allRunning(): boolean {
    return this.procs.every((p) => p.state === 'running');
  }

  /**
   * Starts the processes in order, each after the previous one is ready. Resolves when all are
   * ready, or early when stop() is called. A process that keeps crashing keeps this waiting.
   */
  async start(): Promise<void> {
    for (const p of this.procs) {
      if (this.stopping) return;
      if (p.held) continue;
      this.spawn(p);
      while (!this.stopping && !p.held) {
        if (await p.readiness) break;
        // It exited before becoming ready: wait for the restart, then for its readiness again.
        await this.untilRespawned(p);
      }
    }
  }

  private async untilRespawned(p: Managed): Promise<void> {
    while (!this.stopping && !p.held && p.state !== 'running') await new Promise((r) => setTimeout(r, 50));
  }

  private spawn(p: Managed): void {
    const spec = p.spec;
    mkdirSync(this.logDir, { recursive: true });
    const logFile = join(this.logDir, `${spec.name}.log`);
    let fd: number | undefined;
    let child: ChildProcess;
    try {
      fd = openSync(logFile, 'a', 0o600);
      child = spawn(spec.command, spec.args, {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, ...(spec.env ?? {}) },
        // Same process group as the agent: Marina stops the whole machine by signalling the group.
        detached: false,
      });
    } catch (err) {
      this.onExit(p, null, null, (err as Error).message);
      return;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    p.child = child;
    p.state = 'running';
    p.ready = false;
    p.lastError = undefined;
    p.startedAtMs = Date.now();
    let settled = false;
    p.exited = new Promise<void>((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: string) => {
        if (settled) return;
        settled = true;
        this.onExit(p, code, signal, error);
        resolve();
      };
      child.once('exit', (code, signal) => finish(code, signal));
      child.once('error', (err) => {
        // Spawn failures (ENOENT, EACCES) emit 'error' without 'exit'.
        if (child.pid === undefined) finish(null, null, err.message);
      });
    });
    this.log.info({ process: spec.name, pid: child.pid, restarts: p.restarts }, 'process started');
    p.readiness = this.waitReady(p, child);
  }

  private async waitReady(p: Managed, child: ChildProcess): Promise<boolean> {
    const url = p.spec.readyUrl;
    const alive = () => p.child === child && p.state === 'running';
    if (!url) {
      // Give a broken binary a moment to fail before calling it ready.
      await new Promise((r) => setTimeout(r, 100));
      p.ready = alive();
      return p.ready;
    }
    let lastLog = Date.now();
    let last = '';
    while (alive() && !this.stopping) {
      try {
        if (await probe(url, p.spec.tls)) {
          if (!alive()) return false;
          p.ready = true;
          this.log.info({ process: p.spec.name, url, afterMs: Date.now() - (p.startedAtMs ?? Date.now()) }, 'process ready');
          return true;
        }
        last = 'not 200';
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        this.log.warn({ process: p.spec.name, url, last }, 'still waiting for process to become ready');
      }
      await new Promise((r) => setTimeout(r, this.probeInterval));
    }
    return false;
  }

  private onExit(p: Managed, code: number | null, signal: NodeJS.Signals | null, error?: string): void {
    p.child = undefined;
    p.ready = false;
    p.lastExit = { code, signal, at: new Date().toISOString() };
    if (error) p.lastError = error;
    if (this.stopping) {
      p.state = 'stopped';
      return;
    }
    if (p.held) {
      p.state = 'held';
      this.log.info({ process: p.spec.name, code, signal }, 'process held: not restarting');
      return;
    }
    // A process that ran long enough starts over with the shortest backoff.
    if (p.startedAtMs !== undefined && Date.now() - p.startedAtMs >= this.resetAfter) p.backoffMs = this.initialBackoff;
    const delay = p.backoffMs;
    p.backoffMs = Math.min(p.backoffMs * 2, this.maxBackoff);
    p.state = 'backoff';
    this.log.warn({ process: p.spec.name, code, signal, error, restartInMs: delay, restarts: p.restarts }, 'process exited; restarting');
    p.restartTimer = setTimeout(() => {
      p.restartTimer = undefined;
      if (this.stopping) return;
      p.restarts++;
      this.spawn(p);
    }, delay);
  }

  /** Stops every process, last started first: SIGTERM, then SIGKILL after the grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const p of this.procs) {
      if (p.restartTimer) clearTimeout(p.restartTimer);
      if (p.state !== 'running') p.state = 'stopped';
    }
    for (const p of [...this.procs].reverse()) {
      const child = p.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        p.state = 'stopped';
        continue;
      }
      await this.terminate(p);
      this.log.info({ process: p.spec.name, exit: p.lastExit }, 'process stopped');
    }
  }
}
