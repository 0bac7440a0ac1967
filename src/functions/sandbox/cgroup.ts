// Per-instance cgroups: the kernel enforces an instance's memory (the OOM killer stops it at the
// limit, tmpfs pages included) and its number of tasks (a fork bomb gets EAGAIN), and Marina can
// kill every process of an instance at once.
//
// cgroup v1 (as on this development machine): the memory and pids hierarchies are writable by root;
// instances live under <Marina's own cgroup>/marina-fn-<pid>/ in each, so they stay inside whatever
// limits Marina itself runs under. cgroup v2: only under a directory delegated to Marina
// (MARINA_FUNCTIONS_CGROUP, e.g. a systemd unit with Delegate=yes), because v2 forbids controllers
// below a cgroup that holds processes (Marina's own) and Marina does not move itself.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CgroupLimits {
  memoryBytes: number;
  /** Tasks (processes and threads). */
  pids: number;
}

export interface InstanceCgroup {
  /** Files the sandbox's first process writes its pid into before it execs the sandbox. */
  readonly procsFiles: string[];
  /** The kernel's OOM killer stopped a process of this instance. */
  oomKilled(): boolean;
  /** SIGKILL to every process still in the cgroup. */
  killAll(): void;
  /** Removes the cgroup directories (after the processes are gone); true when done. */
  remove(): boolean;
}

export interface CgroupDriver {
  readonly version: 'v1' | 'v2';
  readonly parents: string[];
  create(name: string, limits: CgroupLimits): InstanceCgroup;
  /** Removes what a Marina that is no longer running left behind. */
  cleanupStale(): void;
  /** Removes this process's parent directories (at shutdown, after every instance is gone). */
  close(): void;
}

const ROOT = '/sys/fs/cgroup';
const PREFIX = 'marina-fn-';

function write(path: string, value: string): void {
  writeFileSync(path, value);
}

function tryWrite(path: string, value: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}

