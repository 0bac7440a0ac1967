// Where encrypted snapshots are stored: a directory under Marina's data directory (the default and
// `type: local` targets) or any S3-compatible object store (@aws-sdk/client-s3, path-style
// addressing by default, as self-hosted stores such as VersityGW or MinIO want).
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

/** A place that keeps whole files under keys like `<project>/<cluster>/<snapshot>.snap`. */
export interface BlobStore {
  /** Where it is, for messages (`local:/path`, `s3://bucket/prefix`). */
  readonly description: string;
  put(key: string, file: string, signal?: AbortSignal): Promise<void>;
  /** Copies the object to `file`; throws BlobMissing when there is none. */
  get(key: string, file: string, signal?: AbortSignal): Promise<void>;
  /** Size in bytes, or undefined when the object does not exist. */
  size(key: string, signal?: AbortSignal): Promise<number | undefined>;
  /** Succeeds when the object is already gone. */
  delete(key: string, signal?: AbortSignal): Promise<void>;
}

export class BlobMissing extends Error {
  constructor(where: string, key: string) {
    super(`${where}: no object ${key}`);
    this.name = 'BlobMissing';
  }
}

export class LocalBlobStore implements BlobStore {
  readonly description: string;
  constructor(private readonly root: string) {
    this.description = `local:${root}`;
  }

  private path(key: string): string {
    const p = resolve(this.root, key);
    if (!p.startsWith(resolve(this.root) + sep)) throw new Error(`key ${key} leaves the target directory`);
    return p;
  }

  async put(key: string, file: string): Promise<void> {
    const dst = this.path(key);
    await mkdir(dirname(dst), { recursive: true, mode: 0o700 });
    // Copy then rename: a reader never sees half a file.
    await copyFile(file, `${dst}.part`);
    await rename(`${dst}.part`, dst);
  }

  async get(key: string, file: string): Promise<void> {
    try {
      await copyFile(this.path(key), file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobMissing(this.description, key);
      throw err;
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}

export interface S3Options {
  endpoint: string;
  bucket: string;
  region?: string;
  prefix?: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle?: boolean;
}

export class S3BlobStore implements BlobStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly o: S3Options) {
    this.prefix = o.prefix ?? '';
    this.description = `s3://${o.bucket}/${this.prefix}`;
    this.client = new S3Client({
      endpoint: o.endpoint,
      region: o.region ?? 'us-east-1',
      forcePathStyle: o.forcePathStyle ?? true,
      credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey },
      // Checksums only when the operation requires them: self-hosted stores differ in what they
      // accept; the snapshot's own SHA-256 is verified after every write anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  private key(key: string): string {
    return `${this.prefix}${key}`;
  }

  async put(key: string, file: string, signal?: AbortSignal): Promise<void> {
    const { size } = await stat(file);
    await this.client.send(
      new PutObjectCommand({ Bucket: this.o.bucket, Key: this.key(key), Body: createReadStream(file), ContentLength: size, ContentType: 'application/octet-stream' }),
      signal ? { abortSignal: signal } : {},
    );
  }

  async get(key: string, file: string, signal?: AbortSignal): Promise<void> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: this.key(key) }), signal ? { abortSignal: signal } : {});
      if (!res.Body) throw new BlobMissing(this.description, key);
      await pipeline(res.Body as Readable, createWriteStream(file, { mode: 0o600 }));
    } catch (err) {
      if (isNotFound(err)) throw new BlobMissing(this.description, key);
      throw err;
    }
  }

  async size(key: string, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: this.key(key) }), signal ? { abortSignal: signal } : {});
      return res.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.o.bucket, Key: this.key(key) }), signal ? { abortSignal: signal } : {});
  }

  close(): void {
    this.client.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** The built-in target of a data directory: `<dataDir>/backups`. */
export function localTargetRoot(dataDir: string, target = ''): string {
  return join(dataDir, 'backups', target || '_default');
}
