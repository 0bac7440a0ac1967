// Octavia: a cluster's API endpoint. One load balancer per cluster with a TCP listener on 6443, a
// round-robin pool, an HTTPS health monitor on /readyz (the amphora does not verify the
// certificate, and /readyz answers anonymous requests) and the control-plane machines as members.
// TLS passes through to the apiservers, whose certificates name the VIP.
//
// While a load balancer is PENDING_* Octavia refuses every change to it or its children (409
// "… is immutable …"), so each step waits for ACTIVE before the next.
import { setTimeout as sleep } from 'node:timers/promises';
import { ProviderError } from '../contract.js';
import type { LoadBalancer, OpenStackApi } from './api.js';
import { APISERVER_PORT } from './network.js';

export interface EndpointTarget {
  tags: string[];
  name: string;
  description: string;
  vipSubnetId: string;
}

export interface Settle {
  timeoutMs: number;
  pollMs: number;
  signal?: AbortSignal | undefined;
}

/** Waits until the load balancer is ACTIVE (or gone: undefined). ERROR is a ProviderError. */
export async function settled(api: OpenStackApi, id: string, s: Settle): Promise<LoadBalancer | undefined> {
  const deadline = Date.now() + s.timeoutMs;
  for (;;) {
    const lb = await api.loadBalancer(id, s.signal);
    if (!lb || lb.provisioning_status === 'DELETED') return undefined;
    if (lb.provisioning_status === 'ACTIVE') return lb;
    if (lb.provisioning_status === 'ERROR') throw new ProviderError('LoadBalancerError', `load balancer ${lb.name} (${lb.id}) is in provisioning status ERROR in Octavia`);
    if (Date.now() > deadline) throw new ProviderError('LoadBalancerPending', `load balancer ${lb.name} (${lb.id}) is still ${lb.provisioning_status} after ${Math.round(s.timeoutMs / 1000)} s`);
    await sleep(s.pollMs, undefined, s.signal ? { signal: s.signal } : undefined);
  }
}

/** A live load balancer with these tags (one being deleted does not count). */
async function findLoadBalancer(api: OpenStackApi, tags: string[], signal?: AbortSignal): Promise<LoadBalancer | undefined> {
  const lbs = (await api.loadBalancers(tags, signal)).filter((lb) => lb.provisioning_status !== 'PENDING_DELETE' && lb.provisioning_status !== 'DELETED');
  return lbs.sort((a, b) => a.id.localeCompare(b.id))[0];
}

/**
 * The load balancer exists with listener, pool and health monitor, and its members are exactly
 * `members` (address, port, subnet). Returns its VIP.
 */
export async function ensureLoadBalancer(api: OpenStackApi, t: EndpointTarget, members: { address: string; port: number; subnetId?: string }[], s: Settle): Promise<string> {
  let lb = (await findLoadBalancer(api, t.tags, s.signal)) ?? (await api.createLoadBalancer({ name: t.name, description: t.description, vip_subnet_id: t.vipSubnetId, tags: t.tags }, s.signal));
  const vip = lb.vip_address;
  lb = await active(api, lb.id, s);
  const child = { tags: t.tags, name: t.name };
  let listenerId = lb.listeners[0]?.id;
  if (!listenerId) {
    listenerId = (await api.createListener({ ...child, loadbalancer_id: lb.id, protocol: 'TCP', protocol_port: APISERVER_PORT }, s.signal)).id;
    lb = await active(api, lb.id, s);
  }
  let poolId = (await api.listener(listenerId, s.signal)).default_pool_id;
  if (!poolId) {
    poolId = (await api.createPool({ ...child, listener_id: listenerId, protocol: 'TCP', lb_algorithm: 'ROUND_ROBIN' }, s.signal)).id;
    lb = await active(api, lb.id, s);
  }
  if (!(await api.pool(poolId, s.signal)).healthmonitor_id) {
    await api.createHealthMonitor(
      { ...child, pool_id: poolId, type: 'HTTPS', http_method: 'GET', url_path: '/readyz', expected_codes: '200', delay: 5, timeout: 3, max_retries: 3, max_retries_down: 3 },
      s.signal,
    );
    lb = await active(api, lb.id, s);
  }
  const current = await api.members(poolId, s.signal);
  const key = (address: string, port: number) => `${address}:${port}`;
  const want = new Set(members.map((m) => key(m.address, m.port)));
  const have = new Set(current.map((m) => key(m.address, m.protocol_port)));
  if (want.size !== have.size || [...want].some((k) => !have.has(k))) {
    await api.setMembers(
      poolId,
      members.map((m) => ({ address: m.address, protocol_port: m.port, tags: t.tags, ...(m.subnetId ? { subnet_id: m.subnetId } : {}) })),
      s.signal,
    );
    await active(api, lb.id, s);
  }
  return vip;
}

async function active(api: OpenStackApi, id: string, s: Settle): Promise<LoadBalancer> {
  const lb = await settled(api, id, s);
  if (!lb) throw new ProviderError('LoadBalancerGone', `load balancer ${id} disappeared while Marina was setting it up`);
  return lb;
}

/** Deletes every load balancer with these tags (with its children) and waits until they are gone. */
export async function deleteLoadBalancers(api: OpenStackApi, tags: string[], s: Settle): Promise<void> {
  for (const lb of await api.loadBalancers(tags, s.signal)) {
    if (lb.provisioning_status === 'DELETED') continue;
    if (lb.provisioning_status !== 'PENDING_DELETE') {
      // A change in flight must finish first (a delete while PENDING_UPDATE is refused).
      if (lb.provisioning_status !== 'ACTIVE' && lb.provisioning_status !== 'ERROR') await settled(api, lb.id, s).catch(() => undefined);
      await api.deleteLoadBalancer(lb.id, s.signal);
    }
    const deadline = Date.now() + s.timeoutMs;
    while (await api.loadBalancer(lb.id, s.signal)) {
      if (Date.now() > deadline) throw new ProviderError('LoadBalancerDeleting', `load balancer ${lb.name} (${lb.id}) is still being deleted`);
      await sleep(s.pollMs, undefined, s.signal ? { signal: s.signal } : undefined);
    }
  }
}
