// Marina with provider openstack, end to end through its API against the real OpenStack control
// plane (scripts/openstack/): a Cluster with spec.cloud is accepted, its first machine becomes a
// Nova server whose user data (read back from Nova, as a hypervisor's metadata service would hand
// it to cloud-init) runs `marina agent join` with a token bound to that Machine; the test plays the
// server's first boot up to the join — pin of Marina's CA, the token from the user data — and
// Marina answers with that Machine's credential and bootstrap (no new Machine), the bootstrap's
// services and their binaries with checksums; the token is single-use; deleting the cluster
// leaves nothing tagged in OpenStack.
//
// What this does not do yet: run the bootstrap (etcd, kube-apiserver, a real node) for each server
// in a network namespace holding its port address, and stand in for the Octavia VIP (the no-op
// driver forwards nothing) so the cluster becomes Ready — see docs/openstack-dev.md.
//
// MARINA_OPENSTACK_STATE=DIR reuses a running control plane (scripts/openstack/up.sh DIR).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { fetchTrusting } from '../../src/cli/https-fetch.js';
import { JoinClient, pinnedCa } from '../../src/joinagent/client.js';
import { caPin } from '../../src/joins/pin.js';
import { authenticate, type Session } from './client.js';
import { sharedOpenStack, stopSharedOpenStack, unavailableReason, type OpenStackEnv } from './controlplane.js';
import { OPENSTACK_CREDENTIAL_ID, OPENSTACK_CREDENTIAL_SECRET } from '../../src/api/openstack.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import { pickAddressBase, serverEnv, startServerProcess, waitUntil, type ServerProcess } from '../support/marina.js';

const tc = toolchainOrSkip();
const skipReason = (await unavailableReason()) ?? (tc.skip || undefined);
if (skipReason) console.log(`SKIP Marina on OpenStack: ${skipReason}`);

const NOVA = { 'OpenStack-API-Version': 'compute 2.88' };
const PROJECT = 'os';
const API = '/api/v1alpha1';

after(() => stopSharedOpenStack());

