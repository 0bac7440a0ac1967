import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { API_VERSION as META_API_VERSION } from '../api/meta.js';
import { KINDS } from '../api/registry.js';
import { API_VERSION, RESOURCES, resourcePath } from './index.js';

test('the client kind table matches the API registry', () => {
  assert.deepEqual(
    RESOURCES.map((r) => ({ kind: r.kind, plural: r.plural, scope: r.scope })),
    KINDS.map((k) => ({ kind: k.kind, plural: k.plural, scope: k.scope })),
  );
  assert.equal(API_VERSION, META_API_VERSION);
});

test('resource paths follow the scope of the kind', () => {
  assert.equal(resourcePath('Cluster', { project: 'p', name: 'demo', subresource: 'health' }), '/api/v1alpha1/projects/p/clusters/demo/health');
  assert.equal(resourcePath('Cluster'), '/api/v1alpha1/clusters');
  assert.equal(resourcePath('Project', { project: 'ignored', name: 'a b' }), '/api/v1alpha1/projects/a%20b');
});

// The web console bundles this module for the browser: a runtime import of Node or of anything
// outside src/client (which may pull Node in) would break its build.
test('the client is browser-safe: no node: import, only types from outside src/client', () => {
  // dist/src/client → the TypeScript sources in src/client
  const dir = fileURLToPath(new URL('../../../src/client/', import.meta.url));
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
    const source = readFileSync(dir + file, 'utf8');
    for (const m of source.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)) {
      const [, , typeOnly, spec] = m;
      assert.ok(!spec!.startsWith('node:'), `${file} imports ${spec}`);
      if (!typeOnly) assert.ok(spec!.startsWith('./'), `${file} imports ${spec} at run time; only types may come from outside src/client`);
    }
  }
});
