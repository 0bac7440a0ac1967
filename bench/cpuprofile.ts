// Summarises a V8 CPU profile (`node --cpu-prof`): the functions with the most self time and the
// most total time (self + callees), optionally within a time window of the run, so that one phase
// of a benchmark (creating clusters, the steady state) can be read on its own.
//   node dist/bench/cpuprofile.js <file.cpuprofile> [--from <s>] [--to <s>] [--top 25]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  selfMs: number;
  totalMs: number;
}

const label = (n: ProfileNode): string => {
  const f = n.callFrame;
  const file = f.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:');
  return `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
};

/** Self and total time per function over the samples between `fromS` and `toS` seconds after the start. */
export function summarise(p: Profile, fromS = 0, toS = Infinity): { windowMs: number; busyMs: number; functions: FunctionTime[]; stretches: Stretch[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let t = 0;
  let windowMs = 0;
  let busyMs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]! / 1000;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    if (t < fromS * 1000 || t > toS * 1000) continue;
    windowMs += dt;
    const leaf = byId.get(p.samples[i]!)!;
    const name = label(leaf);
    if (name.startsWith('(idle)') || name.startsWith('(program)')) continue;
    busyMs += dt;
    self.set(name, (self.get(name) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const n = label(byId.get(id)!);
      if (seen.has(n)) continue;
      seen.add(n);
      total.set(n, (total.get(n) ?? 0) + dt);
    }
  }
  const functions = [...total.entries()].map(([name, totalMs]) => ({ name, selfMs: self.get(name) ?? 0, totalMs }));
  return { windowMs, busyMs, functions, stretches: busyStretches(p, fromS, toS) };
}

export interface Stretch {
  atS: number;
  ms: number;
  /** The function under which most of the stretch's samples ran, below the event loop's own frames. */
  top: string;
}

/**
 * The longest runs of consecutive busy samples: how long the event loop was held without a break
 * (what a request arriving meanwhile waits), with the task that held it.
 */
function busyStretches(p: Profile, fromS: number, toS: number): Stretch[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** The outermost frame of a sample's stack that is not the runtime's own (timers, ticks, root). */
  const entry = (id: number): string => {
    const stack: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) stack.push(label(byId.get(cur)!));
    const own = stack.reverse().find((f) => !/^\(root\)|^process|^listOnTimeout|^runNextTicks|^runMicrotasks|^processTicksAndRejections|^processImmediate|node:internal/.test(f));
    return own ?? stack.at(-1) ?? '?';
  };
  const out: Stretch[] = [];
  let t = 0;
  let start = -1;
  let ms = 0;
  const tops = new Map<string, number>();
  const close = () => {
    if (start >= 0 && ms > 0) out.push({ atS: start / 1000, ms, top: [...tops.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '?' });
    start = -1;
    ms = 0;
    tops.clear();
  };
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]! / 1000;
    if (t < fromS * 1000 || t > toS * 1000) continue;
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const leaf = byId.get(p.samples[i]!)!;
    if (label(leaf).startsWith('(idle)')) {
      close();
      continue;
    }
    if (start < 0) start = t;
    ms += dt;
    const e = entry(leaf.id);
    tops.set(e, (tops.get(e) ?? 0) + dt);
  }
  close();
  return out.sort((a, b) => b.ms - a.ms).slice(0, 15);
}

function main(): void {
  const args = process.argv.slice(2);
  const opt = (n: string) => {
    const i = args.indexOf(`--${n}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const p = JSON.parse(readFileSync(args[0]!, 'utf8')) as Profile;
  const top = Number(opt('top') ?? 25);
  const s = summarise(p, Number(opt('from') ?? 0), opt('to') !== undefined ? Number(opt('to')) : Infinity);
  console.log(`window ${(s.windowMs / 1000).toFixed(1)} s, busy ${(s.busyMs / 1000).toFixed(1)} s (${((s.busyMs / Math.max(1, s.windowMs)) * 100).toFixed(0)} % of one core)`);
  const show = (title: string, key: 'selfMs' | 'totalMs') => {
    console.log(`\n${title}`);
    for (const f of [...s.functions].sort((a, b) => b[key] - a[key]).slice(0, top)) {
      console.log(`${((f[key] / Math.max(1, s.busyMs)) * 100).toFixed(1).padStart(5)} %  ${(f[key] / 1000).toFixed(2).padStart(7)} s  ${f.name}`);
    }
  };
  show('self time', 'selfMs');
  show('total time (self + callees)', 'totalMs');
  console.log('\nlongest stretches without a break for the event loop');
  for (const st of s.stretches) console.log(`${st.ms.toFixed(0).padStart(6)} ms at ${st.atS.toFixed(1)} s  ${st.top}`);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) main();