function pidsIn(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killPids(dir: string): void {
  for (const pid of pidsIn(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
}

function rmdirQuiet(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Stale parents: marina-fn-<pid> directories whose Marina is gone; kills and removes their instances. */
function removeStaleParents(base: string): void {
  let names: string[];
  try {
    names = readdirSync(base).filter((n) => n.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.slice(PREFIX.length));
    if (!Number.isInteger(pid) || pid === process.pid || pidAlive(pid)) continue;
    const dir = join(base, name);
    for (const child of readdirSync(dir, { withFileTypes: true })) {
      if (!child.isDirectory()) continue;
      killPids(join(dir, child.name));
      rmdirQuiet(join(dir, child.name));
    }
    rmdirQuiet(dir);
  }
}

/** The path of this process's cgroup in a v1 hierarchy that has `controller`. */
function ownV1Path(controller: string, selfCgroup: string): string | undefined {
  for (const line of selfCgroup.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers?.split(',').includes(controller)) return path;
  }
  return undefined;
}

class V1Driver implements CgroupDriver {
  readonly version = 'v1' as const;
  constructor(
    private readonly memBase: string,
    private readonly pidsBase: string,
  ) {}
  get parents(): string[] {
    return [join(this.memBase, `${PREFIX}${process.pid}`), join(this.pidsBase, `${PREFIX}${process.pid}`)];
  }
  create(name: string, limits: CgroupLimits): InstanceCgroup {
    const [memParent, pidsParent] = this.parents as [string, string];
    mkdirSync(memParent, { recursive: true });
    mkdirSync(pidsParent, { recursive: true });
    const mem = join(memParent, name);
    const pids = join(pidsParent, name);
    mkdirSync(mem);
    mkdirSync(pids);
    write(join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    // No swapping past the limit where swap accounting exists; absent elsewhere.
    tryWrite(join(mem, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
    tryWrite(join(mem, 'memory.swappiness'), '0');
    write(join(pids, 'pids.max'), String(limits.pids));
    return {
      procsFiles: [join(mem, 'cgroup.procs'), join(pids, 'cgroup.procs')],
      oomKilled: () => {
        try {
          return /^oom_kill [1-9]/m.test(readFileSync(join(mem, 'memory.oom_control'), 'utf8'));
        } catch {
          return false;
        }
      },
      killAll: () => {
        killPids(pids);
        killPids(mem);
      },
      remove: () => rmdirQuiet(mem) && rmdirQuiet(pids),
    };
  }
  cleanupStale(): void {
    removeStaleParents(this.memBase);
    removeStaleParents(this.pidsBase);
  }
  close(): void {
    for (const p of this.parents) rmdirQuiet(p);
  }
}

class V2Driver implements CgroupDriver {
  readonly version = 'v2' as const;
  constructor(private readonly delegated: string) {}
  get parents(): string[] {
    return [join(this.delegated, `${PREFIX}${process.pid}`)];
  }
  create(name: string, limits: CgroupLimits): InstanceCgroup {
    const parent = this.parents[0]!;
    if (!existsSync(parent)) {
      mkdirSync(parent);
      write(join(parent, 'cgroup.subtree_control'), '+memory +pids');
    }
    const dir = join(parent, name);
    mkdirSync(dir);
    write(join(dir, 'memory.max'), String(limits.memoryBytes));
    tryWrite(join(dir, 'memory.swap.max'), '0');
    write(join(dir, 'pids.max'), String(limits.pids));
    return {
      procsFiles: [join(dir, 'cgroup.procs')],
      oomKilled: () => {
        try {
          return /^oom_kill [1-9]/m.test(readFileSync(join(dir, 'memory.events'), 'utf8'));
        } catch {
          return false;
        }
      },
      killAll: () => {
        if (!tryWrite(join(dir, 'cgroup.kill'), '1')) killPids(dir);
      },
      remove: () => rmdirQuiet(dir),
    };
  }
  cleanupStale(): void {
    removeStaleParents(this.delegated);
  }
  close(): void {
    rmdirQuiet(this.parents[0]!);
  }
}

/**
 * The cgroup driver usable here, or why there is none. Probes by creating (and removing) a test
 * cgroup, so a read-only hierarchy is found out now rather than at the first invocation.
 */
export function detectCgroups(env: NodeJS.ProcessEnv = process.env): { driver?: CgroupDriver; problem?: string } {
  const delegated = env.MARINA_FUNCTIONS_CGROUP;
  let driver: CgroupDriver;
  if (existsSync(join(ROOT, 'cgroup.controllers'))) {
    if (!delegated) return { problem: 'cgroup v2 without a delegated cgroup (set MARINA_FUNCTIONS_CGROUP to a directory Marina may manage)' };
    const controllers = readFileSync(join(delegated, 'cgroup.controllers'), 'utf8');
    if (!/\bmemory\b/.test(controllers) || !/\bpids\b/.test(controllers)) {
      return { problem: `${delegated} does not offer the memory and pids controllers (has: ${controllers.trim()})` };
    }
    driver = new V2Driver(delegated);
  } else {
    let self: string;
    try {
      self = readFileSync('/proc/self/cgroup', 'utf8');
    } catch (err) {
      return { problem: `cannot read /proc/self/cgroup: ${(err as Error).message}` };
    }
    const mem = ownV1Path('memory', self);
    const pids = ownV1Path('pids', self);
    if (mem === undefined || pids === undefined || !existsSync(join(ROOT, 'memory')) || !existsSync(join(ROOT, 'pids'))) {
      return { problem: 'no cgroup v1 memory and pids hierarchies' };
    }
    driver = new V1Driver(join(ROOT, 'memory', mem), join(ROOT, 'pids', pids));
  }
  const probe = `probe-${process.pid}-${Date.now()}`;
  try {
    const cg = driver.create(probe, { memoryBytes: 64 * 2 ** 20, pids: 8 });
    cg.remove();
    driver.close();
  } catch (err) {
    return { problem: `cgroup ${driver.version} is not writable here: ${(err as Error).message}` };
  }
  return { driver };
}
