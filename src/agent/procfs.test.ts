import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskUsageBytes, parseStatCpuTicks, processUsage } from './procfs.js';

test('parseStatCpuTicks sums utime+stime even when comm has spaces and parentheses', () => {
  const rest = 'S 1 100 100 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 5000';
  assert.equal(parseStatCpuTicks(`4242 (kube-apiserver) ${rest}`), 300);
  assert.equal(parseStatCpuTicks(`4242 (we ird) (name)) ${rest}`), 300);
  assert.equal(parseStatCpuTicks('garbage'), undefined);
});

test('processUsage of this process has RSS and CPU; of a dead pid nothing', () => {
  const u = processUsage(process.pid);
  assert.ok((u.rssBytes ?? 0) > 10 * 1024 * 1024);
  assert.ok((u.cpuSeconds ?? -1) >= 0);
  assert.deepEqual(processUsage(2 ** 22 + 12345), {});
});

test('diskUsageBytes counts allocated blocks recursively', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'du-'));
  try {
    await mkdir(join(dir, 'a/b'), { recursive: true });
    await writeFile(join(dir, 'a/b/f'), Buffer.alloc(100_000, 1));
    const used = await diskUsageBytes(dir);
    assert.ok(used >= 100_000, `used ${used}`);
    assert.equal(await diskUsageBytes(join(dir, 'missing')), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
