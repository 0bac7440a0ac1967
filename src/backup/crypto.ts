// Snapshots at rest: AES-256-GCM with Marina's data-encryption key (src/store/crypto.ts), streamed
// so a snapshot of any size needs no more memory than a buffer. File format:
//
//   "MRNSNAP1" (8 bytes) | IV (12 bytes) | ciphertext | GCM tag (16 bytes)
//
// The additional authenticated data names the snapshot (project, cluster uid, snapshot name): an
// encrypted file copied onto another snapshot's record does not decrypt.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const MAGIC = Buffer.from('MRNSNAP1');
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface Digest {
  sha256: string;
  size: number;
}

/** A pass-through that hashes and counts what flows. */
function digester(): { stream: Transform; result: () => Digest } {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, result: () => ({ sha256: hash.digest('hex'), size }) };
}

/** SHA-256 and size of a file. */
export async function fileDigest(path: string): Promise<Digest> {
  const d = digester();
  await pipeline(createReadStream(path), d.stream, async function* (src: AsyncIterable<Buffer>) {
    for await (const _ of src) yield* [];
  });
  return d.result();
}

/** Encrypts `src` into `dst`; returns the digests of the plaintext and of the stored file. */
export async function encryptFile(key: Buffer, aad: string, src: string, dst: string): Promise<{ plain: Digest; stored: Digest }> {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const plain = digester();
  const stored = digester();
  const header = Buffer.concat([MAGIC, iv]);
  await pipeline(
    createReadStream(src),
    plain.stream,
    cipher,
    async function* (ct: AsyncIterable<Buffer>) {
      yield header;
      yield* ct;
      yield cipher.getAuthTag();
    },
    stored.stream,
    createWriteStream(dst, { mode: 0o600 }),
  );
  return { plain: plain.result(), stored: stored.result() };
}

/**
 * Decrypts `src` into `dst`, authenticating it (a flipped byte anywhere fails); returns the
 * plaintext's digest. Throws a message that says the file does not decrypt.
 */
export async function decryptFile(key: Buffer, aad: string, src: string, dst: string): Promise<Digest> {
  const { size } = await stat(src);
  if (size < MAGIC.length + IV_BYTES + TAG_BYTES) throw new Error(`the stored snapshot is truncated (${size} bytes)`);
  const fh = await open(src, 'r');
  const head = Buffer.alloc(MAGIC.length + IV_BYTES);
  const tag = Buffer.alloc(TAG_BYTES);
  try {
    await fh.read(head, 0, head.length, 0);
    await fh.read(tag, 0, TAG_BYTES, size - TAG_BYTES);
  } finally {
    await fh.close();
  }
  if (!head.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('the stored snapshot is not a Marina snapshot (wrong header)');
  const decipher = createDecipheriv('aes-256-gcm', key, head.subarray(MAGIC.length));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  const plain = digester();
  try {
    await pipeline(createReadStream(src, { start: head.length, end: size - TAG_BYTES - 1 }), decipher, plain.stream, createWriteStream(dst, { mode: 0o600 }));
  } catch (err) {
    throw new Error(`the stored snapshot does not decrypt with Marina's key (corrupted, or not this snapshot): ${(err as Error).message}`);
  }
  return plain.result();
}
