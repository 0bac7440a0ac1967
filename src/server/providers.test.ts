import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { localAddressBase } from './providers.js';

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
