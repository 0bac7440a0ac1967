// One sandboxed process: started empty (so a warm pool can start it before it knows which function
// it will run), then loaded with one function revision, then invoked many times. The deadline of
// every invocation is enforced here by killing the instance: its process group, and every process
// left in its cgroups.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { ActivationOutcome } from '../../api/functions.js';
import type { InstanceCgroup } from './cgroup.js';
import { DEFAULT_LIMITS, sandboxCommand, type SandboxLimits, type SandboxProfile } from './command.js';
import type { SandboxHost } from './host.js';
import type { HostMessage, InvocationContext, RunnerMessage } from './protocol.js';

export interface InvokeResult {
  outcome: ActivationOutcome;
  value?: unknown;
  error?: string;
  logs: string[];
  logsTruncated: boolean;
}

interface Pending {
  resolve: (r: InvokeResult) => void;
  timer: NodeJS.Timeout;
  logs: string[];
  logBytes: number;
  logsTruncated: boolean;
}

const MAX_LOG_LINES = 200;
const MAX_LOG_BYTES = 64 * 1024;
/** Instance-level output (stderr, raw stdout) kept for diagnosing a start or crash. */
const MAX_DIAG_BYTES = 16 * 1024;

export type InstanceState = 'starting' | 'idle' | 'loading' | 'loaded' | 'dead';

/** Allocates host uids for instances (so no two live sandboxes share one) and hands them back. */
export class UidPool {
  private readonly free: number[] = [];
  private next: number;
  constructor(base: number) {
    this.next = base;
  }
  take(): number {
    return this.free.pop() ?? this.next++;
  }
  give(uid: number): void {
    this.free.push(uid);
  }
}

export interface StartOptions {
  host: SandboxHost;
  profile: SandboxProfile;
  limits?: SandboxLimits;
  uids?: UidPool;
  onExit?: (instance: SandboxInstance) => void;
}

export class SandboxInstance {
  readonly id = randomUUID().slice(0, 8);
  readonly profile: SandboxProfile;
  readonly startedAt = performance.now();
  state: InstanceState = 'starting';
  /** Resolves when the runner is up (or rejects if the sandbox failed to start). */
  readonly ready: Promise<void>;
  /** CPU milliseconds the runner reported last. */
  cpuMs = 0;
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private readonly pending = new Map<string, Pending>();
  private readonly cgroup?: InstanceCgroup;
  private readonly uid?: number;
  private loadWaiter?: { resolve: () => void; reject: (e: Error) => void };
  private killReason?: { outcome: ActivationOutcome; message: string; culprit?: string };
  private diag = '';
  private readonly in: Writable;

  private constructor(private readonly opts: StartOptions) {
    const { host, profile } = opts;
    this.profile = profile;
    const limits = opts.limits ?? DEFAULT_LIMITS;
    this.cgroup = host.cgroups?.create(`i-${this.id}`, { memoryBytes: profile.memoryMiB * 2 ** 20, pids: limits.pids });
    this.uid = host.setpriv ? opts.uids?.take() : undefined;
    const cmd = sandboxCommand(host, { profile, limits, procsFiles: this.cgroup?.procsFiles ?? [], ...(this.uid !== undefined ? { uid: this.uid } : {}) });
    // Own process group (detached) so a kill reaches the whole chain; no environment of Marina's.
    this.child = spawn(cmd.file, cmd.args, { detached: true, stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: {} });
    this.in = this.child.stdio[3] as Writable;
    const fromRunner = this.child.stdio[3] as Readable;
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    // A sandbox that never starts must not leave an unhandled rejection behind.
    this.ready.catch(() => undefined);
    createInterface({ input: fromRunner, crlfDelay: Infinity }).on('line', (line) => {
      let msg: RunnerMessage;
      try {
        msg = JSON.parse(line) as RunnerMessage;
      } catch {
        this.addDiag(line);
        return;
      }
      this.onMessage(msg, readyResolve);
    });
    this.in.on('error', () => undefined);
    fromRunner.on('error', () => undefined);
    for (const s of [this.child.stdout!, this.child.stderr!]) s.on('data', (d: Buffer) => this.onOutput(d.toString()));
    this.exited = new Promise<void>((resolve) => {
      this.child.on('error', (err) => {
        this.addDiag(String(err));
      });
      this.child.on('close', (code, signal) => {
        this.onClose(code, signal, readyReject);
        resolve();
      });
    });
  }

