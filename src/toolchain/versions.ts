// The pinned Kubernetes toolchain matrix. The data lives in scripts/toolchain/versions.json so the
// shell installer and the TypeScript code read the same file; this module only types and loads it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Names of the binaries every toolchain version provides; resolveToolchain() requires all of them. */
export const BINARY_NAMES = [
  'etcd',
  'etcdctl',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
] as const;
export type BinaryName = (typeof BINARY_NAMES)[number];

/**
 * Binaries install.sh provides beside BINARY_NAMES: etcdutl (snapshot restore), and kubelet and
 * kube-proxy (real workers). Resolved one by one, because a cache entry written before they were
 * added lacks them until install.sh runs again (which then builds only these).
 */
export const EXTRA_BINARY_NAMES = ['etcdutl', 'kubelet', 'kube-proxy'] as const;
export type ExtraBinaryName = (typeof EXTRA_BINARY_NAMES)[number];

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

/** A script of scripts/toolchain/: install.sh, node-runtime.sh, images.sh, s3.sh or helm.sh. */
export type ToolchainScript = 'install.sh' | 'node-runtime.sh' | 'images.sh' | 's3.sh' | 'helm.sh';

export function toolchainScriptPath(script: ToolchainScript): string {
  return join(repoRoot(), 'scripts', 'toolchain', script);
}

export function installScriptPath(): string {
  return toolchainScriptPath('install.sh');
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

/** Components of a real worker's container runtime (scripts/toolchain/node-runtime.sh). */
export const NODE_COMPONENTS = ['containerd', 'runc', 'cni-plugins'] as const;
export type NodeComponent = (typeof NODE_COMPONENTS)[number];

/** Locally built OCI images (scripts/toolchain/images.sh). */
export const IMAGE_NAMES = ['pause', 'testapp'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

/** A Go-built component pinned in versions.json: its version and the binaries it provides. */
export interface ComponentPin {
  version: string;
  binaries: string[];
}

/** The pins of everything besides the Kubernetes matrix. */
export interface ComponentPins {
  node: Record<NodeComponent, ComponentPin>;
  /** Image references (`name:tag`) the archives are imported under. */
  images: Record<ImageName, { ref: string }>;
  s3: { versitygw: ComponentPin };
  /** Tools the repository's scripts and tests run (helm renders the chart). */
  tools: { helm: ComponentPin };
}

function componentPin(raw: unknown, what: string): ComponentPin {
  const e = raw as { version?: unknown; binaries?: unknown } | undefined;
  if (!e || typeof e.version !== 'string' || !VERSION_RE.test(e.version)) throw new Error(`versions.json: bad version for ${what}`);
  if (!Array.isArray(e.binaries) || e.binaries.length === 0 || !e.binaries.every((b) => typeof b === 'string' && /^[a-z0-9-]+$/.test(b))) {
    throw new Error(`versions.json: bad binaries for ${what}`);
  }
  return { version: e.version, binaries: e.binaries as string[] };
}

const IMAGE_REF_RE = /^[a-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._-]+)+:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Validates and converts the node/images/s3/tools sections of versions.json. Exported for tests. */
export function parseComponentPins(raw: unknown): ComponentPins {
  const file = (raw ?? {}) as {
    node?: Record<string, unknown>;
    images?: Record<string, { ref?: unknown }>;
    s3?: Record<string, unknown>;
    tools?: Record<string, unknown>;
  };
  const node = {} as Record<NodeComponent, ComponentPin>;
  for (const c of NODE_COMPONENTS) node[c] = componentPin(file.node?.[c], `node.${c}`);
  const images = {} as Record<ImageName, { ref: string }>;
  for (const i of IMAGE_NAMES) {
    const ref = file.images?.[i]?.ref;
    if (typeof ref !== 'string' || !IMAGE_REF_RE.test(ref)) throw new Error(`versions.json: bad ref for images.${i}`);
    images[i] = { ref };
  }
  return {
    node,
    images,
    s3: { versitygw: componentPin(file.s3?.versitygw, 's3.versitygw') },
    tools: { helm: componentPin(file.tools?.helm, 'tools.helm') },
  };
}

let cachedPins: ComponentPins | undefined;

/** The node runtime, image, S3 server and tool pins from scripts/toolchain/versions.json (read once). */
export function loadComponentPins(): ComponentPins {
  cachedPins ??= parseComponentPins(JSON.parse(readFileSync(versionsJsonPath(), 'utf8')));
  return cachedPins;
}
