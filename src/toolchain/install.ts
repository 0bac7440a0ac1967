// Runs scripts/toolchain/install.sh with inherited stdio.
import { spawn } from 'node:child_process';
import { installScriptPath, normalizeVersion } from './versions.js';

export interface InstallOptions {
  /** Extra environment (merged over process.env), e.g. MARINA_TOOLCHAIN_DIR or MARINA_TOOLCHAIN_SOURCE. */
  env?: NodeJS.ProcessEnv;
  /** Script path override (tests). */
  script?: string;
  /** stdio for the child; default 'inherit'. */
  stdio?: 'inherit' | 'ignore' | 'pipe';
}

/**
 * Installs the toolchain for the given Kubernetes versions (default version when empty) by running
 * the project's install script. Resolves when it succeeds; rejects with the exit status otherwise.
 */
export async function installToolchain(versions: string[] = [], options: InstallOptions = {}): Promise<void> {
  const script = options.script ?? installScriptPath();
  const args = versions.map(normalizeVersion);
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
