// The client against a stand-in for etcd's JSON gateway (same paths, mTLS, uint64 ids). The real
// etcd is exercised by the end-to-end test once the toolchain is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCA, issueCertificate } from '../pki/index.js';
import { blackHole } from '../../test/support/black-hole.js';
import { EtcdClient, EtcdError, parseJsonKeepingBigInts } from './client.js';

const BIG = '18446744073709551615'; // 2^64-1: a JS number would round it
const BIG2 = '10276657743932975437';

interface FakeMember {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

type CA = Awaited<ReturnType<typeof createCA>>;

async function fakeEtcd(opts: { numbers?: boolean; learner?: boolean; ca?: CA } = {}) {
  const ca = opts.ca ?? (await createCA({ commonName: 'etcd-ca' }));
  const server = await issueCertificate(ca, { commonName: 'etcd', usage: 'server', ipAddresses: ['127.0.0.1'] });
  const client = await issueCertificate(ca, { commonName: 'marina', usage: 'client' });
  const stranger = await issueCertificate(await createCA({ commonName: 'other' }), { commonName: 'x', usage: 'client' });
  const members: FakeMember[] = [{ ID: BIG, name: 'm1', peerURLs: ['https://127.0.0.1:2380'], clientURLs: [] }];
  const requests: { path: string; body: string }[] = [];
  let healthy = true;
  const encode = (v: unknown): string => {
    const text = JSON.stringify(v);
    // Some gateways could send uint64 as numbers: emulate that on demand.
    return opts.numbers ? text.replace(/"(ID|member_id|leader)":"(\d+)"/g, '"$1":$2') : text;
  };
  const srv = https.createServer(
    { cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push({ path: req.url ?? '', body });
        const send = (status: number, v: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(typeof v === 'string' ? v : encode(v));
        };
        const header = { cluster_id: BIG2, member_id: BIG, revision: '7', raft_term: '2' };
        switch (req.url) {
          case '/health?serializable=true':
            return send(healthy ? 200 : 503, { health: String(healthy), reason: healthy ? '' : 'RAFT NO LEADER' });
          case '/v3/cluster/member/list':
            if (opts.learner) return send(503, { error: 'etcdserver: rpc not supported for learner', code: 14, message: 'etcdserver: rpc not supported for learner' });
            return send(200, { header, members });
          case '/v3/cluster/member/add': {
            const { peerURLs } = JSON.parse(body) as { peerURLs: string[] };
            if (members.some((m) => m.peerURLs.some((u) => peerURLs.includes(u)))) {
              return send(400, { error: 'etcdserver: Peer URLs already exists', code: 9, message: 'etcdserver: Peer URLs already exists' });
            }
            const member = { ID: BIG2, name: '', peerURLs, clientURLs: [] };
            members.push(member);
            return send(200, { header, member, members });
          }
          case '/v3/cluster/member/remove': {
            // The raw body must carry the id as a string, never a rounded number.
            const id = (parseJsonKeepingBigInts(body) as { ID: string }).ID;
            const i = members.findIndex((m) => m.ID === id);
            if (i < 0) return send(404, { error: 'etcdserver: member not found', code: 5, message: 'etcdserver: member not found' });
            members.splice(i, 1);
            return send(200, { header, members });
          }
          case '/v3/maintenance/status':
            return send(200, { header, version: '3.6.16', dbSize: '20480', leader: BIG, raftIndex: '42', raftTerm: '2', raftAppliedIndex: '42' });
          default:
            return send(404, { error: 'not found', code: 5 });
        }
      });
    },
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  members[0]!.clientURLs = [url];
  return {
    url,
    ca,
    members,
    requests,
    setHealthy: (h: boolean) => (healthy = h),
    client: (endpoints = [url]) => new EtcdClient({ endpoints, ca: ca.certPem, cert: client.certPem, key: client.keyPem, timeoutMs: 2000 }),
    stranger: () => new EtcdClient({ endpoints: [url], ca: ca.certPem, cert: stranger.certPem, key: stranger.keyPem, timeoutMs: 2000 }),
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

test('parseJsonKeepingBigInts quotes long integer literals only', () => {
  assert.deepEqual(parseJsonKeepingBigInts(`{"ID":${BIG},"n":5,"s":"${BIG}","f":1.5,"a":[${BIG2}]}`), {
    ID: BIG,
    n: 5,
    s: BIG,
    f: 1.5,
    a: [BIG2],
  });
  assert.deepEqual(parseJsonKeepingBigInts('{"x":"say \\"12345678901234567890\\" here","y":-12345678901234567890}'), {
    x: 'say "12345678901234567890" here',
    y: '-12345678901234567890',
  });
  assert.deepEqual(parseJsonKeepingBigInts('{"f":0.12345678901234567890}'), { f: JSON.parse('0.12345678901234567890') as number });
});

for (const numbers of [false, true]) {
  test(`membership round trip keeps uint64 ids exact (${numbers ? 'numbers' : 'strings'} on the wire)`, async () => {
    const etcd = await fakeEtcd({ numbers });
    const c = etcd.client();
    try {
      const list = await c.memberList();
      assert.deepEqual(list, [{ id: BIG, name: 'm1', peerURLs: ['https://127.0.0.1:2380'], clientURLs: [etcd.url], isLearner: false }]);

      const added = await c.memberAdd(['https://127.0.0.2:2380']);
      assert.equal(added.member.id, BIG2);
      assert.equal(added.members.length, 2);
      // A retried add of the same peer URL returns the member instead of failing.
      const again = await c.memberAdd(['https://127.0.0.2:2380']);
      assert.equal(again.member.id, BIG2);
      assert.equal(etcd.members.length, 2);

      const rest = await c.memberRemove(BIG2);
      assert.deepEqual(rest.map((m) => m.id), [BIG]);
      const removeBody = etcd.requests.find((r) => r.path === '/v3/cluster/member/remove')!.body;
      assert.equal(removeBody, `{"ID":"${BIG2}"}`);
      await assert.rejects(c.memberRemove(BIG2), (err: unknown) => err instanceof EtcdError && err.status === 404 && /member not found/.test(err.message));
      await assert.rejects(c.memberRemove(Number(BIG2) as unknown as string), TypeError);

      const st = await c.status(etcd.url);
      assert.equal(st.leader, BIG);
      assert.equal(st.memberId, BIG);
      assert.equal(st.clusterId, BIG2);
      assert.equal(st.dbSize, 20480);
      assert.equal(st.version, '3.6.16');
    } finally {
      c.close();
      await etcd.close();
    }
  });
}

test('health, member health and fail-over to the next endpoint', async () => {
  const etcd = await fakeEtcd();
  // The first endpoint refuses connections: calls fail over to the second.
  const c = etcd.client(['https://127.0.0.1:1', etcd.url]);
  try {
    assert.equal((await c.memberList()).length, 1);
    assert.deepEqual(await c.health(etcd.url), { health: true, reason: '' });
    etcd.members.push({ ID: '5', name: '', peerURLs: ['https://127.0.0.3:2380'], clientURLs: [] });
    const mh = await c.memberHealth();
    assert.deepEqual(mh.map((m) => [m.id, m.healthy]), [[BIG, true], ['5', false]]);
    assert.equal(mh[1]!.error, 'not started');
    etcd.setHealthy(false);
    assert.deepEqual(await c.health(etcd.url), { health: false, reason: 'RAFT NO LEADER' });
    await assert.rejects(c.health('https://127.0.0.1:1'), (err: unknown) => err instanceof EtcdError && err.network);
  } finally {
    c.close();
    await etcd.close();
  }
});

test('calls fail over from a learner (which serves no membership calls) to a voting member', async () => {
  const voter = await fakeEtcd();
  const learner = await fakeEtcd({ learner: true, ca: voter.ca });
  const c = voter.client([learner.url, voter.url]);
  try {
    assert.equal((await c.memberList()).length, 1);
    assert.equal(learner.requests.length, 1, 'the learner was asked first');
    const onlyLearner = voter.client([learner.url]);
    await assert.rejects(onlyLearner.memberList(), (err: unknown) => err instanceof EtcdError && err.memberUnavailable && !err.network);
    onlyLearner.close();
    // A semantic error is final: no fail-over hides it.
    await assert.rejects(c.memberRemove('42'), (err: unknown) => err instanceof EtcdError && !err.memberUnavailable);
  } finally {
    c.close();
    await voter.close();
    await learner.close();
  }
});

test('a client certificate from another CA is refused by the TLS handshake', async () => {
  const etcd = await fakeEtcd();
  const c = etcd.stranger();
  try {
    await assert.rejects(c.memberList(), (err: unknown) => err instanceof EtcdError && err.status === 0);
  } finally {
    c.close();
    await etcd.close();
  }
});

test('an aborted call ends at once, closes its connection and does not fail over', async () => {
  const etcd = await fakeEtcd();
  // Accepts connections and never answers (not even the TLS handshake): only the abort ends the call.
  const hole = await blackHole();
  const c = new EtcdClient({ endpoints: [hole.url, etcd.url], ca: etcd.ca.certPem, cert: etcd.ca.certPem, key: etcd.ca.keyPem, timeoutMs: 600_000 });
  try {
    const ctl = new AbortController();
    const call = c.memberList({ signal: ctl.signal });
    await hole.connected();
    ctl.abort(new Error('stopping'));
    await assert.rejects(call, (err: unknown) => err instanceof EtcdError && err.network);
    await hole.allClosed();
    assert.equal(etcd.requests.length, 0, 'no fail-over after an abort');
    await assert.rejects(c.memberHealth([{ id: '1', name: 'a', peerURLs: [], clientURLs: [hole.url], isLearner: false }], { signal: ctl.signal }), /stopping/);
  } finally {
    c.close();
    await hole.close();
    await etcd.close();
  }
});
