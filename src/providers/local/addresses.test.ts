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

  it('continues after the previous allocation instead of reusing a just-freed address, and wraps around', () => {
    // .1 was freed; .5 was the last one handed out: the next is .6, not .1
    assert.equal(nextFreeAddress(['127.77.0.2', '127.77.0.5'], '127.77.0.0', '127.77.0.5'), '127.77.0.6');
    // at the end of the block it wraps to the start
    assert.equal(nextFreeAddress(['127.77.0.2'], '127.77.0.0', '127.77.255.254'), '127.77.0.1');
    // an `after` outside the block is ignored
    assert.equal(nextFreeAddress([], '127.77.0.0', '127.78.0.9'), '127.77.0.1');
  });
});
