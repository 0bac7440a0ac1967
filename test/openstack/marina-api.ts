// Marina (a server process with its own CA) driven through its API against the real OpenStack
// control plane, and what a test reads back from OpenStack: the tests of provider openstack
// through Marina (marina.test.ts, hypervisor.test.ts) share this.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { OPENSTACK_CREDENTIAL_ID, OPENSTACK_CREDENTIAL_SECRET } from '../../src/api/openstack.js';
import { fetchTrusting } from '../../src/cli/https-fetch.js';
import type { ResolvedToolchain } from '../../src/toolchain/resolve.js';
import { pickAddressBase, serverEnv, startServerProcess, waitUntil, type ServerProcess } from '../support/marina.js';
import type { Session } from './client.js';
import type { OpenStackEnv } from './controlplane.js';

export const NOVA = { 'OpenStack-API-Version': 'compute 2.88' };
export const PROJECT = 'os';

export type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: any; text: string }>;

export interface Marina {
  server: ServerProcess;
  caPem: string;
  /** Calls under /api/v1alpha1 as the platform admin. */
  api: Api;
}

/** Starts `marina server --tls auto` on `listen` (its data and log under `tmp`). */
export async function startMarina(o: { tmp: string; listen: string; toolchain: ResolvedToolchain; env?: NodeJS.ProcessEnv }): Promise<Marina> {
  mkdirSync(join(o.tmp, 'home'), { recursive: true });
  const dataDir = join(o.tmp, 'data');
  const server = await startServerProcess({
    dataDir,
    listen: o.listen,
    args: ['--tls', 'auto'],
    logFile: join(o.tmp, 'server.log'),
    env: { ...serverEnv({ home: join(o.tmp, 'home'), toolchain: o.toolchain, addressBase: await pickAddressBase() }), ...o.env },
  });
  const caPem = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const f = fetchTrusting(caPem);
  const api: Api = async (method, path, body) => {
    const res = await f(`${server.url}/api/v1alpha1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: res.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : undefined, text };
  };
  return { server, caPem, api };
}

/** Project, credentials Secret, OpenStackCloud (each unless it exists) and the Cluster with `pools`; returns the Cluster's uid. */
export async function createCluster(api: Api, env: OpenStackEnv, cluster: string, pools: Record<string, unknown>[]): Promise<string> {
  const created = (what: string, r: { status: number; json: any }) => assert.ok(r.status === 201 || (what !== 'cluster' && r.status === 409), `${what}: ${r.status} ${JSON.stringify(r.json)}`);
  const meta = { apiVersion: 'marina.dev/v1alpha1' };
  created('project', await api('POST', '/projects', { ...meta, kind: 'Project', metadata: { name: PROJECT }, spec: { members: [] } }));
  const data = { [OPENSTACK_CREDENTIAL_ID]: env.applicationCredential.id, [OPENSTACK_CREDENTIAL_SECRET]: env.applicationCredential.secret };
  created('secret', await api('POST', `/projects/${PROJECT}/secrets`, { ...meta, kind: 'Secret', metadata: { name: 'os-cred' }, spec: { type: 'Opaque', data } }));
  created(
    'cloud',
    await api('POST', `/projects/${PROJECT}/openstackclouds`, {
      ...meta,
      kind: 'OpenStackCloud',
      metadata: { name: 'dev' },
      spec: { authURL: env.endpoints.keystone, credentialsSecret: 'os-cred', network: env.network.name },
    }),
  );
  const c = await api('POST', `/projects/${PROJECT}/clusters`, { ...meta, kind: 'Cluster', metadata: { name: cluster }, spec: { provider: 'openstack', cloud: 'dev', nodePools: pools } });
  created('cluster', c);
  return c.json.metadata.uid as string;
}

/** Deletes the cluster and waits until Marina no longer shows it. */
export async function deleteCluster(api: Api, cluster: string, timeoutMs = 600_000): Promise<void> {
  assert.ok((await api('DELETE', `/projects/${PROJECT}/clusters/${cluster}`)).status < 300);
  await waitUntil('the cluster to go', timeoutMs, async () => ((await api('GET', `/projects/${PROJECT}/clusters/${cluster}`)).status === 404 ? true : undefined), 2000);
}

/** Nova's servers tagged with the cluster (the provider tags everything it makes). */
export async function clusterServers(admin: Session, clusterUid: string): Promise<any[]> {
  const r = await admin.request('compute', 'GET', `/servers/detail?all_tenants=1&tags=marina-cluster-${clusterUid}`, undefined, NOVA);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.servers as any[];
}

/** The join a server's user data runs (what cloud-init gets from the metadata service), and its port's address. */
export interface UserDataJoin {
  url: string;
  token: string;
  caPin: string;
  nodeIp: string;
  hostname: string;
  /** The whole `marina agent join` command line of the systemd unit. */
  exec: string[];
}

export async function userDataJoin(admin: Session, server: { id: string }): Promise<UserDataJoin> {
  // OS-EXT-SRV-ATTR:user_data (microversion 2.3+, admin).
  const r = await admin.request('compute', 'GET', `/servers/${server.id}`, undefined, NOVA);
  const userData = Buffer.from(r.body.server['OS-EXT-SRV-ATTR:user_data'], 'base64').toString('utf8');
  assert.match(userData, /^#cloud-config\n/);
  const config = parseYaml(userData) as { write_files: { path: string; content: string; permissions: string }[] };
  const tokenFile = config.write_files.find((w) => w.path === '/etc/marina/join-token');
  assert.ok(tokenFile, 'the token file is in the user data');
  assert.equal(tokenFile.permissions, '0600');
  const unit = config.write_files.find((w) => w.path.endsWith('marina-agent.service'))!.content;
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
  assert.deepEqual(exec.slice(0, 3), ['marina', 'agent', 'join']);
  assert.equal(unit.includes(tokenFile.content.trim()), false, 'the token is in its file only');
  const flag = (name: string) => exec[exec.indexOf(name) + 1]!;
  return { url: flag('--url'), token: tokenFile.content.trim(), caPin: flag('--ca-pin'), nodeIp: flag('--node-ip'), hostname: flag('--hostname'), exec };
}

/** The address of the machine's Neutron port (one per machine). */
export async function portAddress(admin: Session, machineUid: string): Promise<string> {
  const ports = await admin.request('network', 'GET', `/v2.0/ports?tags=marina-machine-${machineUid}`);
  assert.equal(ports.body.ports.length, 1, 'one port per machine');
  return ports.body.ports[0].fixed_ips[0].ip_address as string;
}

/** Nothing tagged with the cluster is left: servers, ports, security groups, load balancers. */
export async function assertNothingTagged(admin: Session, clusterUid: string): Promise<void> {
  const tag = `marina-cluster-${clusterUid}`;
  assert.deepEqual(await clusterServers(admin, clusterUid), []);
  assert.deepEqual((await admin.request('network', 'GET', `/v2.0/ports?tags=${tag}`)).body.ports, []);
  assert.deepEqual((await admin.request('network', 'GET', `/v2.0/security-groups?tags=${tag}`)).body.security_groups, []);
  const lbs = (await admin.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=${tag}`)).body.loadbalancers as any[];
  assert.deepEqual(lbs.filter((l) => l.provisioning_status !== 'DELETED'), []);
}

