// Encryption at rest for sensitive kinds (AES-256-GCM) and the data-encryption key on disk.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEX_KEY_RE = /^[0-9a-fA-F]{64}$/;

/** The JSON that replaces an encrypted `spec` in the database. */
export interface EncryptedField {
  $encrypted: string;
}

export function isEncryptedField(v: unknown): v is EncryptedField {
  return typeof v === 'object' && v !== null && typeof (v as EncryptedField).$encrypted === 'string';
}

/**
 * Encrypts `JSON.stringify(value)` with a fresh random 96-bit IV. `aad` (the object's key) is
 * authenticated, so a ciphertext copied onto another object fails to decrypt. Output:
 * base64(iv | tag | ciphertext).
 */
export function encryptJson(key: Buffer, value: unknown, aad: string): EncryptedField {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(JSON.stringify(value ?? null), 'utf8'), cipher.final()]);
  return { $encrypted: Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64') };
}

export function decryptJson(key: Buffer, field: EncryptedField, aad: string): unknown {
  const raw = Buffer.from(field.$encrypted, 'base64');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('encrypted field is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  const pt = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  return JSON.parse(pt.toString('utf8'));
}

/**
 * The data-encryption key: `MARINA_ENCRYPTION_KEY` (64 hex chars) when set, else
 * `<dataDir>/encryption.key` (64 hex chars, mode 0600), created with 32 random bytes on first use.
 * Losing this key makes every stored Secret unreadable: back it up together with the database.
 */
export function loadOrCreateEncryptionKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = env.MARINA_ENCRYPTION_KEY;
  if (fromEnv !== undefined && fromEnv !== '') {
    const hex = fromEnv.trim();
    if (!HEX_KEY_RE.test(hex)) throw new Error('MARINA_ENCRYPTION_KEY must be 64 hex characters (32 bytes)');
    return Buffer.from(hex, 'hex');
  }
  const path = join(dataDir, 'encryption.key');
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(KEY_BYTES);
    try {
      // 'wx': never overwrite a key another process created meanwhile.
      writeFileSync(path, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
      return key;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      text = readFileSync(path, 'utf8');
    }
  }
  const hex = text.trim();
  if (!HEX_KEY_RE.test(hex)) throw new Error(`${path} must hold 64 hex characters (32 bytes)`);
  // Tighten a key file that was copied in with loose permissions.
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } catch {
    /* read-only mount or not our file: reading it is all we need */
  }
  return Buffer.from(hex, 'hex');
}