  static start(opts: StartOptions): SandboxInstance {
    return new SandboxInstance(opts);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Loads the compiled module with its environment; rejects with the module's error. */
  async load(code: string, env: Record<string, string>): Promise<void> {
    await this.ready;
    if (this.state !== 'idle') throw new Error(`instance ${this.id} is ${this.state}, cannot load`);
    this.state = 'loading';
    const done = new Promise<void>((resolve, reject) => (this.loadWaiter = { resolve, reject }));
    this.send({ t: 'load', code, env });
    await done;
    this.state = 'loaded';
  }

  /** Runs one invocation; the instance is killed if it passes ctx.deadline. Never rejects. */
  invoke(event: unknown, ctx: InvocationContext): Promise<InvokeResult> {
    if (this.state !== 'loaded') {
      return Promise.resolve({ outcome: 'crashed', error: `instance ${this.id} is ${this.state}`, logs: [], logsTruncated: false });
    }
    return new Promise<InvokeResult>((resolve) => {
      const id = ctx.invocationId;
      const timer = setTimeout(() => {
        this.kill({ outcome: 'timeout', message: `invocation exceeded its deadline (${new Date(ctx.deadline).toISOString()}) and the instance was killed`, culprit: id });
      }, Math.max(0, ctx.deadline - Date.now()));
      this.pending.set(id, { resolve, timer, logs: [], logBytes: 0, logsTruncated: false });
      this.send({ t: 'invoke', id, event, ctx });
    });
  }

  /** Stops the instance: its process group, then everything left in its cgroups. */
  kill(reason: { outcome: ActivationOutcome; message: string; culprit?: string } = { outcome: 'crashed', message: 'instance stopped' }): void {
    this.killReason ??= reason;
    if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    this.cgroup?.killAll();
  }

  /** Closes the runner's input (it exits by itself) and kills it if it lingers. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.state === 'dead') return;
    this.in.end();
    const timer = setTimeout(() => this.kill({ outcome: 'crashed', message: 'instance stopped' }), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private send(msg: HostMessage): void {
    this.in.write(JSON.stringify(msg) + '\n');
  }

  private onMessage(msg: RunnerMessage, readyResolve: () => void): void {
    switch (msg.t) {
      case 'ready':
        this.state = 'idle';
        readyResolve();
        return;
      case 'loaded':
        this.loadWaiter?.resolve();
        return;
      case 'loadError':
        this.state = 'idle';
        this.loadWaiter?.reject(new Error(msg.error));
        return;
      case 'log': {
        const p = msg.id ? this.pending.get(msg.id) : undefined;
        if (p) addLog(p, `${msg.level}: ${msg.line}`);
        else this.addDiag(msg.line);
        return;
      }
      case 'result': {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.cpuMs = msg.cpuMs;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        p.resolve(
          msg.ok
            ? { outcome: 'success', value: msg.value, logs: p.logs, logsTruncated: p.logsTruncated }
            : { outcome: 'error', error: msg.error, logs: p.logs, logsTruncated: p.logsTruncated },
        );
        return;
      }
    }
  }

  private onOutput(text: string): void {
    // Raw stdout/stderr (a handler writing to fd 1, Node's own fatal errors) belongs to the only
    // invocation in flight when there is one; otherwise it is instance output.
    if (this.pending.size === 1) {
      const p = this.pending.values().next().value!;
      for (const line of text.split('\n').filter(Boolean)) addLog(p, `output: ${line}`);
    }
    this.addDiag(text);
  }

  private addDiag(text: string): void {
    if (this.diag.length < MAX_DIAG_BYTES) this.diag += text.slice(0, MAX_DIAG_BYTES - this.diag.length) + (text.endsWith('\n') ? '' : '\n');
  }

  private onClose(code: number | null, signal: NodeJS.Signals | null, readyReject: (e: Error) => void): void {
    const wasStarting = this.state === 'starting';
    this.state = 'dead';
    const oom = this.cgroup?.oomKilled() === true || /heap out of memory|Reached heap limit/.test(this.diag);
    let reason = this.killReason;
    if (oom && reason?.outcome !== 'timeout') reason = { outcome: 'oom', message: `the instance was killed at its memory limit (${this.profile.memoryMiB} MiB)` };
    if (!reason) {
      const how = signal === 'SIGXCPU' ? 'SIGXCPU: its CPU-time budget is used up' : (signal ?? `exit code ${code}`);
      reason = { outcome: 'crashed', message: `the instance exited unexpectedly (${how})${this.diag ? `: ${this.diag.trim().slice(-2000)}` : ''}` };
    }
    if (wasStarting) readyReject(new Error(`sandbox did not start (${signal ?? `exit code ${code}`}): ${this.diag.trim().slice(-2000)}`));
    this.loadWaiter?.reject(new Error(reason.message));
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      const outcome = reason.culprit === undefined || reason.culprit === id ? reason.outcome : 'crashed';
      const message = outcome === reason.outcome ? reason.message : `the instance was killed because another invocation on it failed: ${reason.message}`;
      p.resolve({ outcome, error: message, logs: p.logs, logsTruncated: p.logsTruncated });
    }
    this.pending.clear();
    this.cgroup?.killAll();
    // The cgroup can be removed once its last task is reaped; that is usually at once.
    const removeCgroup = (tries: number) => {
      if (!this.cgroup || this.cgroup.remove() || tries <= 0) return;
      setTimeout(() => removeCgroup(tries - 1), 100).unref();
    };
    removeCgroup(50);
    if (this.uid !== undefined) this.opts.uids?.give(this.uid);
    this.opts.onExit?.(this);
  }
}

function addLog(p: Pending, line: string): void {
  if (p.logs.length >= MAX_LOG_LINES || p.logBytes + line.length > MAX_LOG_BYTES) {
    p.logsTruncated = true;
    return;
  }
  p.logs.push(line);
  p.logBytes += line.length;
}
