import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ComponentMissingError, marinaCacheBase, resolveImages, resolveNodeRuntime, resolveHelm, resolveS3Server } from './components.js';
import { STAMP_FILE } from './resolve.js';
import { loadComponentPins } from './versions.js';

const tmp = mkdtempSync(join(tmpdir(), 'marina-components-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A cache entry as the scripts write it: the binaries, then the stamp. */
function writeEntry(dir: string, stamp: Record<string, unknown>, binaries: string[]): void {
  mkdirSync(dir, { recursive: true });
  for (const b of binaries) {
    writeFileSync(join(dir, b), '#!/bin/sh\n');
    chmodSync(join(dir, b), 0o755);
  }
  writeFileSync(join(dir, STAMP_FILE), JSON.stringify(stamp));
}

function writeNodeRuntime(base: string): void {
  const pins = loadComponentPins().node;
  for (const [name, pin] of Object.entries(pins)) {
    writeEntry(join(base, 'node', name, pin.version), { component: name, version: pin.version }, pin.binaries);
  }
}

describe('marinaCacheBase', () => {
  it('prefers MARINA_CACHE_DIR, then an absolute XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(marinaCacheBase({ MARINA_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x', HOME: '/h' }), '/c');
    assert.equal(marinaCacheBase({ XDG_CACHE_HOME: '/x', HOME: '/h' }), '/x/marina');
    assert.equal(marinaCacheBase({ XDG_CACHE_HOME: 'rel', HOME: '/h' }), '/h/.cache/marina');
  });
});

describe('resolveNodeRuntime', () => {
  it('finds containerd, its shim, runc and the CNI plugin directory at the pinned versions', () => {
    const base = join(tmp, 'node-ok');
    writeNodeRuntime(base);
    const pins = loadComponentPins().node;
    const rt = resolveNodeRuntime({ env: { MARINA_CACHE_DIR: base } });
    const cd = join(base, 'node', 'containerd', pins.containerd.version);
    assert.equal(rt.containerd, join(cd, 'containerd'));
    assert.equal(rt.shim, join(cd, 'containerd-shim-runc-v2'));
    assert.equal(rt.runc, join(base, 'node', 'runc', pins.runc.version, 'runc'));
    assert.equal(rt.cniBinDir, join(base, 'node', 'cni-plugins', pins['cni-plugins'].version));
    assert.deepEqual(rt.pathDirs, [cd, join(base, 'node', 'runc', pins.runc.version)]);
    assert.equal(rt.versions.containerd, pins.containerd.version);
  });

  it('refuses an entry whose stamp names another version or that lacks a binary, naming the script', () => {
    const base = join(tmp, 'node-bad');
    writeNodeRuntime(base);
    const runc = loadComponentPins().node.runc;
    writeFileSync(join(base, 'node', 'runc', runc.version, STAMP_FILE), JSON.stringify({ version: 'v0.0.1' }));
    assert.throws(
      () => resolveNodeRuntime({ env: { MARINA_CACHE_DIR: base } }),
      (err: unknown) => err instanceof ComponentMissingError && err.script === 'node-runtime.sh' && /runc v/.test(err.message),
    );
    writeNodeRuntime(base);
    rmSync(join(base, 'node', 'cni-plugins', loadComponentPins().node['cni-plugins'].version, 'portmap'));
    assert.throws(() => resolveNodeRuntime({ env: { MARINA_CACHE_DIR: base } }), /cni-plugins .*scripts\/toolchain\/node-runtime\.sh/);
  });
});

describe('resolveImages and resolveS3Server', () => {
  it('finds the image archives by their pinned references', () => {
    const base = join(tmp, 'images');
    const pins = loadComponentPins().images;
    for (const [name, { ref }] of Object.entries(pins)) {
      const dir = join(base, 'images', name, ref.split(':').pop() ?? '');
      writeEntry(dir, { image: name, ref }, []);
      writeFileSync(join(dir, 'image.oci.tar'), 'x');
    }
    const images = resolveImages({ env: { MARINA_CACHE_DIR: base } });
    assert.equal(images.pause.ref, pins.pause.ref);
    assert.equal(images.testapp.archive, join(base, 'images', 'testapp', '1', 'image.oci.tar'));
    rmSync(images.pause.archive);
    assert.throws(() => resolveImages({ env: { MARINA_CACHE_DIR: base } }), /marina\.local\/pause:.*images\.sh/);
  });

  it('finds versitygw, or names s3.sh', () => {
    const base = join(tmp, 's3');
    assert.throws(() => resolveS3Server({ env: { MARINA_CACHE_DIR: base } }), /versitygw .*scripts\/toolchain\/s3\.sh/);
    const pin = loadComponentPins().s3.versitygw;
    writeEntry(join(base, 's3', 'versitygw', pin.version), { version: pin.version }, ['versitygw']);
    assert.equal(resolveS3Server({ env: { MARINA_CACHE_DIR: base } }).versitygw, join(base, 's3', 'versitygw', pin.version, 'versitygw'));
  });

  it('finds helm, or names helm.sh', () => {
    const base = join(tmp, 'tools');
    assert.throws(() => resolveHelm({ env: { MARINA_CACHE_DIR: base } }), /helm .*scripts\/toolchain\/helm\.sh/);
    const pin = loadComponentPins().tools.helm;
    writeEntry(join(base, 'tools', 'helm', pin.version), { version: pin.version }, ['helm']);
    assert.equal(resolveHelm({ env: { MARINA_CACHE_DIR: base } }).helm, join(base, 'tools', 'helm', pin.version, 'helm'));
  });
});