/** Sets a pool's replicas in the Cluster's spec (GET, then PUT with its resourceVersion; again on a conflict). */
export async function scalePool(api: Api, cluster: string, pool: string, replicas: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const c = (await api('GET', `/projects/${PROJECT}/clusters/${cluster}`)).json;
    const p = c.spec.nodePools.find((x: any) => x.name === pool);
    assert.ok(p, `pool ${pool} in ${JSON.stringify(c.spec.nodePools)}`);
    p.replicas = replicas;
    const r = await api('PUT', `/projects/${PROJECT}/clusters/${cluster}`, c);
    if (r.status === 200) return;
    assert.ok(r.status === 409 && attempt < 5, `scaling ${cluster}/${pool}: ${r.status} ${r.text}`);
  }
}

/** The cluster's NodePool objects and Machines as Marina's API shows them. */
export async function poolsOf(api: Api, cluster: string): Promise<any[]> {
  return ((await api('GET', `/projects/${PROJECT}/nodepools`)).json.items as any[]).filter((p) => p.spec.cluster === cluster);
}

export async function machinesOf(api: Api, cluster: string): Promise<any[]> {
  return ((await api('GET', `/projects/${PROJECT}/machines`)).json.items as any[]).filter((m) => m.spec.cluster === cluster);
}

export const conditionOf = (obj: any, type: string): { type: string; status: string; reason: string; message: string } | undefined =>
  (obj?.status?.conditions as any[] | undefined)?.find((c) => c.type === type);
