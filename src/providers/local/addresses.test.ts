import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nextFreeAddress } from './addresses.js';

describe('nextFreeAddress', () => {
  it('takes the lowest free address of the block, skipping .0 and .255', () => {
    assert.equal(nextFreeAddress([], '127.77.0.0'), '127.77.0.1');
    assert.equal(nextFreeAddress(['127.77.0.1', '127.77.0.2'], '127.77.0.0'), '127.77.0.3');
    const full = Array.from({ length: 254 }, (_, i) => `127.77.0.${i + 1}`);
    assert.equal(nextFreeAddress(full, '127.77.0.0'), '127.77.1.1');
  });
});
