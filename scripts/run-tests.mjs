#!/usr/bin/env node
// Runs every compiled test file with Node's built-in runner. Node 20's `--test` cannot expand
// globs itself, so the files are collected here. Pass directory or file filters as arguments:
//   node scripts/run-tests.mjs src/store test/e2e
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
const filters = process.argv.slice(2);

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

let files = [];
for (const top of ['src', 'test']) {
  try { collect(join(dist, top), files); } catch { /* directory may not exist yet */ }
}
if (filters.length > 0) {
  files = files.filter((f) => filters.some((flt) => relative(dist, f).startsWith(flt.replace(/\.ts$/, ''))));
}
files.sort();
if (files.length === 0) {
  console.error('no test files found under dist/ (did the build run?)');
  process.exit(1);
}
const concurrency = process.env.MARINA_TEST_CONCURRENCY ?? '2';
const result = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
