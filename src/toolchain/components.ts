// Finds, at run time, what scripts/toolchain/node-runtime.sh, images.sh, s3.sh and helm.sh put in the cache:
//   ${MARINA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}/
//     node/<component>/<version>/     containerd, ctr, containerd-shim-runc-v2 | runc | CNI plugins
//     images/<image>/<tag>/image.oci.tar
//     s3/versitygw/<version>/versitygw
//     tools/helm/<version>/helm
// An entry counts only when its stamp (written last by the script) names the pinned version (or,
// for an image, the pinned reference) and every binary is there.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { STAMP_FILE } from './resolve.js';
import {
  type ComponentPin,
  IMAGE_NAMES,
  type ImageName,
  loadComponentPins,
  NODE_COMPONENTS,
  type NodeComponent,
  type ToolchainScript,
} from './versions.js';

export interface ComponentOptions {
  /** Environment to read MARINA_CACHE_DIR / XDG_CACHE_HOME / HOME from. */
  env?: NodeJS.ProcessEnv;
}

/** Raised when a cache entry is missing; the message names the script that provides it. */
export class ComponentMissingError extends Error {
  readonly component: string;
  readonly script: ToolchainScript;
  constructor(component: string, script: ToolchainScript, looked: string) {
    super(`${component} is not installed (looked in ${looked}). Install it with: scripts/toolchain/${script}`);
    this.name = 'ComponentMissingError';
    this.component = component;
    this.script = script;
  }
}

/** Base of the Marina caches besides the Kubernetes binaries: $MARINA_CACHE_DIR, else $XDG_CACHE_HOME/marina, else ~/.cache/marina. */
export function marinaCacheBase(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MARINA_CACHE_DIR) return resolvePath(env.MARINA_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  return join(xdg ?? join(env.HOME || homedir(), '.cache'), 'marina');
}

function readStamp(dir: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
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

/** A resolved component: its directory, version and the path of each of its binaries. */
export interface ResolvedComponent {
  dir: string;
  version: string;
  paths: Record<string, string>;
}

function resolveComponent(group: 'node' | 's3' | 'tools', name: string, pin: ComponentPin, script: ToolchainScript, env: NodeJS.ProcessEnv): ResolvedComponent {
  const dir = join(marinaCacheBase(env), group, name, pin.version);
  const stamp = readStamp(dir);
  const paths: Record<string, string> = {};
  for (const b of pin.binaries) paths[b] = join(dir, b);
  if (stamp?.version !== pin.version || !Object.values(paths).every(isExecutableFile)) {
    throw new ComponentMissingError(`${name} ${pin.version}`, script, dir);
  }
  return { dir, version: pin.version, paths };
}

/** Everything a real worker runs besides kubelet: containerd, its runc shim, runc and the CNI plugins. */
export interface NodeRuntime {
  containerd: string;
  ctr: string;
  shim: string;
  runc: string;
  /** Directory of the CNI plugins (bridge, host-local, loopback, portmap): the CNI `bin_dir`. */
  cniBinDir: string;
  /**
   * Directories to put first on containerd's PATH: containerd starts `containerd-shim-runc-v2`
   * from PATH, and the shim starts `runc` from PATH unless the runtime's BinaryName option is set.
   */
  pathDirs: string[];
  versions: Record<NodeComponent, string>;
}

/** Resolves the node runtime at the pinned versions; throws ComponentMissingError naming node-runtime.sh. */
export function resolveNodeRuntime(options: ComponentOptions = {}): NodeRuntime {
  const env = options.env ?? process.env;
  const pins = loadComponentPins().node;
  const c = {} as Record<NodeComponent, ResolvedComponent>;
  for (const name of NODE_COMPONENTS) c[name] = resolveComponent('node', name, pins[name], 'node-runtime.sh', env);
  const path = (comp: NodeComponent, bin: string): string => {
    const p = c[comp].paths[bin];
    if (!p) throw new Error(`versions.json: node.${comp} does not list ${bin}`);
    return p;
  };
  return {
    containerd: path('containerd', 'containerd'),
    ctr: path('containerd', 'ctr'),
    shim: path('containerd', 'containerd-shim-runc-v2'),
    runc: path('runc', 'runc'),
    cniBinDir: c['cni-plugins'].dir,
    pathDirs: [c.containerd.dir, c.runc.dir],
    versions: { containerd: c.containerd.version, runc: c.runc.version, 'cni-plugins': c['cni-plugins'].version },
  };
}

/** A locally built image: the OCI archive and the reference it is imported under. */
export interface LocalImage {
  ref: string;
  archive: string;
}

/** Resolves the image archives; throws ComponentMissingError naming images.sh. */
export function resolveImages(options: ComponentOptions = {}): Record<ImageName, LocalImage> {
  const env = options.env ?? process.env;
  const pins = loadComponentPins().images;
  const out = {} as Record<ImageName, LocalImage>;
  for (const name of IMAGE_NAMES) {
    const { ref } = pins[name];
    const dir = join(marinaCacheBase(env), 'images', name, ref.slice(ref.lastIndexOf(':') + 1));
    const archive = join(dir, 'image.oci.tar');
    let ok = readStamp(dir)?.ref === ref;
    try {
      ok &&= statSync(archive).isFile();
    } catch {
      ok = false;
    }
    if (!ok) throw new ComponentMissingError(ref, 'images.sh', dir);
    out[name] = { ref, archive };
  }
  return out;
}

/** Resolves the VersityGW S3 server binary; throws ComponentMissingError naming s3.sh. */
export function resolveS3Server(options: ComponentOptions = {}): { versitygw: string; version: string } {
  const pin = loadComponentPins().s3.versitygw;
  const c = resolveComponent('s3', 'versitygw', pin, 's3.sh', options.env ?? process.env);
  return { versitygw: c.paths.versitygw ?? join(c.dir, 'versitygw'), version: c.version };
}

/** Resolves helm (it renders the chart in deploy/helm); throws ComponentMissingError naming helm.sh. */
export function resolveHelm(options: ComponentOptions = {}): { helm: string; version: string } {
  const pin = loadComponentPins().tools.helm;
  const c = resolveComponent('tools', 'helm', pin, 'helm.sh', options.env ?? process.env);
  return { helm: c.paths.helm ?? join(c.dir, 'helm'), version: c.version };
}
