// The machine-bound join (a VM a provider booted joins *as* its Machine): the token the provider
// asks for through MachineJoins, the join route handing that Machine's bootstrap and a credential
// (no new Machine), the artifacts of its services, reports, and forgetting — on an in-memory store
// with the real import provider's agent records.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION } from '../api/meta.js';
import { ArtifactCatalog } from '../joins/artifacts.js';
import { BoundMachineJoins } from '../joins/machine-joins.js';
import { JoinService } from '../joins/service.js';
import type { MachineBootstrap, MachineRef } from '../providers/contract.js';
import { ImportProvider } from '../providers/import/index.js';
import { clusterBody, startTestApi, type TestApi } from '../../test/support/api.js';

const PIN = `sha256:${'cd'.repeat(32)}`;
let api: TestApi;
let dir = '';
let imports: ImportProvider;
let joins: BoundMachineJoins;
let tls = true;

const bootstrap: MachineBootstrap = {
  kubernetesVersion: 'v1.36.3',
  roles: ['etcd', 'controlplane'],
  files: [{ path: 'pki/ca.crt', content: 'CA', mode: 0o644 }],
  services: [
    { name: 'etcd', binary: 'etcd', args: ['--data-dir={root}/etcd'], readyUrl: 'https://10.0.0.5:2379/readyz' },
    { name: 'kube-apiserver', binary: 'kube-apiserver', args: ['--etcd-servers=https://10.0.0.5:2379'] },
  ],
  probeTls: { ca: 'pki/ca.crt', cert: 'pki/probe.crt', key: 'pki/probe.key' },
  loopbackPorts: [10257, 10259],
};

