import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  BINARY_NAMES,
  defaultVersion,
  EXTRA_BINARY_NAMES,
  getVersion,
  loadComponentPins,
  loadMatrix,
  normalizeVersion,
  parseComponentPins,
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
    const raw = JSON.parse(readFileSync(versionsJsonPath(), 'utf8')) as { binaries: string[]; extraBinaries: string[] };
    assert.deepEqual([...raw.binaries].sort(), [...BINARY_NAMES].sort());
    assert.deepEqual([...raw.extraBinaries].sort(), [...EXTRA_BINARY_NAMES].sort());
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

describe('component pins', () => {
  it('loads the node runtime, image, S3 server and tool pins', () => {
    const p = loadComponentPins();
    assert.match(p.node.containerd.version, /^v2\./, 'Kubernetes 1.36 needs containerd 2.x');
    assert.deepEqual(p.node.containerd.binaries, ['containerd', 'ctr', 'containerd-shim-runc-v2']);
    assert.ok(p.node.runc.binaries.includes('runc'));
    for (const plugin of ['bridge', 'host-local', 'loopback', 'portmap']) assert.ok(p.node['cni-plugins'].binaries.includes(plugin), plugin);
    assert.equal(p.images.pause.ref, 'marina.local/pause:3.10.2');
    assert.equal(p.images.testapp.ref, 'marina.local/testapp:1');
    assert.equal(p.s3.versitygw.version, 'v1.8.0');
    assert.match(p.tools.helm.version, /^v3\./);
    assert.deepEqual(p.tools.helm.binaries, ['helm']);
  });

  it('rejects malformed pins, naming the entry', () => {
    const ok = {
      node: {
        containerd: { version: 'v2.4.2', binaries: ['containerd'] },
        runc: { version: 'v1.5.3', binaries: ['runc'] },
        'cni-plugins': { version: 'v1.10.0', binaries: ['bridge'] },
      },
      images: { pause: { ref: 'marina.local/pause:3.10.2' }, testapp: { ref: 'marina.local/testapp:1' } },
      s3: { versitygw: { version: 'v1.8.0', binaries: ['versitygw'] } },
      tools: { helm: { version: 'v3.19.0', binaries: ['helm'] } },
    };
    assert.equal(parseComponentPins(ok).node.runc.version, 'v1.5.3');
    assert.throws(() => parseComponentPins({ ...ok, node: { ...ok.node, runc: { version: '1.5', binaries: ['runc'] } } }), /bad version for node\.runc/);
    assert.throws(() => parseComponentPins({ ...ok, s3: { versitygw: { version: 'v1.8.0', binaries: [] } } }), /bad binaries for s3\.versitygw/);
    assert.throws(() => parseComponentPins({ ...ok, images: { ...ok.images, testapp: { ref: 'testapp' } } }), /bad ref for images\.testapp/);
    assert.throws(() => parseComponentPins({ ...ok, tools: {} }), /bad version for tools\.helm/);
    assert.throws(() => parseComponentPins({}), /node\.containerd/);
  });
});
