// What this host offers for sandboxing, found once at start-up: bubblewrap (required: without it
// Marina runs no function at all), prlimit and setpriv from util-linux, the cgroup driver, the
// Node binary and the shared libraries it needs (the only files of the host a sandbox sees).
import { execFileSync } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectCgroups, type CgroupDriver } from './cgroup.js';

export interface Bind {
  /** Path on the host. */
  src: string;
  /** Path inside the sandbox. */
  dst: string;
}

export interface SandboxHost {
  bwrap: string;
  prlimit?: string;
  setpriv?: string;
  /** Node inside the sandbox (same path as on the host). */
  node: string;
  /** Read-only binds: the node binary, its libraries, the runner. */
  binds: Bind[];
  runnerPath: string;
  cgroups?: CgroupDriver;
  /** How memory is bounded: by the kernel (cgroup) or only by V8's heap limit plus RLIMIT_AS. */
  memory: 'cgroup' | 'rlimit';
  /** How tasks are bounded: pids cgroup, RLIMIT_NPROC of a per-instance uid, or not at all. */
  pids: 'cgroup' | 'rlimit-uid' | 'none';
  /** Instances run under their own host uid (from uidBase on), so they cannot signal each other or Marina. */
  uidBase?: number;
  /** Why something is weaker than it could be, for the log and the docs. */
  notes: string[];
}

export const RUNNER_IN_SANDBOX = '/runner/runner.mjs';

function which(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** The shared libraries `ldd` lists for `binary`, and the dynamic loader. */
function sharedLibraries(binary: string): Bind[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const binds: Bind[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(?:\S+\s+=>\s+)?(\/\S+)\s+\(0x/.exec(line);
    if (m) binds.push({ src: realpathSync(m[1]!), dst: m[1]! });
  }
  return binds;
}

export class SandboxUnavailable extends Error {}

export function detectSandboxHost(env: NodeJS.ProcessEnv = process.env): SandboxHost {
  const bwrap = which('bwrap', env);
  if (!bwrap) throw new SandboxUnavailable('bubblewrap (bwrap) is not installed: `apt-get install bubblewrap`; Marina runs no function without a sandbox');
  const notes: string[] = [];
  const node = realpathSync(process.execPath);
  const runnerPath = fileURLToPath(new URL('./runner.js', import.meta.url));
  const binds: Bind[] = [{ src: node, dst: node }, ...sharedLibraries(node), { src: runnerPath, dst: RUNNER_IN_SANDBOX }];
  const root = process.geteuid?.() === 0;
  const setpriv = root ? which('setpriv', env) : undefined;
  const prlimit = which('prlimit', env);
  if (!prlimit) notes.push('prlimit (util-linux) missing: no CPU-time limit');
  const { driver, problem } = detectCgroups(env);
  if (problem) notes.push(`memory and tasks not enforced by cgroups: ${problem}`);
  const uidBase = setpriv ? Number(env.MARINA_FUNCTIONS_UID_BASE ?? 1_500_000) : undefined;
  if (!setpriv) notes.push(root ? 'setpriv missing: instances keep Marina\'s uid' : 'Marina is not root: instances run under its uid (no per-instance uid)');
  return {
    bwrap,
    ...(prlimit ? { prlimit } : {}),
    ...(setpriv ? { setpriv } : {}),
    node,
    binds,
    runnerPath,
    ...(driver ? { cgroups: driver } : {}),
    memory: driver ? 'cgroup' : 'rlimit',
    pids: driver ? 'cgroup' : setpriv && prlimit ? 'rlimit-uid' : 'none',
    ...(uidBase !== undefined ? { uidBase } : {}),
    notes,
  };
}
