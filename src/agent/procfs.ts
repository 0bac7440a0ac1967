// Process and disk facts from Linux /proc and the file system (no child processes, cheap to call).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { processRssBytes } from '../proc/spawn.js';

let ticks: number | undefined;

/** USER_HZ (clock ticks per second) for /proc/<pid>/stat times; 100 on practically every Linux. */
export function clockTicksPerSecond(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Parses the utime+stime of a /proc/<pid>/stat line, in clock ticks. */
export function parseStatCpuTicks(stat: string): number | undefined {
  // Field 2 (comm) is in parentheses and may contain spaces or ')' — split after the last ')'.
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

export interface ProcessUsage {
  rssBytes?: number;
  cpuSeconds?: number;
}

/** RSS and cumulative CPU seconds (user+system) of one process; fields missing if it is gone. */
export function processUsage(pid: number): ProcessUsage {
  const out: ProcessUsage = {};
  const rss = processRssBytes(pid);
  if (rss !== undefined) out.rssBytes = rss;
  try {
    const t = parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    if (t !== undefined) out.cpuSeconds = t / clockTicksPerSecond();
  } catch {
    /* gone */
  }
  return out;
}

/** Bytes allocated on disk under `dir` (like `du -s`), hard links counted once. 0 if missing. */
export async function diskUsageBytes(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch {
      return;
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    total += st.blocks * 512;
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = await readdir(path);
    } catch {
      return;
    }
    for (const n of names) await walk(join(path, n));
  };
  await walk(dir);
  return total;
}
