#!/usr/bin/env node
// Prints the module graph of src/ (after a build) as a Mermaid flowchart for docs/architecture.md,
// and exits 1 if any module imports one that imports it back.
//   node scripts/module-graph.mjs
import { fileURLToPath } from 'node:url';
import { moduleCycles, moduleImports } from '../dist/test/support/module-graph.js';

const src = fileURLToPath(new URL('../src', import.meta.url));
const edges = moduleImports(src);
const pairs = [...new Set(edges.map((e) => `${e.from} --> ${e.to}`))];
console.log('```mermaid\nflowchart TD');
for (const p of pairs) console.log(`  ${p}`);
console.log('```');
const cycles = moduleCycles(edges);
for (const c of cycles) console.error(`cycle: ${c.join(' → ')}`);
process.exit(cycles.length > 0 ? 1 : 0);
