// Test helpers: fake toolchain binaries that answer version commands like the real ones.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINARY_NAMES, type BinaryName, EXTRA_BINARY_NAMES, type ExtraBinaryName } from './versions.js';
import { STAMP_FILE } from './resolve.js';

export function fakeBinaryScript(name: BinaryName | ExtraBinaryName, k8s: string, etcd: string): string {
  const e = etcd.replace(/^v/, '');
  switch (name) {
    case 'etcd':
      return `#!/bin/sh\necho "etcd Version: ${e}"\necho "Git SHA: x"\n`;
    case 'etcdctl':
      return `#!/bin/sh\necho "etcdctl version: ${e}"\necho "API version: 3.6"\n`;
    case 'etcdutl':
      return `#!/bin/sh\necho "etcdutl version: ${e}"\necho "API version: 3.6"\n`;
    case 'kubectl':
      return `#!/bin/sh\necho "Client Version: ${k8s}"\necho "Kustomize Version: v5"\n`;
    default:
      return `#!/bin/sh\necho "Kubernetes ${k8s}"\n`;
  }
}

/** Writes fake binaries (default: all, extras included) and optionally the install stamp into dir. */
export function writeFakeToolchain(
  dir: string,
  k8s: string,
  etcd: string,
  options: { stamp?: boolean; only?: (BinaryName | ExtraBinaryName)[] } = {},
): void {
  mkdirSync(dir, { recursive: true });
  for (const name of options.only ?? [...BINARY_NAMES, ...EXTRA_BINARY_NAMES]) {
    const path = join(dir, name);
    writeFileSync(path, fakeBinaryScript(name, k8s, etcd));
    chmodSync(path, 0o755);
  }
  if (options.stamp ?? true) {
    writeFileSync(
      join(dir, STAMP_FILE),
      `{\n  "kubernetes": "${k8s}",\n  "etcd": "${etcd}",\n  "platform": "linux/amd64",\n  "kubernetesSource": "test",\n  "etcdSource": "test",\n  "installedAt": "2026-01-01T00:00:00Z"\n}\n`,
    );
  }
}