describe('Marina with provider openstack against the real control plane', { skip: skipReason ?? false, timeout: 900_000 }, () => {
  const run = randomBytes(3).toString('hex');
  const cluster = `osc-${run}`;
  let env: OpenStackEnv;
  let admin: Session;
  let tmp = '';
  let server: ServerProcess | undefined;
  let caPem = '';
  let api: (method: string, path: string, body?: unknown) => Promise<{ status: number; json: any }>;
  let clusterUid = '';

  before(async () => {
    env = (await sharedOpenStack((line) => console.log(line))).env;
    admin = await authenticate(env.endpoints.keystone, {
      password: { username: env.admin.username, password: env.admin.password, projectName: env.admin.projectName },
    });
    tmp = mkdtempSync(join(tmpdir(), 'mrn-osm-'));
    mkdirSync(join(tmp, 'home'));
    const dataDir = join(tmp, 'data');
    server = await startServerProcess({
      dataDir,
      listen: '127.0.0.1:0',
      args: ['--tls', 'auto'],
      logFile: join(tmp, 'server.log'),
      env: serverEnv({ home: join(tmp, 'home'), toolchain: tc.toolchain!, addressBase: await pickAddressBase() }),
    });
    caPem = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const f = fetchTrusting(caPem);
    api = async (method, path, body) => {
      const res = await f(`${server!.url}${API}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : undefined };
    };
  });

  after(async () => {
    if (server?.running() && clusterUid) {
      // Whatever a failed step left: the cluster's delete removes its servers, ports and load balancer.
      await api('DELETE', `/projects/${PROJECT}/clusters/${cluster}`).catch(() => undefined);
      await waitUntil('the cluster to go', 300_000, async () => ((await api('GET', `/projects/${PROJECT}/clusters/${cluster}`)).status === 404 ? true : undefined), 2000).catch(() => undefined);
    }
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** Nova's servers tagged with this cluster (the provider tags everything it makes). */
  const clusterServers = async () => {
    const r = await admin.request('compute', 'GET', `/servers/detail?all_tenants=1&tags=marina-cluster-${clusterUid}`, undefined, NOVA);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.servers as any[];
  };

  it('accepts a Cluster of provider openstack with spec.cloud, and boots its first machine with the join in its user data', async () => {
    const created = (what: string, r: { status: number; json: any }) => assert.ok(r.status === 201, `${what}: ${r.status} ${JSON.stringify(r.json)}`);
    created('project', await api('POST', '/projects', { apiVersion: 'marina.dev/v1alpha1', kind: 'Project', metadata: { name: PROJECT }, spec: { members: [] } }));
    created(
      'secret',
      await api('POST', `/projects/${PROJECT}/secrets`, {
        apiVersion: 'marina.dev/v1alpha1',
        kind: 'Secret',
        metadata: { name: 'os-cred' },
        spec: { type: 'Opaque', data: { [OPENSTACK_CREDENTIAL_ID]: env.applicationCredential.id, [OPENSTACK_CREDENTIAL_SECRET]: env.applicationCredential.secret } },
      }),
    );
    created(
      'cloud',
      await api('POST', `/projects/${PROJECT}/openstackclouds`, {
        apiVersion: 'marina.dev/v1alpha1',
        kind: 'OpenStackCloud',
        metadata: { name: 'dev' },
        spec: { authURL: env.endpoints.keystone, credentialsSecret: 'os-cred', network: env.network.name, managementCIDR: '127.0.0.0/8' },
      }),
    );
    const machine = { image: env.image.name, flavor: 'm1.small' };
    const c = await api('POST', `/projects/${PROJECT}/clusters`, {
      apiVersion: 'marina.dev/v1alpha1',
      kind: 'Cluster',
      metadata: { name: cluster },
      spec: {
        provider: 'openstack',
        cloud: 'dev',
        nodePools: [
          { name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1, machine },
          { name: 'workers', roles: ['worker'], replicas: 1, machine, runtime: { type: 'containerd' } },
        ],
      },
    });
    created('cluster', c);
    clusterUid = c.json.metadata.uid;

    const [vm] = await waitUntil('the control-plane machine to become a Nova server', 300_000, async () => {
      const s = await clusterServers();
      return s.length > 0 ? s : undefined;
    }, 2000);
    assert.equal(vm.name, vm.metadata['marina:machine']);
    assert.equal(vm.metadata['marina:pool'], 'cp');
    assert.ok(vm.tags.includes(`marina-machine-${vm.metadata['marina:machine-uid']}`), `tags ${vm.tags}`);
    const machines = (await api('GET', `/projects/${PROJECT}/machines`)).json.items as any[];
    assert.equal(machines.find((m) => m.metadata.name === vm.name)?.spec.provider, 'openstack');
    firstServer = vm;
  });

  let firstServer: any;
  let joinFacts: { url: string; token: string; pin: string; address: string } | undefined;

  it("hands the server's user data the join: Marina's URL, its CA pin and a token file, with the port's address", async () => {
    // OS-EXT-SRV-ATTR:user_data (microversion 2.3+, admin): what the metadata service serves cloud-init.
    const r = await admin.request('compute', 'GET', `/servers/${firstServer.id}`, undefined, NOVA);
    const userData = Buffer.from(r.body.server['OS-EXT-SRV-ATTR:user_data'], 'base64').toString('utf8');
    assert.match(userData, /^#cloud-config\n/);
    const config = parseYaml(userData) as { write_files: { path: string; content: string; permissions: string }[] };
    const tokenFile = config.write_files.find((w) => w.path === '/etc/marina/join-token')!;
    assert.equal(tokenFile.permissions, '0600');
    const unit = config.write_files.find((w) => w.path.endsWith('marina-agent.service'))!.content;
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
    const flag = (name: string) => exec[exec.indexOf(name) + 1]!;
    assert.deepEqual(exec.slice(0, 3), ['marina', 'agent', 'join']);
    assert.equal(flag('--url'), server!.url);
    assert.equal(flag('--ca-pin'), caPin(caPem));
    const ports = await admin.request('network', 'GET', `/v2.0/ports?tags=marina-machine-${firstServer.metadata['marina:machine-uid']}`);
    assert.equal(ports.body.ports.length, 1, 'one port per machine');
    const port = ports.body.ports[0].fixed_ips[0].ip_address as string;
    assert.equal(flag('--node-ip'), port);
    assert.equal(userData.includes(tokenFile.content.trim()) && !unit.includes(tokenFile.content.trim()), true, 'the token is in its file only');
    joinFacts = { url: flag('--url'), token: tokenFile.content.trim(), pin: flag('--ca-pin'), address: port };
  });

  it("joins as that Machine: Marina answers its credential and bootstrap (etcd, kube-apiserver, ...) with the binaries' checksums", async () => {
    const join = joinFacts;
    assert.ok(join, 'the user data was read');
    const before = (await api('GET', `/projects/${PROJECT}/machines`)).json.items.length;
    const ca = await pinnedCa(join.url, join.pin);
    const client = new JoinClient(join.url, ca);
    try {
      const answer = await client.join(join.token, { hostname: firstServer.name, address: join.address });
      assert.equal(answer.machine, firstServer.name);
      assert.equal(answer.cluster, cluster);
      assert.equal((await api('GET', `/projects/${PROJECT}/machines`)).json.items.length, before, 'no Machine is created');
      const sync = await client.sync(answer.credential, { ok: false, message: 'starting' });
      assert.equal(sync.action, 'run');
      if (sync.action !== 'run') return;
      assert.deepEqual(sync.bootstrap.roles.sort(), ['controlplane', 'etcd']);
      const services = sync.bootstrap.services.map((s) => s.binary);
      for (const b of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) assert.ok(services.includes(b), `${b} in ${services}`);
      assert.deepEqual(sync.artifacts.map((a) => a.name).sort(), [...new Set(services)].sort());
      for (const a of sync.artifacts) assert.match(a.sha256, /^[0-9a-f]{64}$/);
      await assert.rejects(client.join(join.token, { hostname: 'again', address: join.address }), /single use and is used already/);
    } finally {
      client.close();
    }
  });

  it('deletes the cluster and leaves nothing tagged with it in OpenStack', async () => {
    assert.equal((await api('DELETE', `/projects/${PROJECT}/clusters/${cluster}`)).status < 300, true);
    await waitUntil('the cluster to go', 600_000, async () => ((await api('GET', `/projects/${PROJECT}/clusters/${cluster}`)).status === 404 ? true : undefined), 2000);
    assert.deepEqual(await clusterServers(), []);
    const ports = await admin.request('network', 'GET', `/v2.0/ports?tags=marina-cluster-${clusterUid}`);
    assert.deepEqual(ports.body.ports, []);
    const lbs = await admin.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers?tags=marina-cluster-${clusterUid}`);
    assert.deepEqual(lbs.body.loadbalancers.filter((l: any) => l.provisioning_status !== 'DELETED'), []);
    const groups = await admin.request('network', 'GET', `/v2.0/security-groups?tags=marina-cluster-${clusterUid}`);
    assert.deepEqual(groups.body.security_groups, []);
  });
});
