// The OpenStack provider's pure parts: error bodies and their mapping to reasons a user can act on
// (shapes as the real services answer, docs/openstack-dev.md), the user data, the security group's
// rules and the OpenStackCloud validation. Everything that talks to OpenStack is tested against the
// real control plane in test/openstack.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { cidrProblem, validateOpenStackCloud } from '../../api/openstack.js';
import type { Resource } from '../../api/meta.js';
import { ProviderError } from '../contract.js';
import { OpenStackApi } from './api.js';
import { providerError } from './errors.js';
import { machineOfPort, portDescription } from './identity.js';
import { securityGroupRules } from './network.js';
import { errorDetail, OpenStackError, OpenStackUnreachable } from './session.js';
import { renderUserData, TOKEN_FILE } from './userdata.js';

describe('OpenStack errors', () => {
  const reasonOf = (service: 'compute' | 'network' | 'load-balancer', status: number, body: unknown) => {
    const e = body as { NeutronError?: { type: string } };
    const err = providerError(new OpenStackError(service, status, errorDetail(body), e.NeutronError?.type), 'booting') as ProviderError;
    return { reason: err.reason, terminal: err.terminal, message: err.message };
  };

  it('takes the message out of every service\'s error shape', () => {
    assert.equal(errorDetail({ forbidden: { code: 403, message: 'Quota exceeded for cores' } }), 'Quota exceeded for cores');
    assert.equal(errorDetail({ NeutronError: { type: 'OverQuota', message: 'Quota exceeded for resources', detail: '' } }), 'Quota exceeded for resources');
    assert.equal(errorDetail({ faultcode: 'Client', faultstring: 'Quota has been met', debuginfo: null }), 'Quota has been met');
    assert.equal(errorDetail({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } }), 'The request you have made requires authentication.');
    assert.equal(errorDetail('<html><body><h1>502 Bad Gateway</h1></body></html>'), '502 Bad Gateway');
  });

  it('maps quota, missing image and flavor, and other answers to reasons', () => {
    assert.deepEqual(reasonOf('compute', 403, { forbidden: { code: 403, message: 'Quota exceeded for cores: Requested 2, but already used 0 of 1 cores' } }), {
      reason: 'QuotaExceeded',
      terminal: false,
      message: 'booting: OpenStack compute (Nova) answered 403: Quota exceeded for cores: Requested 2, but already used 0 of 1 cores',
    });
    assert.equal(reasonOf('network', 409, { NeutronError: { type: 'OverQuota', message: "Quota exceeded for resources: ['security_group'].", detail: '' } }).reason, 'QuotaExceeded');
    assert.equal(reasonOf('load-balancer', 403, { faultcode: 'Client', faultstring: 'Quota has been met for resources: Load Balancer' }).reason, 'QuotaExceeded');
    assert.deepEqual(reasonOf('compute', 400, { badRequest: { code: 400, message: 'Can not find requested image' } }).reason, 'ImageNotFound');
    assert.equal(reasonOf('compute', 400, { badRequest: { code: 400, message: 'Flavor 42 could not be found.' } }).reason, 'FlavorNotFound');
    assert.equal(reasonOf('compute', 400, { badRequest: { code: 400, message: 'Invalid key_name provided.' } }).reason, 'InvalidRequest');
    assert.equal(reasonOf('compute', 403, { forbidden: { code: 403, message: 'Policy does not allow os_compute_api:os-admin-actions:reset_state' } }).reason, 'Forbidden');
    assert.deepEqual(reasonOf('compute', 503, { computeFault: { code: 503, message: 'Service Unavailable' } }).terminal, false);
    const unreachable = providerError(new OpenStackUnreachable('identity', 'http://192.0.2.1:5000', 'ECONNREFUSED'), 'describing') as ProviderError;
    assert.equal(unreachable.reason, 'OpenStackUnreachable');
    assert.equal(unreachable.message, 'describing: cannot reach OpenStack identity at http://192.0.2.1:5000: ECONNREFUSED');
  });
});

