// The OpenStack calls the provider makes, typed with the fields it reads. Shapes as documented in
// docs/openstack-dev.md (observed against Zed): Nova /servers and /os-server-groups, Neutron
// /v2.0 ports, networks, subnets, security groups and tags, Glance /v2/images, Octavia /v2/lbaas.
import { OpenStackError, type OpenStackSession, type Reply, type RequestOptions, type ServiceType } from './session.js';

const isObjectWithId = (v: unknown): boolean => typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string';

function unexpected(service: ServiceType, reply: Reply<unknown>, wanted: string): OpenStackError {
  const got = typeof reply.body === 'string' ? reply.body.slice(0, 200) : JSON.stringify(reply.body).slice(0, 200);
  return new OpenStackError(service, reply.status, `unexpected answer (wanted ${wanted}): ${got}`);
}

export interface Server {
  id: string;
  name: string;
  status: string;
  'OS-EXT-STS:task_state'?: string | null;
  'OS-EXT-STS:vm_state'?: string;
  hostId?: string;
  addresses?: Record<string, { addr: string; version: number }[]>;
  metadata?: Record<string, string>;
  tags?: string[];
  fault?: { code?: number; message?: string; details?: string };
  flavor?: { original_name?: string; vcpus?: number; ram?: number };
  image?: { id?: string } | '';
  server_groups?: string[];
  created?: string;
}

export interface Port {
  id: string;
  name: string;
  network_id: string;
  description: string;
  device_id: string;
  device_owner: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
  security_groups: string[];
  tags: string[];
}

export interface Network {
  id: string;
  name: string;
  subnets: string[];
}

export interface Subnet {
  id: string;
  name: string;
  network_id: string;
  ip_version: number;
  cidr: string;
  gateway_ip: string | null;
}

export interface SecurityGroup {
  id: string;
  name: string;
  description: string;
  tags: string[];
  security_group_rules: SecurityGroupRule[];
}

export interface SecurityGroupRule {
  id?: string;
  direction: 'ingress' | 'egress';
  ethertype: 'IPv4' | 'IPv6';
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
  description?: string;
}

export interface ServerGroup {
  id: string;
  name: string;
  policy: string;
  members: string[];
}

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
}

export interface Image {
  id: string;
  name: string;
  status: string;
}

type ProvisioningStatus = 'ACTIVE' | 'PENDING_CREATE' | 'PENDING_UPDATE' | 'PENDING_DELETE' | 'DELETED' | 'ERROR';

export interface LoadBalancer {
  id: string;
  name: string;
  description?: string;
  vip_address: string;
  vip_subnet_id: string;
  provisioning_status: ProvisioningStatus;
  operating_status: string;
  listeners: { id: string }[];
  pools: { id: string }[];
  tags: string[];
}

interface Listener {
  id: string;
  protocol_port: number;
  default_pool_id: string | null;
}

interface LbPool {
  id: string;
  healthmonitor_id: string | null;
  members: { id: string }[];
}

export interface Member {
  id: string;
  address: string;
  protocol_port: number;
  subnet_id?: string;
  tags: string[];
}

const q = (params: Record<string, string | string[] | undefined>): string => {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) sp.append(k, x);
  const s = sp.toString();
  return s ? `?${s}` : '';
};

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
/** OpenStack ids are UUIDs; anything else given for one is a name. */
export const looksLikeId = (s: string): boolean => UUID.test(s);

/** The calls, bound to a session; every one takes the caller's abort signal. */
export class OpenStackApi {
  constructor(readonly session: OpenStackSession) {}

  private call(service: ServiceType, method: string, path: string, opts: RequestOptions = {}): Promise<Reply<unknown>> {
    return this.session.request(service, method, path, opts);
  }

  // The answers are checked for what the provider reads (the wrapper key, and objects with an id)
  // before they are used: a proxy's page or another API version is an OpenStackError naming the
  // service, not a TypeError deep in a controller.

  private one<T>(reply: Reply<unknown>, service: ServiceType, key: string): T {
    const value = (reply.body as Record<string, unknown> | null)?.[key];
    if (!isObjectWithId(value)) throw unexpected(service, reply, `an object "${key}" with an id`);
    return value as T;
  }

  private list<T>(reply: Reply<unknown>, service: ServiceType, key: string): T[] {
    const value = (reply.body as Record<string, unknown> | null)?.[key];
    if (!Array.isArray(value) || !value.every(isObjectWithId)) throw unexpected(service, reply, `a list "${key}" of objects with ids`);
    return value as T[];
  }

