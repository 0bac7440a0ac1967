// Marina's modules depend on each other one way only: no folder under src/ imports a folder that
// imports it back (directly or through others), and the controllers reach infrastructure only
// through the provider contract. `node scripts/module-graph.mjs` prints the graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { moduleCycles, moduleImports, type ImportEdge } from '../support/module-graph.js';

// dist/test/architecture → the repository's src/
const SRC = fileURLToPath(new URL('../../../src', import.meta.url));

const edge = (from: string, to: string): ImportEdge => ({ from, to, file: `src/${from}/x.ts`, target: `src/${to}/y.ts` });

test('the cycle finder finds direct and indirect cycles and nothing in a layered graph', () => {
  assert.deepEqual(moduleCycles([edge('a', 'b'), edge('b', 'c'), edge('a', 'c')]), []);
  assert.deepEqual(moduleCycles([edge('a', 'b'), edge('b', 'a')]), [['a', 'b', 'a']]);
  assert.deepEqual(moduleCycles([edge('a', 'b'), edge('b', 'c'), edge('c', 'a'), edge('c', 'd')]), [['a', 'b', 'c', 'a']]);
});

test('no module under src/ imports a module that imports it back', () => {
  const edges = moduleImports(SRC);
  assert.ok(edges.some((e) => e.from === 'controllers' && e.to === 'api'), 'the graph was read');
  const cycles = moduleCycles(edges);
  const explain = cycles.map((c) =>
    c.slice(1).map((to, i) => { const e = edges.find((x) => x.from === c[i] && x.to === to)!; return `${e.file} → ${e.target}`; }).join('; '),
  );
  assert.deepEqual(explain, [], `import cycles between modules:\n${explain.join('\n')}`);
});

test('the controllers and the health checker reach infrastructure only through the provider contract', () => {
  const offending = moduleImports(SRC).filter(
    (e) => (e.from === 'controllers' || e.from === 'health' || e.from === 'clusteraccess') && e.to === 'providers' && !e.target.startsWith('src/providers/contract'),
  );
  assert.deepEqual(offending, []);
});
