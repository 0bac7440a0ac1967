// Runs the scripts of scripts/toolchain/ (they cache by version, so a second run is quick).
import { spawn, type StdioOptions } from 'node:child_process';
import { normalizeVersion, type ToolchainScript, toolchainScriptPath } from './versions.js';

export interface InstallOptions {
  /** Extra environment (merged over process.env), e.g. MARINA_TOOLCHAIN_DIR or MARINA_TOOLCHAIN_SOURCE. */
  env?: NodeJS.ProcessEnv;
  /** Script path override (tests). */
  script?: string;
  /** stdio for the child; default 'inherit'. */
  stdio?: StdioOptions;
}

/**
 * Runs one of the toolchain scripts (install.sh, node-runtime.sh, images.sh, s3.sh) with the given
 * arguments. Resolves when it succeeds; rejects with the exit status otherwise.
 */
export async function runToolchainScript(name: ToolchainScript, args: string[] = [], options: InstallOptions = {}): Promise<void> {
  const script = options.script ?? toolchainScriptPath(name);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [script, ...args], {
      stdio: options.stdio ?? 'inherit',
      env: { ...process.env, ...options.env },
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${script} ${args.join(' ')} failed (${signal ? `signal ${signal}` : `exit ${code}`})`));
    });
  });
}

/**
 * Installs the toolchain for the given Kubernetes versions (default version when empty) by running
 * the project's install script.
 */
export async function installToolchain(versions: string[] = [], options: InstallOptions = {}): Promise<void> {
  await runToolchainScript('install.sh', versions.map(normalizeVersion), options);
}
