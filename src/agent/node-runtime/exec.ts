// Running the host tools a real node needs (ip, nft, nsenter, ctr), with their stderr in the error.
import { execFile } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(`${command}: ${stderr.trim() || `exit ${code}`}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs `command args`; resolves stdout, rejects with a CommandError carrying stderr. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (err) reject(new CommandError(`${command} ${args.join(' ')}`, String(stderr || err.message), (err as { code?: number | string }).code ?? null));
        else resolve(String(stdout));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `nsenter --net=/proc/<pid>/ns/net -- command args` when pid is given, else the command as is. */
export function inNetns(pid: number | undefined, command: string, args: string[], opts?: RunOptions): Promise<string> {
  return pid === undefined ? run(command, args, opts) : run('nsenter', [`--net=/proc/${pid}/ns/net`, '--', command, ...args], opts);
}

/** Whether a network interface exists in the network namespace of `pid` (this one when undefined). */
export async function linkExists(name: string, pid?: number): Promise<boolean> {
  try {
    await inNetns(pid, 'ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}