describe('OpenStack answers', () => {
  it('an answer without what the provider reads is an OpenStackError naming the service, not a TypeError', async () => {
    const answering = (body: unknown) => new OpenStackApi({ request: async () => ({ status: 200, body }) } as unknown as ConstructorParameters<typeof OpenStackApi>[0]);
    await assert.rejects(answering('<html>proxy login</html>').servers([]), (e: unknown) => e instanceof OpenStackError && e.service === 'compute' && /wanted a list "servers" of objects with ids\): <html>proxy login/.test(e.detail));
    await assert.rejects(answering({ port: { name: 'no id' } }).createPort({}), (e: unknown) => e instanceof OpenStackError && e.service === 'network' && /wanted an object "port" with an id/.test(e.detail));
    assert.deepEqual(await answering({ servers: [{ id: 'a', name: 'x' }] }).servers([]), [{ id: 'a', name: 'x' }]);
  });
});

describe('OpenStack user data and network', () => {
  it('renders cloud-config that runs the join with the token in a 0600 file, not on the command line', () => {
    const join = { url: 'https://marina.example:8443', token: 'abcdef.0123456789abcdef', caPin: 'sha256:00ff' };
    const text = renderUserData(join, { address: '192.0.2.10', hostname: 'etcd-0' });
    assert.ok(text.startsWith('#cloud-config\n'));
    const config = parse(text);
    assert.equal(config.hostname, 'etcd-0');
    const token = config.write_files.find((f: { path: string }) => f.path === TOKEN_FILE);
    assert.deepEqual(token, { path: TOKEN_FILE, permissions: '0600', owner: 'root:root', content: `${join.token}\n` });
    const unit: string = config.write_files.find((f: { path: string }) => f.path.endsWith('.service')).content;
    assert.match(unit, /^ExecStart=marina agent join --url https:\/\/marina.example:8443 --token-file \/etc\/marina\/join-token --ca-pin sha256:00ff .*--node-ip 192.0.2.10 --hostname etcd-0$/m);
    assert.ok(!unit.includes(join.token));
    assert.ok(Buffer.from(text).toString('base64').length <= 65535, "within Nova's user data limit");
  });

  it('finds the machine a port was made for from its description', () => {
    const m = { project: 'p1', cluster: 'c1', name: 'w-0', uid: '0b9e1f5e-3b7e-4b8e-9a54-1f2d3c4b5a69' };
    assert.deepEqual(machineOfPort(portDescription(m)), m);
    assert.equal(machineOfPort('some port'), undefined);
  });

  it('opens etcd and the kubelet to the group, the agent to Marina, 6443 to all, and the pod CIDR', () => {
    const rules = securityGroupRules('sg', '10.244.0.0/16', '198.18.0.0/15').map((r) => `${r.protocol ?? 'any'} ${r.port_range_min ?? ''}-${r.port_range_max ?? ''} ${r.remote_group_id ?? r.remote_ip_prefix}`);
    assert.deepEqual(rules, ['tcp 6443-6443 0.0.0.0/0', 'tcp 2379-2380 sg', 'tcp 10250-10250 sg', 'tcp 2379-2379 198.18.0.0/15', 'tcp 10270-10270 198.18.0.0/15', 'any - 10.244.0.0/16']);
  });
});

describe('OpenStackCloud validation', () => {
  const cloud = (spec: Record<string, unknown>) => ({ apiVersion: 'marina.dev/v1', kind: 'OpenStackCloud', metadata: { name: 'c' }, spec }) as unknown as Resource;
  const base = { authURL: 'https://keystone.example:5000/v3', credentialsSecret: 'os-cred', network: 'net' };

  it('accepts a plain cloud and names each bad field', () => {
    assert.deepEqual(validateOpenStackCloud(cloud(base)), []);
    assert.deepEqual(
      validateOpenStackCloud(cloud({ ...base, authURL: 'https://u:p@keystone/v3', managementCIDR: '10.0.0.1/8', marinaURL: 'http://marina' })).map((c) => c.field),
      ['spec.authURL', 'spec.managementCIDR', 'spec.marinaURL'],
    );
    assert.equal(cidrProblem('10.0.0.0/8'), undefined);
    assert.match(cidrProblem('10.0.0.0/33')!, /not an IPv4 CIDR/);
  });
});