  // ---------------------------------------------------------------- Nova

  async servers(tags: string[], signal?: AbortSignal): Promise<Server[]> {
    return this.list<Server>(await this.call('compute', 'GET', `/servers/detail${q({ tags: tags.join(',') })}`, { signal }), 'compute', 'servers');
  }

  async server(id: string, signal?: AbortSignal): Promise<Server | undefined> {
    const r = await this.call('compute', 'GET', `/servers/${id}`, { signal, accept: [404] });
    return r.status === 404 ? undefined : this.one<Server>(r, 'compute', 'server');
  }

  async createServer(server: Record<string, unknown>, hints: Record<string, unknown> | undefined, signal?: AbortSignal): Promise<string> {
    const body = { server, ...(hints ? { 'os:scheduler_hints': hints } : {}) };
    return this.one<{ id: string }>(await this.call('compute', 'POST', '/servers', { body, signal }), 'compute', 'server').id;
  }

  async deleteServer(id: string, signal?: AbortSignal): Promise<void> {
    await this.call('compute', 'DELETE', `/servers/${id}`, { signal, accept: [404] });
  }

  async serverGroups(signal?: AbortSignal): Promise<ServerGroup[]> {
    return this.list<ServerGroup>(await this.call('compute', 'GET', '/os-server-groups?limit=1000', { signal }), 'compute', 'server_groups');
  }

  async createServerGroup(name: string, policy: string, signal?: AbortSignal): Promise<ServerGroup> {
    return this.one<ServerGroup>(await this.call('compute', 'POST', '/os-server-groups', { body: { server_group: { name, policy } }, signal }), 'compute', 'server_group');
  }

  async deleteServerGroup(id: string, signal?: AbortSignal): Promise<void> {
    await this.call('compute', 'DELETE', `/os-server-groups/${id}`, { signal, accept: [404] });
  }

  async flavors(signal?: AbortSignal): Promise<Flavor[]> {
    return this.list<Flavor>(await this.call('compute', 'GET', '/flavors/detail', { signal }), 'compute', 'flavors');
  }

  // ---------------------------------------------------------------- Glance

  async images(name: string, signal?: AbortSignal): Promise<Image[]> {
    return this.list<Image>(await this.call('image', 'GET', `/v2/images${q({ name })}`, { signal }), 'image', 'images');
  }

  // ---------------------------------------------------------------- Neutron

  async networks(ref: string, signal?: AbortSignal): Promise<Network[]> {
    return this.list<Network>(await this.call('network', 'GET', `/v2.0/networks${q(looksLikeId(ref) ? { id: ref } : { name: ref })}`, { signal }), 'network', 'networks');
  }

  async subnets(filter: Record<string, string>, signal?: AbortSignal): Promise<Subnet[]> {
    return this.list<Subnet>(await this.call('network', 'GET', `/v2.0/subnets${q(filter)}`, { signal }), 'network', 'subnets');
  }

  async ports(filter: Record<string, string | string[]>, signal?: AbortSignal): Promise<Port[]> {
    return this.list<Port>(await this.call('network', 'GET', `/v2.0/ports${q(filter)}`, { signal }), 'network', 'ports');
  }

  async createPort(port: Record<string, unknown>, signal?: AbortSignal): Promise<Port> {
    return this.one<Port>(await this.call('network', 'POST', '/v2.0/ports', { body: { port }, signal }), 'network', 'port');
  }

  async deletePort(id: string, signal?: AbortSignal): Promise<void> {
    await this.call('network', 'DELETE', `/v2.0/ports/${id}`, { signal, accept: [404] });
  }

  /** Replaces the tags of a Neutron resource (`ports`, `security-groups`, …). Zed takes no tags in a POST. */
  async setTags(resource: string, id: string, tags: string[], signal?: AbortSignal): Promise<void> {
    await this.call('network', 'PUT', `/v2.0/${resource}/${id}/tags`, { body: { tags }, signal });
  }

  async securityGroups(filter: Record<string, string>, signal?: AbortSignal): Promise<SecurityGroup[]> {
    return this.list<SecurityGroup>(await this.call('network', 'GET', `/v2.0/security-groups${q(filter)}`, { signal }), 'network', 'security_groups');
  }

