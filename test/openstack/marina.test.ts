// Marina with provider openstack, end to end through its API against the real OpenStack control
// plane (scripts/openstack/): a Cluster with spec.cloud is accepted, its first machine becomes a
// Nova server whose user data (read back from Nova, as a hypervisor's metadata service would hand
// it to cloud-init) runs `marina agent join` with a token bound to that Machine; the test plays the
// server's first boot up to the join — pin of Marina's CA, the token from the user data — and
// Marina answers with that Machine's credential and bootstrap (no new Machine), the bootstrap's
// services and their binaries with checksums; the token is single-use; deleting the cluster
// leaves nothing tagged in OpenStack.
// Failures surface as conditions a user can act on: a pool whose image Glance does not know, and a
// project whose Nova quota has no room, each in the Machine's and the NodePool's condition with
// OpenStack's message; the booting resumes once the quota has room. The orphan sweep reports and
// removes a load balancer, a security group and a server group made for a cluster that does not
// exist (made here directly through the OpenStack API).
//
// MARINA_OPENSTACK_STATE=DIR reuses a running control plane (scripts/openstack/up.sh DIR).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JoinClient, pinnedCa } from '../../src/joinagent/client.js';
import { caPin } from '../../src/joins/pin.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import { authenticate, type Session } from './client.js';
import { sharedOpenStack, stopSharedOpenStack, unavailableReason, type OpenStackEnv } from './controlplane.js';
import {
  assertNothingTagged,
  clusterServers,
  conditionOf,
  createCluster,
  deleteCluster,
  machinesOf,
  NOVA,
  poolsOf,
  portAddress,
  PROJECT,
  startMarina,
  userDataJoin,
  type Marina,
  type UserDataJoin,
} from './marina-api.js';
import { waitUntil } from '../support/marina.js';

const tc = toolchainOrSkip();
const skipReason = (await unavailableReason()) ?? (tc.skip || undefined);
if (skipReason) console.log(`SKIP Marina on OpenStack: ${skipReason}`);

after(() => stopSharedOpenStack());

