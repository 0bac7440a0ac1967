// Marina with provider openstack, end to end through its API against the real OpenStack control
// plane (scripts/openstack/): a Cluster with spec.cloud is accepted, its first machine becomes a
// Nova server whose user data (read back from Nova, as a hypervisor's metadata service would hand
// it to cloud-init) runs `marina agent join` with a token bound to that Machine; the test plays the
// server's first boot up to the join — pin of Marina's CA, the token from the user data — and
// Marina answers with that Machine's credential and bootstrap (no new Machine), the bootstrap's
// services and their binaries with checksums; the token is single-use; deleting the cluster
// leaves nothing tagged in OpenStack.
//
// MARINA_OPENSTACK_STATE=DIR reuses a running control plane (scripts/openstack/up.sh DIR).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JoinClient, pinnedCa } from '../../src/joinagent/client.js';
import { caPin } from '../../src/joins/pin.js';
import { toolchainOrSkip } from '../support/controlplane.js';
import { authenticate, type Session } from './client.js';
import { sharedOpenStack, stopSharedOpenStack, unavailableReason, type OpenStackEnv } from './controlplane.js';
import { assertNothingTagged, clusterServers, createCluster, deleteCluster, portAddress, PROJECT, startMarina, userDataJoin, type Marina, type UserDataJoin } from './marina-api.js';
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
  const machines = async () => (await marina!.api('GET', `/projects/${PROJECT}/machines`)).json.items as any[];

  before(async () => {
    env = (await sharedOpenStack((line) => console.log(line))).env;
    admin = await authenticate(env.endpoints.keystone, {
      password: { username: env.admin.username, password: env.admin.password, projectName: env.admin.projectName },
    });
    tmp = mkdtempSync(join(tmpdir(), 'mrn-osm-'));
    marina = await startMarina({ tmp, listen: '127.0.0.1:0', toolchain: tc.toolchain! });
  });

  after(async () => {
    // Whatever a failed step left: the cluster's delete removes its servers, ports and load balancer.
    if (marina?.server.running() && clusterUid) await deleteCluster(marina.api, cluster, 300_000).catch(() => undefined);
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
});
