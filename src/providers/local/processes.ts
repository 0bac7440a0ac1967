// The local provider's processes, found in /proc by their command line. A machine agent runs as
//
//   node <dist>/src/agent/main.js --config <root>/machines/<project>/<cluster>/<name>/agent.json --machine-uid <uid>
//
// and an endpoint balancer as `node <dist>/src/lb/main.js --config <root>/endpoints/.../lb.json`,
// so a process says itself which machine (and which Machine object) it belongs to. The provider
// records pids too, but only after the spawn returned: a Marina that dies in between leaves a
// process no record names, and this is how it is found again.
import { readdirSync } from 'node:fs';
import { commandLine, flagValue } from '../../proc/cmdline.js';

/** Command-line flag that tags an agent with the uid of the Machine object it was started for. */
export const MACHINE_UID_FLAG = '--machine-uid';

export interface ConfiguredProcess {
  pid: number;
  /** The value of its `--config` argument. */
  config: string;
  /** The value of its `--machine-uid` argument; undefined for processes started without one. */
  uid?: string;
}

/**
 * Live processes running `script` (matched by path suffix, e.g. `/agent/main.js`: an upgrade may
 * have moved the checkout) whose `--config` argument is `config`, or starts with `config` when it
 * ends in "/" (every process under a directory). Zombies have an empty command line: not listed.
 */
export function processesWithConfig(script: string, config: string): ConfiguredProcess[] {
  const out: ConfiguredProcess[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const args = commandLine(pid);
    // The script is node's first argument that is not a flag of node's own (--max-old-space-size=…).
    if (!args || !args.slice(1).find((a) => !a.startsWith('-'))?.endsWith(script)) continue;
    const value = flagValue(args, '--config');
    if (value === undefined || !(config.endsWith('/') ? value.startsWith(config) : value === config)) continue;
    const uid = flagValue(args, MACHINE_UID_FLAG);
    out.push({ pid, config: value, ...(uid !== undefined ? { uid } : {}) });
  }
  return out.sort((a, b) => a.pid - b.pid);
}
