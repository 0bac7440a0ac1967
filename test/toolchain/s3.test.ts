// The S3 server of the toolchain (VersityGW, POSIX backend) answers a real S3 client: curl signing
// every request with AWS Signature V4. Bucket create, object PUT/GET/LIST, a wrong secret refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureS3Server } from './ensure.js';
import { type S3Server, startVersityGw } from './versitygw.js';

const execFileAsync = promisify(execFile);
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('S3 server (VersityGW, real binary) with a SigV4 client', { timeout: 900_000 }, () => {
  let dir = '';
  let s3: S3Server | undefined;

  /** One signed request with curl; resolves status and body. curl 7.88 does not add x-amz-content-sha256 itself. */
  async function s3curl(method: string, path: string, opts: { file?: string; secret?: string } = {}): Promise<{ status: number; body: string }> {
    assert.ok(s3);
    const payload = opts.file ? readFileSync(opts.file) : '';
    const args = [
      '-s',
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      '-X',
      method,
      '--aws-sigv4',
      `aws:amz:${s3.region}:s3`,
      '--user',
      `${s3.accessKeyId}:${opts.secret ?? s3.secretAccessKey}`,
      '-H',
      `x-amz-content-sha256: ${sha256(payload)}`,
      ...(opts.file ? ['--data-binary', `@${opts.file}`] : []),
      `${s3.endpoint}${path}`,
    ];
    const { stdout } = await execFileAsync('curl', args, { timeout: 30_000 });
    const cut = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marina-s3-'));
    const { versitygw } = await ensureS3Server();
    s3 = await startVersityGw({ versitygw, dir });
  });

  after(async () => {
    try {
      if (s3) assert.equal(await s3.stop(), true, 'versitygw stopped');
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('creates a bucket, stores, lists and reads back an object', async () => {
    assert.ok(s3);
    assert.equal((await s3curl('PUT', '/snapshots')).status, 200);
    const file = join(dir, 'snap.db');
    const content = Buffer.from(`etcd snapshot ${Date.now()}\n`.repeat(1000));
    writeFileSync(file, content);
    const put = await s3curl('PUT', '/snapshots/cluster-a/snap-1.db', { file });
    assert.equal(put.status, 200, put.body);

    const get = await s3curl('GET', '/snapshots/cluster-a/snap-1.db');
    assert.equal(get.status, 200);
    assert.equal(sha256(get.body), sha256(content));

    const list = await s3curl('GET', '/snapshots?list-type=2&prefix=cluster-a%2F');
    assert.equal(list.status, 200, list.body);
    assert.match(list.body, /<Key>cluster-a\/snap-1\.db<\/Key>/);
    assert.match(list.body, new RegExp(`<Size>${content.length}</Size>`));
    // The POSIX backend keeps the object as a plain file.
    assert.equal(sha256(readFileSync(join(s3.dataDir, 'snapshots', 'cluster-a', 'snap-1.db'))), sha256(content));
  });

  it('refuses a request signed with the wrong secret', async () => {
    const r = await s3curl('GET', '/snapshots?list-type=2', { secret: 'not-the-secret' });
    assert.equal(r.status, 403);
    assert.match(r.body, /SignatureDoesNotMatch/);
  });
});
