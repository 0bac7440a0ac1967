// Command lines of running processes, from /proc/<pid>/cmdline (Linux).
import { readFileSync } from 'node:fs';

/** The arguments of process `pid`; undefined when it is gone, a zombie (empty), or not ours to read. */
export function commandLine(pid: number | string): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw ? raw.replace(/\0$/, '').split('\0') : undefined;
  } catch {
    return undefined;
  }
}

/** The value of `--flag value` or `--flag=value` in `args`. */
export function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1);
  }
  return undefined;
}
