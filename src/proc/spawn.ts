// Long-running child processes in their own process group, with output to a log file.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SpawnLoggedOptions {
  /** Executable (absolute path recommended). */
  command: string;
  args?: string[];
  /** stdout and stderr are appended to this file (its directory is created). */
  logFile: string;
  /** Environment (default: process.env). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Let this Node process exit while the child still runs (child.unref()). The child is in its own
   * process group either way, so it survives the parent's death; default false.
   */
  unref?: boolean;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedProcess {
  /** pid of the child; also its process-group id (it leads its own group). */
  pid: number;
  command: string;
  args: string[];
  logFile: string;
  child: ChildProcess;
  startedAt: Date;
  /** Resolves when the child exits (never rejects). */
  exited: Promise<ExitInfo>;
  /** Exit info once exited, else undefined. */
  exitInfo(): ExitInfo | undefined;
}

/**
 * Starts a long-running binary in a new process group (detached), stdout/stderr appended to
 * logFile. Resolves once the process has been created (rejects if it could not be, e.g. ENOENT).
 */
export async function spawnLogged(options: SpawnLoggedOptions): Promise<SpawnedProcess> {
  const args = options.args ?? [];
  mkdirSync(dirname(options.logFile), { recursive: true });
  const fd = openSync(options.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(options.command, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  let info: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      info = { code, signal };
      resolve(info);
    });
    child.once('error', () => {
      info ??= { code: null, signal: null };
      resolve(info);
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err) => reject(new Error(`cannot start ${options.command}: ${err.message}`)));
  });
  if (options.unref) child.unref();
  return {
    pid: child.pid!,
    command: options.command,
    args,
    logFile: options.logFile,
    child,
    startedAt: new Date(),
    exited,
    exitInfo: () => info,
  };
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** True if a process with this pid exists (zombies included). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** True if any process of the process group `pgid` exists. */
export function isProcessGroupAlive(pgid: number): boolean {
  return isProcessAlive(-pgid);
}

export interface StopOptions {
  /** Time between SIGTERM and SIGKILL (default 10 s). */
  graceMs?: number;
  /** Time to wait after SIGKILL before giving up (default 5 s). */
  killWaitMs?: number;
  /** First signal (default SIGTERM). */
  signal?: NodeJS.Signals;
  pollMs?: number;
}

export interface StopResult {
  /** Whether SIGKILL was needed. */
  killed: boolean;
  /** Whether the group was already gone before we signalled it. */
  alreadyGone: boolean;
  elapsedMs: number;
}

/**
 * Stops a whole process group: `signal` (SIGTERM) to -pid, SIGKILL after graceMs, then waits
 * until no process of the group is left. Throws if the group survives SIGKILL.
 */
export async function stopProcessGroup(pid: number, options: StopOptions = {}): Promise<StopResult> {
  const graceMs = options.graceMs ?? 10_000;
  const killWaitMs = options.killWaitMs ?? 5_000;
  const pollMs = options.pollMs ?? 25;
  const start = Date.now();
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal process group ${pid}`);

  const signal = (sig: NodeJS.Signals): boolean => {
    try {
      process.kill(-pid, sig);
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ESRCH') return false;
      throw err;
    }
  };
  const waitGone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (!isProcessGroupAlive(pid)) return true;
      if (Date.now() >= deadline) return false;
      await sleep(pollMs);
    }
  };

  if (!signal(options.signal ?? 'SIGTERM')) return { killed: false, alreadyGone: true, elapsedMs: Date.now() - start };
  if (await waitGone(graceMs)) return { killed: false, alreadyGone: false, elapsedMs: Date.now() - start };
  signal('SIGKILL');
  if (await waitGone(killWaitMs)) return { killed: true, alreadyGone: false, elapsedMs: Date.now() - start };
  throw new Error(`process group ${pid} still alive ${killWaitMs} ms after SIGKILL`);
}

/** Resident set size of a process in bytes (Linux /proc), or undefined if unavailable. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Last `maxBytes` of a log file (for error messages); empty string if unreadable. */
export function tailFile(path: string, maxBytes = 4096): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > maxBytes ? text.slice(text.length - maxBytes) : text;
  } catch {
    return '';
  }
}
