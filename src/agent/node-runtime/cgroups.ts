// cgroups of a real node: one subtree `<root>` in every mounted hierarchy (cgroup v1 controllers,
// name=systemd, the v2 "unified" one). The node's containerd, shims and namespace holder live in
// `<root>/runtime`, kubelet and kube-proxy in `<root>/kubelet`, pods in `<root>/kubepods` (kubelet's
// cgroupRoot). Killing the subtree ends everything the node runs; removing it leaves nothing.
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function unescapeMount(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** `<fstype> <mount point>` of every mount visible to this process. */
export function mountPoints(): { type: string; path: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' '))
    .map((f) => ({ path: unescapeMount(f[4] ?? ''), type: f[f.indexOf('-') + 1] ?? '' }))
    .filter((m) => m.path);
}

/** Mount points at or below `prefix`. */
export function mountsUnder(prefix: string): string[] {
  return mountPoints()
    .map((m) => m.path)
    .filter((p) => p === prefix || p.startsWith(`${prefix}/`));
}

/** Mount points of every cgroup hierarchy. */
export function cgroupMounts(): string[] {
  return mountPoints()
    .filter((m) => m.type === 'cgroup' || m.type === 'cgroup2')
    .map((m) => m.path);
}

/**
 * cgroup v1 (or hybrid: v1 controllers plus a controller-less v2): kubelet ≥ 1.35 refuses to start
 * there unless its configuration says `failCgroupV1: false`.
 */
export function isCgroupV1(): boolean {
  return mountPoints().some((m) => m.type === 'cgroup');
}

/** Creates `<root>` and each `<root>/<sub>` in every hierarchy. */
export function createCgroups(root: string, subs: string[]): void {
  for (const mp of cgroupMounts()) {
    for (const rel of [root, ...subs.map((s) => `${root}/${s}`)]) {
      mkdirSync(join(mp, rel), { recursive: true });
      // A new v1 cpuset cgroup has no CPUs and no memory nodes, and no process can join it
      // ("echo: I/O error") until both are copied from its parent.
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const file = join(mp, rel, f);
        if (existsSync(file) && readFileSync(file, 'utf8').trim() === '') writeFileSync(file, readFileSync(join(mp, rel, '..', f), 'utf8'));
      }
    }
  }
}

/** The `<root>/<sub>` directory of every hierarchy, space-separated (for a shell to join). */
export function cgroupDirsOf(root: string, sub: string): string {
  return cgroupMounts()
    .map((mp) => join(mp, root, sub))
    .join(' ');
}

/** A shell snippet that moves the shell into every directory of $MARINA_CGROUP_DIRS. */
export const JOIN_CGROUPS = 'for h in $MARINA_CGROUP_DIRS; do echo $$ > "$h/cgroup.procs"; done';

/** Every cgroup directory at or below `relative` in every hierarchy, deepest first. */
export function cgroupDirs(relative: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    try {
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    } catch {
      return;
    }
    out.push(dir);
  };
  for (const mp of cgroupMounts()) if (existsSync(join(mp, relative))) walk(join(mp, relative));
  return out;
}

export function pidsIn(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
    } catch {
      /* removed meanwhile */
    }
  }
  return [...pids];
}

/** Signals every process of the subtree until it is empty (SIGKILL), or until `timeoutMs`. */
export async function killSubtree(relative: string, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = pidsIn(cgroupDirs(relative)).filter((p) => p !== process.pid);
    if (pids.length === 0 || Date.now() > deadline) return pids;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(100);
  }
}

/** Removes the subtree's (empty) cgroups, deepest first; returns what could not be removed. */
export function removeCgroups(relative: string): string[] {
  for (const dir of cgroupDirs(relative)) {
    try {
      rmdirSync(dir);
    } catch {
      /* reported below */
    }
  }
  return cgroupDirs(relative);
}

/** Bytes of memory charged to the subtree (cgroup v1 memory controller or v2), NaN if unknown. */
export function memoryBytes(relative: string): number {
  for (const mp of cgroupMounts()) {
    for (const f of ['memory.usage_in_bytes', 'memory.current']) {
      const file = join(mp, relative, f);
      if (existsSync(file)) return Number(readFileSync(file, 'utf8'));
    }
  }
  return Number.NaN;
}