  async createSecurityGroup(name: string, description: string, signal?: AbortSignal): Promise<SecurityGroup> {
    return this.one<SecurityGroup>(await this.call('network', 'POST', '/v2.0/security-groups', { body: { security_group: { name, description } }, signal }), 'network', 'security_group');
  }

  /** Adds a rule; one that exists already (409 SecurityGroupRuleExists) counts as added. */
  async addRule(groupId: string, rule: Omit<SecurityGroupRule, 'id'>, signal?: AbortSignal): Promise<void> {
    await this.call('network', 'POST', '/v2.0/security-group-rules', { body: { security_group_rule: { ...rule, security_group_id: groupId } }, signal, accept: [409] });
  }

  /** Deletes a group; false while ports still use it (409 SecurityGroupInUse). */
  async deleteSecurityGroup(id: string, signal?: AbortSignal): Promise<boolean> {
    const r = await this.call('network', 'DELETE', `/v2.0/security-groups/${id}`, { signal, accept: [404, 409] });
    return r.status !== 409;
  }

  // ---------------------------------------------------------------- Octavia

  async loadBalancers(tags: string[], signal?: AbortSignal): Promise<LoadBalancer[]> {
    return this.list<LoadBalancer>(await this.call('load-balancer', 'GET', `/v2/lbaas/loadbalancers${q({ tags: tags.join(',') })}`, { signal }), 'load-balancer', 'loadbalancers');
  }

  async loadBalancer(id: string, signal?: AbortSignal): Promise<LoadBalancer | undefined> {
    const r = await this.call('load-balancer', 'GET', `/v2/lbaas/loadbalancers/${id}`, { signal, accept: [404] });
    return r.status === 404 ? undefined : this.one<LoadBalancer>(r, 'load-balancer', 'loadbalancer');
  }

  async createLoadBalancer(lb: Record<string, unknown>, signal?: AbortSignal): Promise<LoadBalancer> {
    return this.one<LoadBalancer>(await this.call('load-balancer', 'POST', '/v2/lbaas/loadbalancers', { body: { loadbalancer: lb }, signal }), 'load-balancer', 'loadbalancer');
  }

  async deleteLoadBalancer(id: string, signal?: AbortSignal): Promise<void> {
    // 409 while it is PENDING_*: the caller waits and tries again.
    await this.call('load-balancer', 'DELETE', `/v2/lbaas/loadbalancers/${id}?cascade=true`, { signal, accept: [404] });
  }

  async listener(id: string, signal?: AbortSignal): Promise<Listener> {
    return this.one<Listener>(await this.call('load-balancer', 'GET', `/v2/lbaas/listeners/${id}`, { signal }), 'load-balancer', 'listener');
  }

  async createListener(listener: Record<string, unknown>, signal?: AbortSignal): Promise<Listener> {
    return this.one<Listener>(await this.call('load-balancer', 'POST', '/v2/lbaas/listeners', { body: { listener }, signal }), 'load-balancer', 'listener');
  }

  async pool(id: string, signal?: AbortSignal): Promise<LbPool> {
    return this.one<LbPool>(await this.call('load-balancer', 'GET', `/v2/lbaas/pools/${id}`, { signal }), 'load-balancer', 'pool');
  }

  async createPool(pool: Record<string, unknown>, signal?: AbortSignal): Promise<LbPool> {
    return this.one<LbPool>(await this.call('load-balancer', 'POST', '/v2/lbaas/pools', { body: { pool }, signal }), 'load-balancer', 'pool');
  }

  async createHealthMonitor(healthmonitor: Record<string, unknown>, signal?: AbortSignal): Promise<void> {
    await this.call('load-balancer', 'POST', '/v2/lbaas/healthmonitors', { body: { healthmonitor }, signal });
  }

  async members(poolId: string, signal?: AbortSignal): Promise<Member[]> {
    return this.list<Member>(await this.call('load-balancer', 'GET', `/v2/lbaas/pools/${poolId}/members`, { signal }), 'load-balancer', 'members');
  }

  /** Replaces the pool's whole member set (202; the load balancer goes PENDING_UPDATE). */
  async setMembers(poolId: string, members: Record<string, unknown>[], signal?: AbortSignal): Promise<void> {
    await this.call('load-balancer', 'PUT', `/v2/lbaas/pools/${poolId}/members`, { body: { members }, signal });
  }
}
