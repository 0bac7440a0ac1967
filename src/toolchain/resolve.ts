// Finds the toolchain binaries for a Kubernetes version at run time.
//   1. $MARINA_BIN_DIR — a directory of binaries the user already has (per binary: used if present)
//   2. the cache filled by scripts/toolchain/install.sh:
//      ${MARINA_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina/bin}/<version>/
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { promisify } from 'node:util';
import {
  BINARY_NAMES,
  type BinaryName,
  defaultVersion,
  EXTRA_BINARY_NAMES,
  type ExtraBinaryName,
  getVersion,
  normalizeVersion,
} from './versions.js';

const execFileAsync = promisify(execFile);

/** Name of the stamp file install.sh writes last into a complete cache entry. */
export const STAMP_FILE = '.marina-toolchain.json';

export type BinarySource = 'MARINA_BIN_DIR' | 'cache';

export interface ResolvedToolchain {
  /** Kubernetes version asked for (`vX.Y.Z`). */
  version: string;
  /** etcd version pinned for it. */
  etcdVersion: string;
  /** Absolute path of each binary. */
  paths: Record<BinaryName, string>;
  /** Where each binary came from. */
  sources: Record<BinaryName, BinarySource>;
  /**
   * The EXTRA_BINARY_NAMES found (same precedence as `paths`); an older cache entry may lack them.
   * resolveExtraBinary() throws naming the install command instead.
   */
  extras: Partial<Record<ExtraBinaryName, string>>;
  /** The cache directory for this version (whether or not it was used). */
  cacheDir: string;
  /** $MARINA_BIN_DIR if set. */
  binDir?: string;
}

export interface ResolveOptions {
  /** Environment to read MARINA_BIN_DIR / MARINA_TOOLCHAIN_DIR / XDG_CACHE_HOME / HOME from. */
  env?: NodeJS.ProcessEnv;
}

/** Error thrown when a binary cannot be found; the message names it and the install command. */
export class ToolchainMissingError extends Error {
  readonly missing: (BinaryName | ExtraBinaryName)[];
  readonly version: string;
  readonly installCommand: string;
  constructor(version: string, missing: (BinaryName | ExtraBinaryName)[], searched: string[]) {
    const installCommand = `npx marina toolchain install ${version}   (or: scripts/toolchain/install.sh ${version})`;
    super(
      `Kubernetes toolchain ${version}: missing ${missing.join(', ')} (looked in ${searched.join(' and ')}). ` +
        `Install it with: ${installCommand}, or set MARINA_BIN_DIR to a directory holding ${BINARY_NAMES.join(', ')}.`,
    );
    this.name = 'ToolchainMissingError';
    this.missing = missing;
    this.version = version;
    this.installCommand = installCommand;
  }
}

/** Root of the toolchain cache: $MARINA_TOOLCHAIN_DIR or $XDG_CACHE_HOME/marina/bin or ~/.cache/marina/bin. */
export function toolchainCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MARINA_TOOLCHAIN_DIR) return resolvePath(env.MARINA_TOOLCHAIN_DIR);
  const xdg = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  const base = xdg ?? join(env.HOME || homedir(), '.cache');
  return join(base, 'marina', 'bin');
}

/** Cache directory of one version. */
export function toolchainVersionDir(version: string = defaultVersion(), env: NodeJS.ProcessEnv = process.env): string {
  return join(toolchainCacheRoot(env), normalizeVersion(version));
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves every binary of a version, or returns the list of missing ones. A cache entry counts only
 * when its stamp file exists (install.sh publishes complete directories only).
 */
export function findToolchain(
  version: string = defaultVersion(),
  options: ResolveOptions = {},
): { ok: true; toolchain: ResolvedToolchain } | { ok: false; missing: BinaryName[]; searched: string[] } {
  const env = options.env ?? process.env;
  const entry = getVersion(version);
  const cacheDir = toolchainVersionDir(entry.kubernetes, env);
  const binDir = env.MARINA_BIN_DIR ? resolvePath(env.MARINA_BIN_DIR) : undefined;
  const cacheComplete = existsSync(join(cacheDir, STAMP_FILE));
  const paths = {} as Record<BinaryName, string>;
  const sources = {} as Record<BinaryName, BinarySource>;
  const missing: BinaryName[] = [];
  for (const name of BINARY_NAMES) {
    if (binDir && isExecutableFile(join(binDir, name))) {
      paths[name] = join(binDir, name);
      sources[name] = 'MARINA_BIN_DIR';
    } else if (cacheComplete && isExecutableFile(join(cacheDir, name))) {
      paths[name] = join(cacheDir, name);
      sources[name] = 'cache';
    } else {
      missing.push(name);
    }
  }
  const searched = [...(binDir ? [`MARINA_BIN_DIR=${binDir}`] : []), cacheDir];
  if (missing.length > 0) return { ok: false, missing, searched };
  const extras: Partial<Record<ExtraBinaryName, string>> = {};
  for (const name of EXTRA_BINARY_NAMES) {
    if (binDir && isExecutableFile(join(binDir, name))) extras[name] = join(binDir, name);
    else if (cacheComplete && isExecutableFile(join(cacheDir, name))) extras[name] = join(cacheDir, name);
  }
  return {
    ok: true,
    toolchain: {
      version: entry.kubernetes,
      etcdVersion: entry.etcd,
      paths,
      sources,
      extras,
      cacheDir,
      ...(binDir ? { binDir } : {}),
    },
  };
}

/** Like findToolchain but throws ToolchainMissingError naming the missing binaries. */
export function resolveToolchain(version: string = defaultVersion(), options: ResolveOptions = {}): ResolvedToolchain {
  const found = findToolchain(version, options);
  if (!found.ok) throw new ToolchainMissingError(normalizeVersion(version), found.missing, found.searched);
  return found.toolchain;
}

/**
 * Path of an extra binary (etcdutl, kubelet, kube-proxy) of a version; throws ToolchainMissingError
 * naming the install command when the version or that binary is not installed.
 */
export function resolveExtraBinary(name: ExtraBinaryName, version: string = defaultVersion(), options: ResolveOptions = {}): string {
  const t = resolveToolchain(version, options);
  const path = t.extras[name];
  if (!path) throw new ToolchainMissingError(t.version, [name], [...(t.binDir ? [`MARINA_BIN_DIR=${t.binDir}`] : []), t.cacheDir]);
  return path;
}

/** Extracts `vX.Y.Z…` from a binary's version output (`Kubernetes v1.36.3`, `etcd Version: 3.6.16`). */
export function parseReportedVersion(output: string): string | undefined {
  const m = /(\d+\.\d+\.\d+[^\s,]*)/.exec(output.split('\n')[0] ?? '');
  return m?.[1] ? `v${m[1]}` : undefined;
}

/** Runs each binary's version command and returns what it reports (undefined if unreadable). */
export async function reportedVersions(toolchain: ResolvedToolchain): Promise<Record<BinaryName, string | undefined>> {
  const argsFor: Record<BinaryName, string[]> = {
    etcd: ['--version'],
    etcdctl: ['version'],
    'kube-apiserver': ['--version'],
    'kube-controller-manager': ['--version'],
    'kube-scheduler': ['--version'],
    kubectl: ['version', '--client'],
  };
  const out = {} as Record<BinaryName, string | undefined>;
  await Promise.all(
    BINARY_NAMES.map(async (name) => {
      try {
        const { stdout } = await execFileAsync(toolchain.paths[name], argsFor[name], { timeout: 30_000 });
        out[name] = parseReportedVersion(stdout);
      } catch {
        out[name] = undefined;
      }
    }),
  );
  return out;
}