describe('Marina with provider openstack against the real control plane', { skip: skipReason ?? false, timeout: 900_000 }, () => {
  const cluster = `osc-${randomBytes(3).toString('hex')}`;
  let env: OpenStackEnv;
  let admin: Session;
  let tmp = '';
  let marina: Marina | undefined;
  let clusterUid = '';
  let firstServer: any;
  let joinFacts: UserDataJoin | undefined;
  const failing: string[] = [];
  let quotaLowered = false;
  const machines = async () => (await marina!.api('GET', `/projects/${PROJECT}/machines`)).json.items as any[];

  before(async () => {
    env = (await sharedOpenStack((line) => console.log(line))).env;
    admin = await authenticate(env.endpoints.keystone, {
      password: { username: env.admin.username, password: env.admin.password, projectName: env.admin.projectName },
    });
    tmp = mkdtempSync(join(tmpdir(), 'mrn-osm-'));
    // A quick orphan sweep: what the last test makes is reported and removed within seconds.
    marina = await startMarina({ tmp, listen: '127.0.0.1:0', toolchain: tc.toolchain!, env: { MARINA_ORPHAN_SWEEP_INTERVAL_SECONDS: '2', MARINA_ORPHAN_GRACE_SECONDS: '10' } });
  });

  after(async () => {
    // Whatever a failed step left: the cluster's delete removes its servers, ports and load balancer.
    if (marina?.server.running() && clusterUid) await deleteCluster(marina.api, cluster, 300_000).catch(() => undefined);
    for (const c of failing) if (marina?.server.running()) await deleteCluster(marina.api, c, 300_000).catch(() => undefined);
    if (quotaLowered) await admin.request('compute', 'PUT', `/os-quota-sets/${env.project.id}`, { quota_set: { instances: env.quotas.compute.instances } }, NOVA).catch(() => undefined);
    await marina?.server.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('accepts a Cluster of provider openstack with spec.cloud, and boots its first machine with the join in its user data', async () => {
    const machine = { image: env.image.name, flavor: 'm1.small' };
    clusterUid = await createCluster(marina!.api, env, cluster, [
      { name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1, machine },
      { name: 'workers', roles: ['worker'], replicas: 1, machine, runtime: { type: 'containerd' } },
    ]);
    const [vm] = await waitUntil('the control-plane machine to become a Nova server', 300_000, async () => {
      const s = await clusterServers(admin, clusterUid);
      return s.length > 0 ? s : undefined;
    }, 2000);
    assert.equal(vm.name, vm.metadata['marina:machine']);
    assert.equal(vm.metadata['marina:pool'], 'cp');
    assert.ok(vm.tags.includes(`marina-machine-${vm.metadata['marina:machine-uid']}`), `tags ${vm.tags}`);
    assert.equal((await machines()).find((m) => m.metadata.name === vm.name)?.spec.provider, 'openstack');
    firstServer = vm;
  });

  it("hands the server's user data the join: Marina's URL, its CA pin and a token file, with the port's address", async () => {
    joinFacts = await userDataJoin(admin, firstServer);
    assert.equal(joinFacts.url, marina!.server.url);
    assert.equal(joinFacts.caPin, caPin(marina!.caPem));
    assert.equal(joinFacts.nodeIp, await portAddress(admin, firstServer.metadata['marina:machine-uid']));
    assert.equal(joinFacts.hostname, firstServer.name);
  });

  it("joins as that Machine: Marina answers its credential and bootstrap (etcd, kube-apiserver, ...) with the binaries' checksums", async () => {
    const j = joinFacts;
    assert.ok(j, 'the user data was read');
    const before = (await machines()).length;
    const client = new JoinClient(j.url, await pinnedCa(j.url, j.caPin));
    try {
      const answer = await client.join(j.token, { hostname: j.hostname, address: j.nodeIp });
      assert.equal(answer.machine, firstServer.name);
      assert.equal(answer.cluster, cluster);
      assert.equal((await machines()).length, before, 'no Machine is created');
      const sync = await client.sync(answer.credential, { ok: false, message: 'starting' });
      assert.equal(sync.action, 'run');
      if (sync.action !== 'run') return;
      assert.deepEqual([...sync.bootstrap.roles].sort(), ['controlplane', 'etcd']);
      const services = sync.bootstrap.services.map((s) => s.binary);
      for (const b of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) assert.ok(services.includes(b), `${b} in ${services}`);
      assert.deepEqual(sync.artifacts.map((a) => a.name).sort(), [...new Set(services)].sort());
      for (const a of sync.artifacts) assert.match(a.sha256, /^[0-9a-f]{64}$/);
      await assert.rejects(client.join(j.token, { hostname: 'again', address: j.nodeIp }), /single use and is used already/);
    } finally {
      client.close();
    }
  });

  it('deletes the cluster and leaves nothing tagged with it in OpenStack', async () => {
    await deleteCluster(marina!.api, cluster);
    await assertNothingTagged(admin, clusterUid);
  });

  it("surfaces a missing image and a full Nova quota in the Machine's and the NodePool's conditions, with OpenStack's message", async () => {
    const id = randomBytes(3).toString('hex');
    const [noImage, noRoom] = [`osi-${id}`, `osq-${id}`];
    const missing = `marina-no-such-image-${id}`;
    const quotaPath = `/os-quota-sets/${env.project.id}`;
    // No room for one more server in the project.
    const used: number = (await admin.request('compute', 'GET', `${quotaPath}/detail`, undefined, NOVA)).body.quota_set.instances.in_use;
    assert.equal((await admin.request('compute', 'PUT', quotaPath, { quota_set: { instances: used } }, NOVA)).status, 200);
    quotaLowered = true;
    failing.push(noImage, noRoom);
    const uids = [
      await createCluster(marina!.api, env, noImage, [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1, machine: { image: missing, flavor: 'm1.small' } }]),
      await createCluster(marina!.api, env, noRoom, [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1, machine: { image: env.image.name, flavor: 'm1.small' } }]),
    ];

    /** Waits until a Machine of `c` and its NodePool both name `reason` with a message matching `message`. */
    const surfaces = async (c: string, reason: string, message: RegExp) => {
      const machine = await waitUntil(`a Machine of ${c} with reason ${reason}`, 300_000, async () =>
        (await machinesOf(marina!.api, c)).find((m) => conditionOf(m, 'InfrastructureReady')?.reason === reason), 2000);
      assert.match(conditionOf(machine, 'InfrastructureReady')!.message, message);
      assert.equal(conditionOf(machine, 'InfrastructureReady')!.status, 'False');
      const pool = await waitUntil(`the NodePool of ${c} with reason ${reason}`, 300_000, async () =>
        (await poolsOf(marina!.api, c)).find((p) => conditionOf(p, 'Ready')?.reason === reason), 2000);
      assert.match(conditionOf(pool, 'Ready')!.message, message);
      return machine;
    };
    const failed = await surfaces(noImage, 'ImageNotFound', new RegExp(`image "${missing}" not found in Glance`));
    assert.equal(failed.status.phase, 'Failed', 'a wrong image is the pool spec: booting again cannot help');
    assert.equal(failed.status.failureReason, 'ImageNotFound');
    await surfaces(noRoom, 'QuotaExceeded', /OpenStack compute \(Nova\) answered 403: Quota exceeded for instances: Requested 1, but already used \d+ of \d+ instances/);
    assert.deepEqual(await clusterServers(admin, uids[1]!), [], 'no server while the quota is full');

    // Room again: the machine boots on a later try, no one has to touch it.
    assert.equal((await admin.request('compute', 'PUT', quotaPath, { quota_set: { instances: env.quotas.compute.instances } }, NOVA)).status, 200);
    quotaLowered = false;
    await waitUntil('the server once the quota has room', 300_000, async () => ((await clusterServers(admin, uids[1]!)).length > 0 ? true : undefined), 2000);

    for (const c of [noImage, noRoom]) await deleteCluster(marina!.api, c);
    failing.length = 0;
    for (const uid of uids) await assertNothingTagged(admin, uid);
  });

  it('reports and removes a load balancer, a security group and a server group made for a cluster that does not exist', async () => {
    const user = await authenticate(env.endpoints.keystone, { applicationCredential: { id: env.applicationCredential.id, secret: env.applicationCredential.secret } });
    const cloudUid = (await marina!.api('GET', `/projects/${PROJECT}/openstackclouds/dev`)).json.metadata.uid as string;
    const ghost = randomUUID();
    const tags = [`marina-cloud-${cloudUid}`, `marina-cluster-${ghost}`];
    const description = `Marina cluster ${PROJECT}/ghost uid ${ghost}`;
    const ok = (what: string, r: { status: number; body: any }) => assert.ok(r.status < 300, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
    const lb = await user.request('load-balancer', 'POST', '/v2/lbaas/loadbalancers', { loadbalancer: { name: 'marina-os-ghost', description, vip_subnet_id: env.subnet.id, tags } });
    ok('load balancer', lb);
    const sg = await user.request('network', 'POST', '/v2.0/security-groups', { security_group: { name: 'marina-os-ghost', description } });
    ok('security group', sg);
    ok('security group tags', await user.request('network', 'PUT', `/v2.0/security-groups/${sg.body.security_group.id}/tags`, { tags }));
    const group = await user.request('compute', 'POST', '/os-server-groups', { server_group: { name: `marina-${ghost}-workers`, policy: 'anti-affinity' } }, NOVA);
    ok('server group', group);
    const ids = [lb.body.loadbalancer.id, sg.body.security_group.id, group.body.server_group.id] as string[];

    const firing = async () =>
      ((await marina!.api('GET', `/projects/${PROJECT}/alerts`)).json.items as any[])
        .filter((a) => a.spec.rule === 'OrphanedResource' && a.status?.state === 'firing')
        .map((a) => a.spec.labels.resource as string);
    await waitUntil('an OrphanedResource alert for each', 120_000, async () => {
      const f = await firing();
      return ids.every((i) => f.includes(i)) ? true : undefined;
    }, 1000);

    const exists = {
      lb: async () => {
        const r = await admin.request('load-balancer', 'GET', `/v2/lbaas/loadbalancers/${ids[0]}`);
        return r.status === 200 && r.body.loadbalancer.provisioning_status !== 'DELETED';
      },
      sg: async () => (await admin.request('network', 'GET', `/v2.0/security-groups/${ids[1]}`)).status === 200,
      group: async () => (await admin.request('compute', 'GET', `/os-server-groups/${ids[2]}`, undefined, NOVA)).status === 200,
    };
    await waitUntil('the orphans removed after the grace period', 180_000, async () => {
      for (const gone of Object.values(exists)) if (await gone()) return undefined;
      return true;
    }, 2000);
    await waitUntil('their alerts resolved', 60_000, async () => ((await firing()).some((i) => ids.includes(i)) ? undefined : true), 1000);
  });
});
