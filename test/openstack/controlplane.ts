// Brings up the real OpenStack control plane of scripts/openstack/ for a test, or reuses one that
// is already running, and stops it again (only if this process started it).
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const scripts = new URL('../../../scripts/openstack/', import.meta.url).pathname;

/** What scripts/openstack/up.sh prints (and leaves in STATE_DIR/openstack.json). */
export interface OpenStackEnv {
  stateDir: string;
  address: string;
  region: string;
  endpoints: { keystone: string; placement: string; nova: string; neutron: string; glance: string; octavia: string };
  admin: { username: string; password: string; projectName: string; domain: string };
  project: { id: string; name: string; domain: string };
  user: { id: string; name: string; password: string };
  applicationCredential: { id: string; name: string; secret: string };
  flavors: { id: string; name: string; vcpus: number; ram: number; disk: number }[];
  image: { id: string; name: string; size: number; status: string };
  network: { id: string; name: string };
  subnet: { id: string; cidr: string };
  computeHosts: string[];
  quotas: { compute: Record<string, number>; network: Record<string, number>; loadBalancer: Record<string, number> };
  startSeconds: number;
}

export interface RunningOpenStack {
  env: OpenStackEnv;
  /** Stops the control plane if this process started it; a no-op for a reused one. */
  stop(): Promise<void>;
}

/**
 * Returns why the control plane cannot run here, or undefined when it can. Installs the packages
 * first when they are missing and this process is root (apt-get works on these machines); only a
 * failed install is a reason to skip.
 */
export async function unavailableReason(): Promise<string | undefined> {
  if (existsSync(reusedStateFile() ?? '')) return undefined;
  try {
    await run(join(scripts, 'install.sh'), ['--check']);
    return undefined;
  } catch {
    /* not installed: try to install */
  }
  if (process.getuid?.() !== 0) return 'OpenStack packages not installed; run scripts/openstack/install.sh as root';
  try {
    await run(join(scripts, 'install.sh'), [], { maxBuffer: 64 * 1024 * 1024, timeout: 1_200_000 });
    return undefined;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return `OpenStack packages not installable: ${(e.stderr || e.message).trim().split('\n').slice(-5).join(' | ')}`;
  }
}

// MARINA_OPENSTACK_STATE=DIR reuses a control plane started by `scripts/openstack/up.sh DIR`.
function reusedStateFile(): string | undefined {
  const dir = process.env.MARINA_OPENSTACK_STATE;
  return dir ? join(dir, 'openstack.json') : undefined;
}

export async function startOpenStack(onProgress: (line: string) => void = () => {}): Promise<RunningOpenStack> {
  const reused = reusedStateFile();
  if (reused && existsSync(reused) && existsSync(join(process.env.MARINA_OPENSTACK_STATE!, 'run', 'up.done'))) {
    return { env: JSON.parse(readFileSync(reused, 'utf8')) as OpenStackEnv, stop: async () => {} };
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'marina-openstack-'));
  const stop = async () => {
    await run(join(scripts, 'down.sh'), [stateDir]).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn(join(scripts, 'up.sh'), [stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        for (const line of d.toString().split('\n')) if (line.trim()) onProgress(line);
      });
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve(out) : reject(new Error(`up.sh exited ${code}: ${err.split('\n').slice(-15).join('\n')}`)),
      );
    });
    return { env: JSON.parse(stdout) as OpenStackEnv, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

let shared: Promise<RunningOpenStack> | undefined;

/**
 * One control plane for every suite of this test process (the API facts and the provider's
 * tests): started on first use, stopped by stopSharedOpenStack in the entry file's `after`.
 */
export function sharedOpenStack(onProgress?: (line: string) => void): Promise<RunningOpenStack> {
  shared ??= startOpenStack(onProgress);
  return shared;
}

export async function stopSharedOpenStack(): Promise<void> {
  const running = await shared?.catch(() => undefined);
  shared = undefined;
  await running?.stop();
}
