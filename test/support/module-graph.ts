// The import graph of Marina's modules, at folder level: src/<module>/... files import each other
// through relative specifiers, so reading the import statements of the source files is enough (no
// compiler needed). Tests (*.test.ts, test helpers) are left out: they may reach anything.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export interface ImportEdge {
  /** Importing and imported module (top-level folder under src/). */
  from: string;
  to: string;
  /** The importing file and what it imports (repo-relative). */
  file: string;
  target: string;
}

// Static `import … from '…'`, `export … from '…'`, `import '…'`, and dynamic `import('…')`.
const SPECIFIER = /(?:(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\s+from\s+)?|\bimport\(\s*)['"]([^'"]+)['"]/g;

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && e.name !== 'test-helpers.ts') out.push(p);
  }
  return out;
}

/** Every import of one module by another under `srcDir`, per file and target. */
export function moduleImports(srcDir: string): ImportEdge[] {
  const root = dirname(srcDir);
  const moduleOf = (file: string) => relative(srcDir, file).split(sep)[0]!;
  const edges = new Map<string, ImportEdge>();
  for (const file of sources(srcDir)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[1]!;
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      if (relative(srcDir, target).startsWith('..')) continue;
      const from = moduleOf(file);
      const to = moduleOf(target);
      if (from !== to) edges.set(`${file}>${target}`, { from, to, file: relative(root, file), target: relative(root, target) });
    }
  }
  return [...edges.values()].sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to) || a.file.localeCompare(b.file));
}

/** The cycles among modules (each as a path that returns to its start); empty when there are none. */
export function moduleCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...new Set([...(next.get(e.from) ?? []), e.to])]);
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (m: string): void => {
    state.set(m, 'open');
    path.push(m);
    for (const n of next.get(m) ?? []) {
      if (state.get(n) === 'open') cycles.push([...path.slice(path.indexOf(n)), n]);
      else if (!state.has(n)) visit(n);
    }
    path.pop();
    state.set(m, 'done');
  };
  for (const m of [...next.keys()].sort()) if (!state.has(m)) visit(m);
  return cycles;
}
