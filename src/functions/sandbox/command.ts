// The command line of one sandbox, a pure function of the host's facilities and the instance's
// limits (unit-tested). The chain, each step exec'ing the next so that the pid stays the same:
//   sh     writes its pid into the instance's cgroups (so everything after is counted from the start)
//   prlimit  RLIMIT_CPU (the instance's CPU-time budget), no core dumps, RLIMIT_NPROC/AS fallbacks
//   setpriv  a uid of the instance's own, no groups, no inheritable capabilities, no_new_privs
//   bwrap  new user, pid, net, ipc, uts, cgroup and mount namespaces; nothing of the host but node,
//          its libraries and the runner, read-only; a private /tmp; an empty environment
//   node   the runner, with V8's heap below the memory limit
import type { SandboxHost } from './host.js';
import { RUNNER_IN_SANDBOX } from './host.js';

export interface SandboxProfile {
  memoryMiB: number;
  network: boolean;
}

export interface SandboxLimits {
  /** CPU seconds over the instance's whole life (RLIMIT_CPU): SIGXCPU at the soft limit, SIGKILL at the hard one. */
  cpuSeconds: number;
  /** Tasks (processes + threads); Node alone runs about 11. */
  pids: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { cpuSeconds: 600, pids: 64 };
/** Virtual address space Node reserves beyond its heap (≈ 0.7 GiB measured for an idle runner). */
const ADDRESS_SPACE_OVERHEAD = 2 * 2 ** 30;

/** The V8 old-space limit: three quarters of the memory limit, so a heap hog meets V8's limit first and fails cleanly. */
export function heapLimitMiB(memoryMiB: number): number {
  return Math.max(16, Math.floor(memoryMiB * 0.75));
}

export function sandboxCommand(host: SandboxHost, o: { profile: SandboxProfile; limits: SandboxLimits; procsFiles: string[]; uid?: number }): { file: string; args: string[] } {
  const chain: string[] = [];
  if (host.prlimit) {
    chain.push(host.prlimit, `--cpu=${o.limits.cpuSeconds}:${o.limits.cpuSeconds + 1}`, '--core=0');
    if (host.pids === 'rlimit-uid') chain.push(`--nproc=${o.limits.pids}`);
    if (host.memory === 'rlimit') chain.push(`--as=${o.profile.memoryMiB * 2 ** 20 + ADDRESS_SPACE_OVERHEAD}`);
    chain.push('--');
  }
  if (host.setpriv && o.uid !== undefined) {
    chain.push(host.setpriv, `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', '--inh-caps=-all', '--no-new-privs', '--');
  }
  chain.push(host.bwrap, '--unshare-all');
  if (o.profile.network) {
    chain.push('--share-net');
    // Name resolution and TLS roots for functions allowed on the network.
    for (const f of ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs']) chain.push('--ro-bind-try', f, f);
  }
  chain.push('--die-with-parent', '--new-session', '--clearenv', '--cap-drop', 'ALL', '--hostname', 'function');
  for (const b of host.binds) chain.push('--ro-bind', b.src, b.dst);
  chain.push('--tmpfs', '/tmp', '--proc', '/proc', '--dev', '/dev', '--chdir', '/tmp');
  chain.push(host.node, `--max-old-space-size=${heapLimitMiB(o.profile.memoryMiB)}`, RUNNER_IN_SANDBOX);
  if (o.procsFiles.length === 0) return { file: chain[0]!, args: chain.slice(1) };
  // Join the cgroups before anything of the sandbox runs, then become the rest of the chain.
  const script = 'for f in "$@"; do shift; [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; done; exec "$@"';
  return { file: '/bin/sh', args: ['-c', script, 'sh', ...o.procsFiles, '--', ...chain] };
}
