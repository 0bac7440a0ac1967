// The S3 backup target against a real S3 server (VersityGW, POSIX backend, built by
// scripts/toolchain/s3.sh): an encrypted snapshot file goes in, comes back byte for byte, is
// sized and deleted; a missing object is reported as such.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobMissing, S3BlobStore } from '../../src/backup/targets.js';
import { ensureS3Server } from '../toolchain/ensure.js';
import { startVersityGw, type S3Server } from '../toolchain/versitygw.js';

describe('S3 backup target against VersityGW', { timeout: 900_000 }, () => {
  let dir = '';
  let s3: S3Server | undefined;
  let store: S3BlobStore | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marina-s3-target-'));
    const { versitygw } = await ensureS3Server();
    s3 = await startVersityGw({ versitygw, dir });
    // The POSIX backend: a bucket is a directory.
    mkdirSync(join(s3.dataDir, 'backups'));
    store = new S3BlobStore({ endpoint: s3.endpoint, bucket: 'backups', prefix: 'marina/', accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });
  });

  after(async () => {
    store?.close();
    const gone = await s3?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (s3) assert.ok(gone, 'versitygw stopped');
  });

  it('puts, sizes, gets and deletes an object', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 17);
    writeFileSync(join(dir, 'in'), data);
    await store!.put('p/c/s1.snap', join(dir, 'in'));
    assert.equal(await store!.size('p/c/s1.snap'), data.length);
    assert.ok(readFileSync(join(s3!.dataDir, 'backups', 'marina', 'p', 'c', 's1.snap')).equals(data), 'stored under the prefix');
    await store!.get('p/c/s1.snap', join(dir, 'out'));
    assert.ok(readFileSync(join(dir, 'out')).equals(data));
    await store!.delete('p/c/s1.snap');
    assert.equal(await store!.size('p/c/s1.snap'), undefined);
    await assert.rejects(store!.get('p/c/s1.snap', join(dir, 'out2')), BlobMissing);
    await store!.delete('p/c/s1.snap');
  });
});
