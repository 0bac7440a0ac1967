// Small helpers shared by the local-cluster benchmarks (bench/cluster.ts, bench/healing.ts):
// formatting, /proc readings, and the last-resort cleanup that SIGKILLs only the process groups a
// run's provider recorded under that run's own temp dir.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { isProcessGroupAlive } from '../src/proc/index.js';

export const MIB = 2 ** 20;
export const GIB = 2 ** 30;

/** Milliseconds as seconds with one decimal ('n/a' when unknown). */
export const sec = (ms: number | undefined): string => (ms === undefined || Number.isNaN(ms) ? 'n/a' : (ms / 1000).toFixed(1));

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The 1, 5 and 15 minute load averages. */
export const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

/** A Markdown table, first column left-aligned, the others right-aligned. */
export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// /proc

export interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  comm: string;
  /** utime + stime in clock ticks */
  ticks: number;
}

export function readStat(pid: number): ProcStat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const comm = s.slice(s.indexOf('(') + 1, close);
    const f = s.slice(close + 2).split(' ');
    return { pid, ppid: Number(f[1]), pgrp: Number(f[2]), comm, ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

export function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const e of readdirSync('/proc')) if (/^\d+$/.test(e)) {
    const s = readStat(Number(e));
    if (s) out.push(s);
  }
  return out;
}

/** The process group led by `leader` plus all descendants of `leader`. */
export function groupMembers(leader: number, stats: ProcStat[]): ProcStat[] {
  const found = new Map<number, ProcStat>();
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) {
    if (s.pgrp === leader) found.set(s.pid, s);
    (children.get(s.ppid) ?? children.set(s.ppid, []).get(s.ppid)!).push(s);
  }
  const queue = [leader];
  while (queue.length) {
    const p = queue.pop()!;
    for (const c of children.get(p) ?? []) if (!found.has(c.pid)) {
      found.set(c.pid, c);
      queue.push(c.pid);
    }
  }
  return [...found.values()];
}

/** System-wide busy CPU ticks (all cores) from /proc/stat. */
export function systemBusyTicks(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
}

/** CPU ticks of this process and of its reaped children (the kubectl runs). */
export function selfTicks(): number {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

// ---------------------------------------------------------------------------------------------
// memory

export interface Mem {
  /** resident set size */
  rss: number;
  /** proportional set size: shared pages divided among every process that maps them (machine-wide) */
  pss: number;
  /** anonymous resident pages (heaps, stacks): private to the process, what it really costs */
  anon: number;
}

/** RSS, PSS and anonymous memory in bytes (smaps_rollup; VmRSS / RssAnon if that is unreadable). */
export function memOf(pid: number): Mem | undefined {
  const kb = (t: string, field: string): number | undefined => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(t);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = kb(t, 'Rss');
    const pss = kb(t, 'Pss');
    const anon = kb(t, 'Anonymous');
    if (rss !== undefined && pss !== undefined && anon !== undefined) return { rss, pss, anon: anon + (kb(t, 'Pss_Shmem') ?? 0) };
  } catch {
    /* fall through */
  }
  try {
    const t = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = kb(t, 'VmRSS');
    if (rss !== undefined) return { rss, pss: rss, anon: kb(t, 'RssAnon') ?? rss };
  } catch {
    /* gone */
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// cleanup

/**
 * Last resort: SIGKILL the process groups the local provider started for this run — the pids in
 * `<root>/machines/*\/*\/*\/machine.json` and `<root>/endpoints/*\/*\/endpoint.json`, plus those in
 * `startedGroups` (remembered earlier; the set is extended with what the files name) — and only
 * when a member of the group names `dir` (the run's temp dir) on its command line. Returns the
 * process groups it killed.
 */
export function killRecordedGroups(root: string, dir: string, startedGroups: Set<number>): number[] {
  for (const sub of ['machines', 'endpoints']) {
    const walk = (d: string, depth: number): void => {
      if (!existsSync(d)) return;
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        const p = join(d, e.name);
        if (depth === 0) {
          for (const f of ['machine.json', 'endpoint.json']) {
            const pid = readJson<{ pid?: number }>(join(p, f))?.pid;
            if (pid) startedGroups.add(pid);
          }
        } else walk(p, depth - 1);
      }
    };
    walk(join(root, sub), sub === 'machines' ? 2 : 1);
  }
  const killed: number[] = [];
  const stats = allStats();
  for (const pgid of startedGroups) {
    if (!isProcessGroupAlive(pgid)) continue;
    // pgids are not reused while a member lives; check one member is ours anyway.
    const ours = stats.filter((s) => s.pgrp === pgid).some((s) => {
      try {
        return readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    });
    if (!ours) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
      killed.push(pgid);
    } catch {
      /* gone */
    }
  }
  return killed;
}

/**
 * After cleanup: removes the run's temp dir and prints what was left (process groups still alive,
 * provider directories the deletes did not remove). Sets a failing exit code if anything was.
 */
export function reportLeftovers(root: string, dir: string, startedGroups: Set<number>, prefix = ''): void {
  const alive = [...startedGroups].filter((p) => isProcessGroupAlive(p));
  const leftDirs = ['machines', 'endpoints'].flatMap((s) => (existsSync(join(root, s)) ? readdirSync(join(root, s)).map((e) => join(s, e)) : []));
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `${prefix}leftovers: ${startedGroups.size} process groups started in total, ${alive.length} alive${alive.length ? ` (${alive.join(', ')})` : ''}; ` +
      `provider dirs left before removal: ${leftDirs.length ? leftDirs.join(', ') : 'none'}; temp dir ${existsSync(dir) ? 'STILL EXISTS' : 'removed'}`,
  );
  if (alive.length || leftDirs.length || existsSync(dir)) process.exitCode = 1;
}
