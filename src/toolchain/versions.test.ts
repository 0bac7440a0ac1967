import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  BINARY_NAMES,
  defaultVersion,
  getVersion,
  loadMatrix,
  normalizeVersion,
  parseMatrix,
  versionsJsonPath,
} from './versions.js';

describe('toolchain versions', () => {
  it('loads the pinned matrix from scripts/toolchain/versions.json', () => {
    const m = loadMatrix();
    assert.equal(m.default, 'v1.36.3');
    assert.equal(defaultVersion(), 'v1.36.3');
    assert.deepEqual(
      m.versions.map((v) => [v.kubernetes, v.etcd]),
      [
        ['v1.36.3', 'v3.6.16'],
        ['v1.35.4', 'v3.6.16'],
      ],
    );
    const raw = JSON.parse(readFileSync(versionsJsonPath(), 'utf8')) as { binaries: string[] };
    assert.deepEqual([...raw.binaries].sort(), [...BINARY_NAMES].sort());
  });

  it('normalizes and looks up versions', () => {
    assert.equal(normalizeVersion('1.35.4'), 'v1.35.4');
    assert.equal(normalizeVersion('v1.35.4'), 'v1.35.4');
    assert.equal(getVersion('1.35.4').etcd, 'v3.6.16');
    assert.equal(getVersion().kubernetes, 'v1.36.3');
    assert.throws(() => getVersion('v1.20.0'), /not pinned; known versions: v1\.36\.3, v1\.35\.4/);
  });

  it('rejects malformed matrices', () => {
    assert.throws(() => parseMatrix(null), /not an object/);
    assert.throws(() => parseMatrix({ default: '1.2', versions: {} }), /bad default/);
    assert.throws(() => parseMatrix({ default: 'v1.2.3', versions: { 'v1.2.3': { etcd: 'x', go: '1' } } }), /bad etcd/);
    assert.throws(() => parseMatrix({ default: 'v1.2.3', versions: { 'v1.2.4': { etcd: 'v3.6.0', go: '1' } } }), /not among/);
    assert.deepEqual(parseMatrix({ default: 'v1.2.3', versions: { 'v1.2.3': { etcd: 'v3.6.0', go: '1.25.0' } } }), {
      default: 'v1.2.3',
      versions: [{ kubernetes: 'v1.2.3', etcd: 'v3.6.0', go: '1.25.0' }],
    });
  });
});
