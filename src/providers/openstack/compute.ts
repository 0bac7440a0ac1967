// Nova (and Glance for image names): what a server of a machine boots from, its anti-affinity
// group, and what its state means for Marina.
import { ProviderError, type MachineState } from '../contract.js';
import type { Flavor, Image, OpenStackApi, Server, ServerGroup } from './api.js';
import { looksLikeId } from './api.js';
import { machineOfServer, serverGroupName } from './identity.js';

/**
 * An image id goes to Nova as is (a missing one is Nova's "Can not find requested image"); a name
 * is looked up in Glance.
 */
export async function resolveImage(api: OpenStackApi, ref: string, signal?: AbortSignal): Promise<string> {
  if (looksLikeId(ref)) return ref;
  const found: Image[] = await api.images(ref, signal);
  if (found.length === 0) throw new ProviderError('ImageNotFound', `image ${JSON.stringify(ref)} not found in Glance`, true);
  if (found.length > 1) throw new ProviderError('ImageAmbiguous', `${found.length} images are named ${JSON.stringify(ref)}: name it by id`, true);
  return found[0]!.id;
}

/** A flavor by id or name (Nova has no name filter: the list is matched here). */
export async function resolveFlavor(api: OpenStackApi, ref: string, signal?: AbortSignal): Promise<Flavor> {
  const flavors = await api.flavors(signal);
  const found = flavors.find((f) => f.id === ref) ?? flavors.find((f) => f.name === ref);
  if (!found) throw new ProviderError('FlavorNotFound', `flavor ${JSON.stringify(ref)} not found; flavors: ${flavors.map((f) => f.name).sort().join(', ')}`, true);
  return found;
}

/** etcd and control-plane machines are spread over hosts: losing one host loses one member. */
export function wantsAntiAffinity(roles: readonly string[]): boolean {
  return roles.includes('etcd') || roles.includes('controlplane');
}

export async function ensureServerGroup(api: OpenStackApi, clusterUid: string, pool: string, signal?: AbortSignal): Promise<ServerGroup> {
  const name = serverGroupName(clusterUid, pool);
  // Several of one name (left by an older Marina): always the fullest, then the lowest id.
  const existing = (await api.serverGroups(signal)).filter((g) => g.name === name).sort((a, b) => b.members.length - a.members.length || a.id.localeCompare(b.id));
  return existing[0] ?? api.createServerGroup(name, 'anti-affinity', signal);
}

/** The machine's servers (tagged with its uid; the metadata must agree). */
export async function machineServers(api: OpenStackApi, tag: string, uid: string, signal?: AbortSignal): Promise<Server[]> {
  return (await api.servers([tag], signal)).filter((s) => machineOfServer(s.metadata)?.uid === uid);
}

export const isGoing = (s: Server): boolean => s.status === 'DELETED' || s.status === 'SOFT_DELETED' || s['OS-EXT-STS:task_state'] === 'deleting';

interface ServerState {
  state: MachineState;
  reason?: string;
  message?: string;
}

/**
 * What a server's status means. ACTIVE is the machine's infrastructure only: it counts as Running
 * once its agent joined and reports healthy (`agentHealthy`). A server in ERROR is Failed with
 * Nova's fault; one that was stopped or is going away is Failed too (healing replaces it).
 */
export function serverState(s: Server, agentHealthy: boolean): ServerState {
  if (isGoing(s)) return { state: 'Failed', reason: 'ServerDeleting', message: `server ${s.id} is being deleted outside Marina` };
  switch (s.status) {
    case 'ACTIVE':
      return agentHealthy ? { state: 'Running' } : { state: 'Provisioning' };
    case 'BUILD':
    case 'REBOOT':
    case 'HARD_REBOOT':
    case 'MIGRATING':
    case 'RESIZE':
    case 'VERIFY_RESIZE':
    case 'REBUILD':
      return { state: 'Provisioning' };
    case 'ERROR': {
      const fault = s.fault?.message;
      if (!fault) return { state: 'Failed', reason: 'ServerError', message: `server ${s.id} is in ERROR (vm_state ${s['OS-EXT-STS:vm_state'] ?? 'error'}) without a fault` };
      const noHost = /no valid host|exceeded maximum number of retries/i.test(fault);
      return { state: 'Failed', reason: noHost ? 'NoValidHost' : 'ServerError', message: `server ${s.id}: ${fault}` };
    }
    default:
      // SHUTOFF, PAUSED, SUSPENDED, SHELVED*, RESCUE, UNKNOWN: not running, and not by Marina's doing.
      return { state: 'Failed', reason: 'ServerNotRunning', message: `server ${s.id} is ${s.status}` };
  }
}
