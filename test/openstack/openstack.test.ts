// The real OpenStack APIs a Marina provider relies on, against the control plane that
// scripts/openstack/up.sh starts from Debian's packages (Keystone, Nova with the fake virt
// driver, Neutron ML2, Glance, Placement, Octavia with the no-op drivers). The request and
// response shapes asserted here are the ones docs/openstack-dev.md records.
//
// MARINA_OPENSTACK_STATE=DIR reuses a control plane already started with `up.sh DIR` (and leaves
// it running); otherwise the test starts one in a temporary directory and stops it afterwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { authenticate, http, type Session, waitFor } from './client.js';
import { type OpenStackEnv, sharedOpenStack, stopSharedOpenStack, unavailableReason } from './controlplane.js';
import { describeProviderTests } from './provider.js';

const skipReason = await unavailableReason();
if (skipReason) console.log(`SKIP OpenStack integration test: ${skipReason}`);

// Nova microversion: 2.64+ takes a server group's `policy` as a string, 2.52+ takes tags at boot.
const NOVA = { 'OpenStack-API-Version': 'compute 2.88' };
const ACTIVE_TIMEOUT = 180_000;

// One control plane for both suites below; stopped (if this process started it) at the end.
after(() => stopSharedOpenStack());

describe('OpenStack control plane (real Zed services from Debian)', { skip: skipReason ?? false, timeout: 1_500_000 }, () => {
  let env: OpenStackEnv;
  let marina: Session; // the application credential Marina would be given
  let admin: Session; // the cloud operator (reset-state, quotas, hypervisor hosts)
  const run = randomUUID().slice(0, 8); // names and tags unique per run, so a reused plane works
  // Deletes for what a failed test leaves behind (matters when the control plane is reused).
  const leftovers: (() => Promise<unknown>)[] = [];

  before(async () => {
    env = (await sharedOpenStack((line) => console.log(line))).env;
    marina = await authenticate(env.endpoints.keystone, { applicationCredential: env.applicationCredential });
    admin = await authenticate(env.endpoints.keystone, {
      password: { username: env.admin.username, password: env.admin.password, projectName: env.admin.projectName },
    });
  });

  after(async () => {
    for (const cleanup of leftovers.reverse()) await cleanup().catch(() => undefined);
  });

  const flavor = (name: string) => {
    const f = env.flavors.find((x) => x.name === name);
    assert.ok(f, `flavor ${name} in the fixtures`);
    return f;
  };
  const server = async (id: string) => (await marina.request('compute', 'GET', `/servers/${id}`, undefined, NOVA)).body.server;
  const waitServer = (id: string, done: (s: any) => boolean) =>
    waitFor(`server ${id} to settle`, ACTIVE_TIMEOUT, async () => {
      const s = await server(id);
      return done(s) ? s : undefined;
    });
  const waitGone = (what: string, get: () => Promise<number>) =>
    waitFor(`${what} to be deleted`, ACTIVE_TIMEOUT, async () => ((await get()) === 404 ? true : undefined));
  const boot = (body: Record<string, unknown>, hints?: Record<string, unknown>) =>
    marina.request('compute', 'POST', '/servers', { server: body, ...(hints ? { 'os:scheduler_hints': hints } : {}) }, NOVA);

  it('Keystone v3: the application credential issues a project-scoped token with a catalog', async () => {
    const t = marina.tokenBody;
    assert.deepEqual(t.methods, ['application_credential']);
    assert.equal(t.application_credential.id, env.applicationCredential.id);
    assert.equal(t.project.id, env.project.id);
    assert.equal(t.user.id, env.user.id);
    const roles = t.roles.map((r: any) => r.name).sort();
    assert.ok(roles.includes('member') && roles.includes('load-balancer_member'), `roles: ${roles}`);
    assert.ok(Date.parse(t.expires_at) > Date.now());
    const types = t.catalog.map((s: any) => s.type).sort();
    assert.deepEqual(types, ['compute', 'identity', 'image', 'load-balancer', 'network', 'placement']);
    for (const s of t.catalog) assert.ok(s.endpoints.some((e: any) => e.interface === 'public' && e.region_id === env.region));

    // Token validation (what a service does with X-Auth-Token) and a wrong secret.
    const check = await http('GET', `${env.endpoints.keystone}/auth/tokens`, {
      token: marina.token,
      headers: { 'X-Subject-Token': marina.token },
    });
    assert.equal(check.status, 200);
    const bad = await http('POST', `${env.endpoints.keystone}/auth/tokens`, {
      body: { auth: { identity: { methods: ['application_credential'], application_credential: { id: env.applicationCredential.id, secret: 'wrong' } } } },
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error.code, 401);
    assert.equal(bad.body.error.title, 'Unauthorized');
    assert.equal(bad.body.error.message, 'The request you have made requires authentication.');
  });

  it('Nova: anti-affinity group, servers with user data go ACTIVE on distinct hosts, one too many fails with NoValidHost', async () => {
    const group = await marina.request('compute', 'POST', '/os-server-groups', { server_group: { name: `etcd-${run}`, policy: 'anti-affinity' } }, NOVA);
    assert.equal(group.status, 200);
    assert.equal(group.body.server_group.policy, 'anti-affinity');
    const groupId: string = group.body.server_group.id;
    leftovers.push(() => marina.request('compute', 'DELETE', `/os-server-groups/${groupId}`, undefined, NOVA));

    const userData = `#cloud-config\nruncmd:\n  - [sh, -c, "echo join ${run}"]\n`;
    const bootMember = async (i: number) => {
      const r = await boot(
        {
          name: `etcd-${run}-${i}`,
          flavorRef: flavor('m1.small').id,
          imageRef: env.image.id,
          networks: [{ uuid: env.network.id }],
          user_data: Buffer.from(userData).toString('base64'),
          metadata: { 'marina.dev:cluster': run, 'marina.dev:machine': `m-${i}` },
          tags: [`marina-cluster-${run}`, `marina-machine-m-${i}`],
        },
        { group: groupId },
      );
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.match(r.body.server.id, /^[0-9a-f-]{36}$/);
      const id: string = r.body.server.id;
      leftovers.push(() => marina.request('compute', 'DELETE', `/servers/${id}`, undefined, NOVA));
      return waitServer(id, (s) => s.status !== 'BUILD');
    };
    // One after the other: members booted at the same moment can be placed on one host by the
    // scheduler and only the compute host's late check catches that (a reschedule, and after
    // max_attempts an ERROR "Exceeded maximum number of retries ... Anti-affinity instance group
    // policy was violated") — a race this test must not depend on.
    const active: any[] = [];
    for (let i = 0; i < env.computeHosts.length; i++) {
      const s = await bootMember(i);
      assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
      active.push(s);
    }
    // A member more than there are hosts: no valid host.
    const failed = await bootMember(env.computeHosts.length);
    assert.equal(failed.status, 'ERROR');
    assert.equal(failed.fault.code, 500);
    assert.match(failed.fault.message, /^No valid host was found/);
    const ids = [...active.map((s) => s.id as string), failed.id as string];

    for (const s of active) {
      assert.deepEqual(s.server_groups, [groupId]);
      assert.deepEqual(s.tags.sort(), [`marina-cluster-${run}`, `marina-machine-${s.metadata['marina.dev:machine']}`].sort());
      assert.equal(s.metadata['marina.dev:cluster'], run);
      assert.equal(s.flavor.original_name, 'm1.small');
      assert.equal(s.image.id, env.image.id);
      assert.equal(s['OS-EXT-STS:vm_state'], 'active');
      assert.ok(s.addresses[env.network.name]?.[0]?.addr, 'a fixed IP on the project network');
    }
    assert.equal(new Set(active.map((s) => s.hostId)).size, active.length, 'anti-affinity: one host each');

    // What only an operator sees: the hypervisor host and the user data as sent (base64).
    const adminView = (await admin.request('compute', 'GET', `/servers/${active[0].id}`, undefined, NOVA)).body.server;
    assert.ok(env.computeHosts.includes(adminView['OS-EXT-SRV-ATTR:host']));
    assert.equal(Buffer.from(adminView['OS-EXT-SRV-ATTR:user_data'], 'base64').toString(), userData);

    // Filter by tag (what Marina's orphan sweep lists).
    const tagged = await marina.request('compute', 'GET', `/servers/detail?tags=marina-cluster-${run}`, undefined, NOVA);
    assert.equal(tagged.body.servers.length, ids.length);

    // The ports Nova made for the servers are on the network, bound to the servers' hosts.
    const ports = await marina.request('network', 'GET', `/v2.0/ports?device_id=${active[0].id}`);
    assert.equal(ports.body.ports.length, 1);
    assert.equal(ports.body.ports[0].network_id, env.network.id);
    const adminPort = (await admin.request('network', 'GET', `/v2.0/ports/${ports.body.ports[0].id}`)).body.port;
    assert.equal(adminPort['binding:host_id'], adminView['OS-EXT-SRV-ATTR:host']);
    assert.equal(adminPort['binding:vif_type'], 'bridge');

    // An operator (or a broken hypervisor) puts a server into ERROR; Marina sees status ERROR.
    const reset = await admin.request('compute', 'POST', `/servers/${active[0].id}/action`, { 'os-resetState': { state: 'error' } }, NOVA);
    assert.equal(reset.status, 202);
    const errored = await server(active[0].id);
    assert.equal(errored.status, 'ERROR');
    assert.equal(errored['OS-EXT-STS:vm_state'], 'error');
    // ...and a member may not do that itself.
    const denied = await marina.request('compute', 'POST', `/servers/${active[1].id}/action`, { 'os-resetState': { state: 'error' } }, NOVA);
    assert.equal(denied.status, 403);

    for (const id of ids) assert.equal((await marina.request('compute', 'DELETE', `/servers/${id}`, undefined, NOVA)).status, 204);
    for (const id of ids) await waitGone(`server ${id}`, async () => (await marina.request('compute', 'GET', `/servers/${id}`, undefined, NOVA)).status);
    assert.equal((await marina.request('compute', 'DELETE', `/os-server-groups/${groupId}`, undefined, NOVA)).status, 204);
    const leftPorts = await marina.request('network', 'GET', `/v2.0/ports?device_id=${active[0].id}`);
    assert.equal(leftPorts.body.ports.length, 0, 'Nova deletes the ports it created');
  });

  it('Neutron: security group with rules, a port, tags and filtering by tags', async () => {
    const tag = `marina-cluster-${run}`;
    const sg = await marina.request('network', 'POST', '/v2.0/security-groups', {
      security_group: { name: `marina-${run}-controlplane`, description: 'Marina test' },
    });
    assert.equal(sg.status, 201);
    const sgId: string = sg.body.security_group.id;
    leftovers.push(() => marina.request('network', 'DELETE', `/v2.0/security-groups/${sgId}`));
    // A new group allows all egress (IPv4 and IPv6) and nothing else.
    assert.deepEqual(sg.body.security_group.security_group_rules.map((r: any) => `${r.direction}/${r.ethertype}`).sort(), ['egress/IPv4', 'egress/IPv6']);

    const rule = await marina.request('network', 'POST', '/v2.0/security-group-rules', {
      security_group_rule: { security_group_id: sgId, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp', port_range_min: 6443, port_range_max: 6443, remote_ip_prefix: '0.0.0.0/0' },
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    const peers = await marina.request('network', 'POST', '/v2.0/security-group-rules', {
      security_group_rule: { security_group_id: sgId, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp', port_range_min: 2379, port_range_max: 2380, remote_group_id: sgId },
    });
    assert.equal(peers.status, 201);
    const dup = await marina.request('network', 'POST', '/v2.0/security-group-rules', {
      security_group_rule: { security_group_id: sgId, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp', port_range_min: 6443, port_range_max: 6443, remote_ip_prefix: '0.0.0.0/0' },
    });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.NeutronError.type, 'SecurityGroupRuleExists');

    const port = await marina.request('network', 'POST', '/v2.0/ports', {
      port: { name: `marina-${run}-m0`, network_id: env.network.id, security_groups: [sgId], description: 'machine m0' },
    });
    assert.equal(port.status, 201);
    const portId: string = port.body.port.id;
    leftovers.push(() => marina.request('network', 'DELETE', `/v2.0/ports/${portId}`));
    assert.equal(port.body.port.status, 'DOWN');
    assert.equal(port.body.port.fixed_ips[0].subnet_id, env.subnet.id);
    assert.deepEqual(port.body.port.security_groups, [sgId]);
    assert.deepEqual(port.body.port.tags, []);

    // Tags: one at a time (201, no body), or replace the whole set (200 with the set).
    assert.equal((await marina.request('network', 'PUT', `/v2.0/ports/${portId}/tags/${tag}`)).status, 201);
    assert.equal((await marina.request('network', 'PUT', `/v2.0/security-groups/${sgId}/tags/${tag}`)).status, 201);
    const replaced = await marina.request('network', 'PUT', `/v2.0/ports/${portId}/tags`, { tags: [tag, 'marina-machine-m0'] });
    assert.equal(replaced.status, 200);
    assert.deepEqual(replaced.body.tags.sort(), [tag, 'marina-machine-m0'].sort());
    assert.equal((await marina.request('network', 'GET', `/v2.0/ports/${portId}/tags/marina-machine-m0`)).status, 204);
    assert.equal((await marina.request('network', 'GET', `/v2.0/ports/${portId}/tags/absent`)).status, 404);
    const tooLong = await marina.request('network', 'PUT', `/v2.0/ports/${portId}/tags/${'x'.repeat(256)}`);
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.NeutronError.type, 'InvalidInput');
    assert.match(tooLong.body.NeutronError.message, /exceeds maximum length of 255/);

    const byTag = await marina.request('network', 'GET', `/v2.0/ports?tags=${tag}`);
    assert.deepEqual(byTag.body.ports.map((p: any) => p.id), [portId]);
    const byBoth = await marina.request('network', 'GET', `/v2.0/ports?tags=${tag},marina-machine-m0`);
    assert.deepEqual(byBoth.body.ports.map((p: any) => p.id), [portId]);
    const byAny = await marina.request('network', 'GET', `/v2.0/ports?tags-any=${tag},nothing-${run}`);
    assert.deepEqual(byAny.body.ports.map((p: any) => p.id), [portId]);
    const notTagged = await marina.request('network', 'GET', `/v2.0/ports?not-tags=${tag}&network_id=${env.network.id}`);
    assert.ok(!notTagged.body.ports.some((p: any) => p.id === portId));
    const sgByTag = await marina.request('network', 'GET', `/v2.0/security-groups?tags=${tag}`);
    assert.deepEqual(sgByTag.body.security_groups.map((g: any) => g.id), [sgId]);

    // A security group in use by a port cannot be deleted.
    const inUse = await marina.request('network', 'DELETE', `/v2.0/security-groups/${sgId}`);
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.NeutronError.type, 'SecurityGroupInUse');
    assert.equal((await marina.request('network', 'DELETE', `/v2.0/ports/${portId}`)).status, 204);
    assert.equal((await marina.request('network', 'DELETE', `/v2.0/security-groups/${sgId}`)).status, 204);
    assert.equal((await marina.request('network', 'GET', `/v2.0/ports/${portId}`)).status, 404);
  });

  it('Octavia: load balancer, listener, pool, HTTPS health monitor on /readyz and members go ACTIVE', async () => {
    const lbPath = '/v2/lbaas/loadbalancers';
    const tag = `marina-cluster-${run}`;
    const lbReply = await marina.request('load-balancer', 'POST', lbPath, {
      loadbalancer: { name: `marina-${run}-api`, vip_subnet_id: env.subnet.id, tags: [tag] },
    });
    assert.equal(lbReply.status, 201, JSON.stringify(lbReply.body));
    const lb = lbReply.body.loadbalancer;
    leftovers.push(() => marina.request('load-balancer', 'DELETE', `${lbPath}/${lb.id}?cascade=true`));
    assert.equal(lb.provisioning_status, 'PENDING_CREATE');
    assert.equal(lb.provider, 'amphora');
    assert.ok(lb.vip_address, 'a VIP address');
    const lbActive = () =>
      waitFor(`load balancer ${lb.id} ACTIVE`, ACTIVE_TIMEOUT, async () => {
        const s = (await marina.request('load-balancer', 'GET', `${lbPath}/${lb.id}`)).body.loadbalancer;
        assert.notEqual(s.provisioning_status, 'ERROR', 'load balancer went to ERROR');
        return s.provisioning_status === 'ACTIVE' ? s : undefined;
      });
    await lbActive();

    const listener = await marina.request('load-balancer', 'POST', '/v2/lbaas/listeners', {
      listener: { name: `marina-${run}-6443`, loadbalancer_id: lb.id, protocol: 'TCP', protocol_port: 6443, tags: [tag] },
    });
    assert.equal(listener.status, 201, JSON.stringify(listener.body));
    await lbActive();
    const pool = await marina.request('load-balancer', 'POST', '/v2/lbaas/pools', {
      pool: { name: `marina-${run}-apiservers`, listener_id: listener.body.listener.id, protocol: 'TCP', lb_algorithm: 'ROUND_ROBIN', tags: [tag] },
    });
    assert.equal(pool.status, 201, JSON.stringify(pool.body));
    const poolId: string = pool.body.pool.id;
    await lbActive();
    const hm = await marina.request('load-balancer', 'POST', '/v2/lbaas/healthmonitors', {
      healthmonitor: { pool_id: poolId, type: 'HTTPS', http_method: 'GET', url_path: '/readyz', expected_codes: '200', delay: 5, timeout: 3, max_retries: 3, tags: [tag] },
    });
    assert.equal(hm.status, 201, JSON.stringify(hm.body));
    assert.equal(hm.body.healthmonitor.url_path, '/readyz');
    await lbActive();
    const memberIds: string[] = [];
    for (const [i, address] of ['192.0.2.11', '192.0.2.12'].entries()) {
      const m = await marina.request('load-balancer', 'POST', `/v2/lbaas/pools/${poolId}/members`, {
        member: { name: `marina-${run}-cp-${i}`, address, protocol_port: 6443, subnet_id: env.subnet.id, tags: [tag] },
      });
      assert.equal(m.status, 201, JSON.stringify(m.body));
      memberIds.push(m.body.member.id);
      await lbActive();
    }

    const members = await marina.request('load-balancer', 'GET', `/v2/lbaas/pools/${poolId}/members`);
    assert.deepEqual(members.body.members.map((m: any) => m.id).sort(), [...memberIds].sort());
    for (const m of members.body.members) assert.equal(m.provisioning_status, 'ACTIVE');
    const tree = await marina.request('load-balancer', 'GET', `${lbPath}/${lb.id}/status`);
    assert.equal(tree.status, 200);
    assert.equal(tree.body.statuses.loadbalancer.provisioning_status, 'ACTIVE');
    assert.equal(tree.body.statuses.loadbalancer.listeners[0].pools[0].members.length, 2);
    assert.equal(tree.body.statuses.loadbalancer.listeners[0].pools[0].health_monitor.provisioning_status, 'ACTIVE');
    const byTag = await marina.request('load-balancer', 'GET', `${lbPath}?tags=${tag}`);
    assert.deepEqual(byTag.body.loadbalancers.map((l: any) => l.id), [lb.id]);

    // A member removed, then the whole load balancer (cascade).
    assert.equal((await marina.request('load-balancer', 'DELETE', `/v2/lbaas/pools/${poolId}/members/${memberIds[0]}`)).status, 204);
    await lbActive();
    assert.equal((await marina.request('load-balancer', 'DELETE', `${lbPath}/${lb.id}?cascade=true`)).status, 204);
    await waitFor(`load balancer ${lb.id} deleted`, ACTIVE_TIMEOUT, async () => {
      const r = await marina.request('load-balancer', 'GET', `${lbPath}/${lb.id}`);
      return r.status === 404 || r.body?.loadbalancer?.provisioning_status === 'DELETED' ? true : undefined;
    });
  });

  it('Nova: a quota too small for the flavor is a 403 "Quota exceeded" naming the resource', async () => {
    const quotaPath = `/os-quota-sets/${env.project.id}`;
    // A limit below what is in use is refused (400), so the limit is what is used plus one.
    const used: number = (await admin.request('compute', 'GET', `${quotaPath}/detail`, undefined, NOVA)).body.quota_set.cores.in_use;
    const below = await admin.request('compute', 'PUT', quotaPath, { quota_set: { cores: used - 1 } }, NOVA);
    if (used > 0) assert.equal(below.status, 400);
    assert.equal((await admin.request('compute', 'PUT', quotaPath, { quota_set: { cores: used + 1 } }, NOVA)).status, 200);
    try {
      const r = await boot({ name: `quota-${run}`, flavorRef: flavor('m1.medium').id, imageRef: env.image.id, networks: [{ uuid: env.network.id }] });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.forbidden.code, 403);
      assert.equal(r.body.forbidden.message, `Quota exceeded for cores: Requested 2, but already used ${used} of ${used + 1} cores`);
    } finally {
      await admin.request('compute', 'PUT', quotaPath, { quota_set: { cores: env.quotas.compute.cores } }, NOVA);
    }
  });

  it('Nova: a missing image or flavor is a 400 naming it', async () => {
    const missing = randomUUID();
    const noImage = await boot({ name: `noimage-${run}`, flavorRef: flavor('m1.small').id, imageRef: missing, networks: [{ uuid: env.network.id }] });
    assert.equal(noImage.status, 400);
    assert.equal(noImage.body.badRequest.message, 'Can not find requested image');
    const noFlavor = await boot({ name: `noflavor-${run}`, flavorRef: missing, imageRef: env.image.id, networks: [{ uuid: env.network.id }] });
    assert.equal(noFlavor.status, 400);
    assert.equal(noFlavor.body.badRequest.message, `Flavor ${missing} could not be found.`);
    const noNetwork = await boot({ name: `nonet-${run}`, flavorRef: flavor('m1.small').id, imageRef: env.image.id, networks: [{ uuid: missing }] });
    assert.equal(noNetwork.status, 400);
    assert.match(noNetwork.body.badRequest.message, new RegExp(missing));
  });
});

describeProviderTests(skipReason);