async function machine(name: string): Promise<MachineRef> {
  const m = await api.store.create({
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project: 'alpha', labels: { 'marina.dev/cluster': 'os1', 'marina.dev/pool': 'cp' } },
    spec: { cluster: 'os1', pool: 'cp', roles: ['etcd', 'controlplane'], provider: 'openstack', kubernetesVersion: 'v1.36.3', machine: { image: 'img', flavor: 'm1' } },
  } as never);
  return { project: 'alpha', cluster: 'os1', name, uid: m.metadata.uid! };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'marina-bound-join-'));
  imports = new ImportProvider({ root: join(dir, 'import'), reachableEndpoint: () => undefined });
  for (const b of ['etcd', 'kube-apiserver']) writeFileSync(join(dir, b), `#!/bin/sh\necho ${b}\n`, { mode: 0o755 });
  api = await startTestApi({
    joins: (store) => {
      const service = new JoinService(store, imports);
      joins = new BoundMachineJoins({ service, imports, issuer: 'openstack', target: () => (tls ? { url: 'https://marina.test:7443', caPin: PIN } : undefined) });
      return {
        service,
        imports,
        artifacts: new ArtifactCatalog(
          () => {
            throw new Error('no node runtime in this test');
          },
          () => ({ etcd: join(dir, 'etcd'), 'kube-apiserver': join(dir, 'kube-apiserver') }),
        ),
        target: () => (tls ? { url: 'https://marina.test:7443', caPin: PIN, caPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' } : undefined),
      };
    },
  });
  const cluster = clusterBody('os1', { nodePools: [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 }] });
  await api.store.create({ ...cluster, metadata: { name: 'os1', project: 'alpha' } } as never);
});
after(async () => {
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(method: string, url: string, bearer: string, body?: unknown) {
  return api.app.inject({
    method: method as 'POST',
    url,
    headers: { authorization: `Bearer ${bearer}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
}
const joinWith = (token: string) => call('POST', '/join/v1/machines', token, { hostname: 'vm-1', address: '10.0.0.5' });
const machineCount = async () => (await api.store.list('Machine', { project: 'alpha' })).items.length;

describe('machine-bound join', () => {
  it('joins the server as the Machine its token is bound to and hands it that bootstrap with its binaries', async () => {
    const ref = await machine('os1-cp-a');
    const issued = await joins.issue(ref, bootstrap);
    assert.equal(issued.url, 'https://marina.test:7443');
    assert.equal(issued.caPin, PIN);
    assert.equal(await joins.report(ref), undefined, 'nothing reported before the join');
    const secrets = (await api.store.list('Secret', { project: 'alpha', labelSelector: 'marina.dev/machine=os1-cp-a' })).items;
    assert.equal(secrets.length, 1);
    assert.equal(JSON.stringify(secrets[0]).includes(issued.token.split('.')[1]!), false, 'only the hash is stored');
    // Listed among the cluster's join tokens with the machine it is for, so nobody revokes it by mistake.
    const listed = (await api.client('admin').listJoinTokens('alpha', 'os1')).find((t) => t.id === issued.token.split('.')[0]);
    assert.deepEqual(listed && { machine: listed.machine, singleUse: listed.singleUse }, { machine: { name: 'os1-cp-a', uid: ref.uid }, singleUse: true });

    const before = await machineCount();
    const res = await joinWith(issued.token);
    assert.equal(res.statusCode, 201, res.body);
    const joined = res.json() as { machine: string; credential: string; approvalRequired: boolean };
    assert.equal(joined.machine, 'os1-cp-a');
    assert.equal(joined.approvalRequired, false);
    assert.equal(await machineCount(), before, 'no Machine is created');
    const after = (await api.store.list('Secret', { project: 'alpha', labelSelector: 'marina.dev/machine=os1-cp-a' })).items[0] as { spec: { data: Record<string, string> } };
    assert.equal(after.spec.data.bootstrap, undefined, 'the bootstrap left the token Secret with the join');

    const sync = await call('POST', '/join/v1/machine/sync', joined.credential, { health: { ok: false, message: 'starting' } });
    assert.equal(sync.statusCode, 200, sync.body);
    const run = sync.json() as { action: string; bootstrap: MachineBootstrap; apiServer?: unknown; artifacts: { name: string; kind: string; size: number }[] };
    assert.equal(run.action, 'run');
    assert.deepEqual(run.bootstrap, bootstrap);
    assert.equal(run.apiServer, undefined, 'no node: no endpoint to reach');
    assert.deepEqual(run.artifacts.map((a) => [a.name, a.kind]), [['etcd', 'binary'], ['kube-apiserver', 'binary']]);
    const etcd = await call('GET', '/join/v1/artifacts/etcd', joined.credential);
    assert.equal(etcd.statusCode, 200);
    assert.equal(etcd.body, '#!/bin/sh\necho etcd\n');
    assert.deepEqual(await joins.report(ref), { healthy: false, message: 'starting', lastSeenAt: imports.boundRecord(ref)?.lastSeenAt });

    await call('POST', '/join/v1/machine/sync', joined.credential, { health: { ok: true, message: 'ok' } });
    assert.equal((await joins.report(ref))?.healthy, true);
    assert.deepEqual(await imports.listMachines(), [], "the import provider does not list another provider's machine");

    const again = await joinWith(issued.token);
    assert.equal(again.statusCode, 401, 'single use');
    assert.match(again.json().message, /single use and is used already \(machine os1-cp-a\)/);
  });

  it('replaces an unused token when the machine gets a new one', async () => {
    const ref = await machine('os1-cp-b');
    const first = await joins.issue(ref, bootstrap);
    const second = await joins.issue(ref, bootstrap);
    assert.equal((await joinWith(first.token)).statusCode, 401);
    assert.equal((await joinWith(second.token)).statusCode, 201);
  });

  it('refuses a token whose Machine is gone, and forgets a server whose machine was deleted', async () => {
    const gone = await machine('os1-cp-c');
    const t = await joins.issue(gone, bootstrap);
    await api.store.delete({ kind: 'Machine', project: 'alpha', name: 'os1-cp-c' });
    const res = await joinWith(t.token);
    assert.equal(res.statusCode, 409);
    assert.match(res.json().message, /machine os1-cp-c, which join token .* was issued for, no longer exists/);

    const ref = await machine('os1-cp-d');
    const joined = (await joinWith((await joins.issue(ref, bootstrap)).token)).json() as { credential: string };
    await joins.forget(ref);
    assert.equal((await api.store.list('Secret', { project: 'alpha', labelSelector: 'marina.dev/machine=os1-cp-d' })).items.length, 0);
    assert.equal(await joins.report(ref), undefined);
    const sync = await call('POST', '/join/v1/machine/sync', joined.credential, {});
    assert.equal(sync.json().action, 'leave', 'an agent that comes back is told to leave');
  });

  it('issues no token while Marina serves plain HTTP: a terminal reason for the Machine', async () => {
    const ref = await machine('os1-cp-e');
    tls = false;
    try {
      await assert.rejects(joins.issue(ref, bootstrap), (err: Error & { reason?: string; terminal?: boolean }) => err.reason === 'NoJoinURL' && err.terminal === true);
    } finally {
      tls = true;
    }
  });
});
