import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decryptFile, encryptFile, fileDigest } from './crypto.js';

test('a snapshot round-trips through encryption; a flipped byte or another name does not decrypt', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'marina-crypto-'));
  try {
    const key = randomBytes(32);
    const data = randomBytes(300_000);
    writeFileSync(join(dir, 'plain'), data);
    const { plain, stored } = await encryptFile(key, 'p/uid/s1', join(dir, 'plain'), join(dir, 'enc'));
    assert.equal(plain.size, data.length);
    assert.deepEqual(await fileDigest(join(dir, 'enc')), stored);
    assert.equal(stored.size, data.length + 8 + 12 + 16);
    assert.ok(!readFileSync(join(dir, 'enc')).includes(data.subarray(0, 64)), 'ciphertext does not contain the plaintext');
    const back = await decryptFile(key, 'p/uid/s1', join(dir, 'enc'), join(dir, 'out'));
    assert.deepEqual(back, plain);
    assert.ok(readFileSync(join(dir, 'out')).equals(data));

    await assert.rejects(decryptFile(key, 'p/uid/other', join(dir, 'enc'), join(dir, 'out2')), /does not decrypt/);
    const enc = readFileSync(join(dir, 'enc'));
    enc[1000] = enc[1000]! ^ 0x01;
    writeFileSync(join(dir, 'bad'), enc);
    await assert.rejects(decryptFile(key, 'p/uid/s1', join(dir, 'bad'), join(dir, 'out3')), /does not decrypt/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
