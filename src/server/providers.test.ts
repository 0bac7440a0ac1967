import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloudDirectory, MachineJoins } from '../providers/openstack/index.js';
import { buildProviderRegistry, localAddressBase } from './providers.js';

describe('buildProviderRegistry', () => {
  it('registers openstack when given its directory and joins; an unknown provider is a 422 naming spec.provider', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'marina-registry-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const directory: CloudDirectory = { cloudOf: () => Promise.reject(new Error('unused')), clouds: async () => [], machine: async () => undefined };
    let joinsOf: unknown;
    const joins: MachineJoins = { issue: () => Promise.reject(new Error('unused')), report: async () => undefined, forget: async () => undefined };
    const registry = buildProviderRegistry(dir, { openstack: { directory, joins: (imports) => ((joinsOf = imports), joins) } });
    t.after(() => registry.close());
    assert.equal(registry.get('openstack').name, 'openstack');
    assert.equal(joinsOf, registry.imports, "a VM's agent records live with the import provider's");
    assert.deepEqual((await registry.get('openstack').listMachines()), [], 'no cloud, no machines');
    assert.throws(() => registry.get('nope'), (err: Error & { code?: number }) => err.code === 422 && /spec.provider: .*available: local, import, openstack/.test(err.message));
  });
});

describe('localAddressBase (MARINA_LOCAL_ADDRESS_BASE)', () => {
  it('defaults to 127.77.0.0 and takes the first address of another loopback /16', () => {
    assert.equal(localAddressBase({}), '127.77.0.0');
    assert.equal(localAddressBase({ MARINA_LOCAL_ADDRESS_BASE: '' }), '127.77.0.0');
    assert.equal(localAddressBase({ MARINA_LOCAL_ADDRESS_BASE: ' 127.88.0.0 ' }), '127.88.0.0');
  });

  it('refuses what is not the start of a loopback /16', () => {
    for (const bad of ['10.0.0.0', '127.88.1.0', '127.88.0.5', 'localhost', '127.300.0.0']) {
      assert.throws(() => localAddressBase({ MARINA_LOCAL_ADDRESS_BASE: bad }), /MARINA_LOCAL_ADDRESS_BASE/, bad);
    }
  });
});
