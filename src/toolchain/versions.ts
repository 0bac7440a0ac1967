// The pinned Kubernetes toolchain matrix. The data lives in scripts/toolchain/versions.json so the
// shell installer and the TypeScript code read the same file; this module only types and loads it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Names of the binaries every toolchain version provides. */
export const BINARY_NAMES = [
  'etcd',
  'etcdctl',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
] as const;
export type BinaryName = (typeof BINARY_NAMES)[number];

export interface ToolchainVersion {
  /** Kubernetes version, `vX.Y.Z`. */
  kubernetes: string;
  /** etcd version paired with it, `vX.Y.Z`. */
  etcd: string;
  /** Minimum Go version needed to build it from source. */
  go: string;
}

export interface ToolchainMatrix {
  /** The default Kubernetes version. */
  default: string;
  /** Every pinned version, newest first as listed in versions.json. */
  versions: ToolchainVersion[];
}

interface VersionsFile {
  default: string;
  versions: Record<string, { etcd: string; go: string }>;
  binaries?: string[];
}

/** Repository root (the directory holding package.json), found from this module's location. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'scripts', 'toolchain', 'versions.json')) && existsSync(join(dir, 'package.json'))) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot locate the Marina repository root (scripts/toolchain/versions.json)');
    dir = parent;
  }
}

export function versionsJsonPath(): string {
  return join(repoRoot(), 'scripts', 'toolchain', 'versions.json');
}

export function installScriptPath(): string {
  return join(repoRoot(), 'scripts', 'toolchain', 'install.sh');
}

const VERSION_RE = /^v\d+\.\d+\.\d+$/;

/** Validates and converts the parsed versions.json. Exported for tests. */
export function parseMatrix(raw: unknown): ToolchainMatrix {
  if (typeof raw !== 'object' || raw === null) throw new Error('versions.json: not an object');
  const file = raw as Partial<VersionsFile>;
  if (typeof file.default !== 'string' || !VERSION_RE.test(file.default)) {
    throw new Error(`versions.json: bad default version ${JSON.stringify(file.default)}`);
  }
  if (typeof file.versions !== 'object' || file.versions === null) throw new Error('versions.json: missing versions');
  const versions: ToolchainVersion[] = [];
  for (const [kubernetes, entry] of Object.entries(file.versions)) {
    if (!VERSION_RE.test(kubernetes)) throw new Error(`versions.json: bad Kubernetes version ${kubernetes}`);
    if (!entry || typeof entry.etcd !== 'string' || !VERSION_RE.test(entry.etcd)) {
      throw new Error(`versions.json: bad etcd version for ${kubernetes}`);
    }
    if (typeof entry.go !== 'string') throw new Error(`versions.json: missing go version for ${kubernetes}`);
    versions.push({ kubernetes, etcd: entry.etcd, go: entry.go });
  }
  if (!versions.some((v) => v.kubernetes === file.default)) {
    throw new Error(`versions.json: default ${file.default} is not among the versions`);
  }
  return { default: file.default, versions };
}

let cached: ToolchainMatrix | undefined;

/** The matrix from scripts/toolchain/versions.json (read once). */
export function loadMatrix(): ToolchainMatrix {
  cached ??= parseMatrix(JSON.parse(readFileSync(versionsJsonPath(), 'utf8')));
  return cached;
}

/** `1.36.3` → `v1.36.3`; leaves `v1.36.3` alone. */
export function normalizeVersion(version: string): string {
  const v = version.trim();
  return v.startsWith('v') ? v : `v${v}`;
}

export function defaultVersion(): string {
  return loadMatrix().default;
}

/** The matrix entry for a Kubernetes version; throws listing the pinned versions if unknown. */
export function getVersion(version: string = defaultVersion()): ToolchainVersion {
  const v = normalizeVersion(version);
  const m = loadMatrix();
  const entry = m.versions.find((e) => e.kubernetes === v);
  if (!entry) {
    throw new Error(`Kubernetes ${v} is not pinned; known versions: ${m.versions.map((e) => e.kubernetes).join(', ')}`);
  }
  return entry;
}
