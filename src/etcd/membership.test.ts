// The membership rules, table by table, and EtcdMembership against an in-memory EtcdApi that
// records what it was asked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdError, type EtcdApi, type EtcdMember, type MemberHealth } from './client.js';
import {
  apiserverMembers,
  EtcdMembership,
  failureReason,
  foundingPlan,
  isJoining,
  MAX_JOINING,
  joinPlan,
  mayAddMember,
  mayGrow,
  mayRemoveMember,
  quorumHealthy,
  quorumSize,
  quorumSummary,
  type Decision,
} from './membership.js';

const peer = (n: string) => `https://10.0.0.${n}:2380`;
const client = (n: string) => `https://10.0.0.${n}:2379`;

/** `a`: a healthy voting member named a; flags: `!` unhealthy, `~` learner, `?` not started. */
function member(spec: string): MemberHealth {
  const n = spec.replace(/[!~?]/g, '');
  const started = !spec.includes('?');
  return {
    id: String(n.charCodeAt(0)),
    name: started ? n : '',
    peerURLs: [peer(n)],
    clientURLs: started ? [client(n)] : [],
    isLearner: spec.includes('~'),
    healthy: started && !spec.includes('!'),
    ...(spec.includes('!') || !started ? { error: started ? 'connection refused' : 'not started' } : {}),
  };
}
const members = (specs: string) => (specs ? specs.split(' ').map(member) : []);
const outcome = (d: Decision) => (d.ok ? 'ok' : d.reason);

test('quorum arithmetic', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map(quorumSize), [1, 2, 2, 3, 3]);
  const table: [string, boolean][] = [
    ['', false],
    ['a', true],
    ['a b!', false],
    ['a b c!', true],
    ['a b! c!', false],
    ['a b~!', true], // learners do not vote
    ['a~', false], // nobody votes
  ];
  for (const [specs, want] of table) assert.equal(quorumHealthy(members(specs)), want, specs);
});

test('a member is still joining while it is a learner or has not started', () => {
  const table: [string, boolean][] = [['a', false], ['a~', true], ['a?', true], ['a!', false]];
  for (const [spec, want] of table) assert.equal(isJoining(member(spec)), want, spec);
});

test('mayAddMember: no added member still to start, fewer than MAX_JOINING learners, every other member healthy', () => {
  assert.equal(MAX_JOINING, 2);
  const table: [string, string][] = [
    ['a', 'ok'],
    ['a b c', 'ok'],
    ['a b~', 'ok'], // one learner catching up: a second may join beside it
    ['a b?', 'EtcdMemberJoining'], // added, not started: its --initial-cluster would no longer match
    ['a b~ c?', 'EtcdMemberJoining'],
    ['a b~ c~', 'EtcdMemberJoining'],
    ['a b!', 'EtcdUnhealthy'],
    ['a b c!', 'EtcdUnhealthy'], // a quorum is not enough for a join: the new member would need a vote
  ];
  for (const [specs, want] of table) assert.equal(outcome(mayAddMember(members(specs))), want, specs);
  const d = mayAddMember(members('a b!'));
  assert.ok(!d.ok && d.message.includes('b') && d.message.includes('connection refused'));
});

test('mayGrow: nobody joining and a healthy quorum', () => {
  const table: [string, string][] = [
    ['a', 'ok'],
    ['a b c!', 'ok'],
    ['a b! c!', 'EtcdQuorumUnhealthy'],
    ['a b~', 'EtcdMemberJoining'],
    ['a b?', 'EtcdMemberJoining'],
    ['', 'EtcdQuorumUnhealthy'],
  ];
  for (const [specs, want] of table) assert.equal(outcome(mayGrow(members(specs))), want, specs);
});

test('mayRemoveMember: another member remains and the rest holds a healthy quorum', () => {
  const table: [string, string, string][] = [
    ['a', 'a', 'LastEtcdMember'],
    ['a b', 'b', 'ok'],
    ['a b!', 'b', 'ok'], // removing the broken one of two leaves a healthy single member
    ['a! b', 'b', 'EtcdQuorumAtRisk'],
    ['a b c', 'c', 'ok'],
    ['a b! c', 'c', 'EtcdQuorumAtRisk'], // 1 of 2 remaining is no quorum
    ['a b c d!', 'a', 'ok'],
    ['a b c~', 'c', 'ok'], // a joining member does not hold back a removal
    ['a b', 'x', 'ok'], // not a member: nothing to lose
  ];
  for (const [specs, leaving, want] of table) assert.equal(outcome(mayRemoveMember(members(specs), peer(leaving))), want, `${specs} without ${leaving}`);
});

test('apiserverMembers: a healthy quorum, then every member kube-apiserver should know, those to come included', () => {
  const table: [string, string[], string, string[]][] = [
    ['a', [], 'ok', [client('a')]],
    ['a b c', [], 'ok', [client('a'), client('b'), client('c')]],
    ['a b c!', [], 'ok', [client('a'), client('b')]], // a quorum serves; the unhealthy one is not named...
    ['a b c!', [client('c')], 'ok', [client('a'), client('b'), client('c')]], // ...unless it is one of ours to come
    ['a', [client('a'), client('b'), client('c')], 'ok', [client('a'), client('b'), client('c')]], // the founder alone: start, knowing all
    ['a b~', [], 'ok', [client('a')]], // a learner serves no clients yet
    ['a! b!', [client('a')], 'WaitingForEtcdQuorum', []],
  ];
  for (const [specs, planned, reason, urls] of table) {
    const r = apiserverMembers(members(specs), planned);
    assert.equal(outcome(r), reason, specs);
    assert.deepEqual(r.clientURLs, urls, specs);
  }
});

test('joinPlan names every member; a nameless one that is not a machine of ours makes the joiner wait', () => {
  const self = { name: 'm-c', peerURL: peer('c'), clientURL: client('c') };
  const list: EtcdMember[] = [member('a'), { ...member('b?'), name: '' }, { ...member('c?'), name: '' }];
  const plan = joinPlan(list, self, new Map([[peer('b'), 'm-b']]));
  assert.ok(plan.ok);
  assert.deepEqual(plan.initialCluster, [
    { name: 'a', peerURL: peer('a') },
    { name: 'm-b', peerURL: peer('b') },
    { name: 'm-c', peerURL: peer('c') },
  ]);
  assert.equal(plan.state, 'existing');
  assert.deepEqual(plan.clientURLs, [client('a')]);
  const waiting = joinPlan(list, self, new Map());
  assert.ok(!waiting.ok && waiting.reason === 'EtcdMemberJoining' && waiting.message.includes(peer('b')));
  assert.deepEqual(foundingPlan(self), { initialCluster: [{ name: 'm-c', peerURL: peer('c') }], state: 'new', clientURLs: [client('c')] });
});

test('quorumSummary and failureReason', () => {
  assert.deepEqual(quorumSummary(members('a b')), { quorum: true, allHealthy: true, message: '2/2 members healthy' });
  assert.deepEqual(quorumSummary(members('a b c!')), { quorum: true, allHealthy: false, message: '2/3 members healthy; c: connection refused' });
  assert.equal(quorumSummary(members('a! b!')).quorum, false);
  assert.equal(failureReason(new EtcdError('connect ECONNREFUSED', 0)), 'EtcdUnreachable');
  assert.equal(failureReason(new EtcdError('etcdserver: too many learner members', 400, 9)), 'EtcdRefused');
  assert.equal(failureReason(new Error('x')), 'EtcdUnreachable');
});

/** An EtcdApi over a member list: records the calls and the signals they carried. */
function fakeApi(list: MemberHealth[]) {
  const calls: string[] = [];
  const signals = new Set<AbortSignal | undefined>();
  let nextId = 100;
  const api: EtcdApi = {
    memberList: async (o) => (signals.add(o?.signal), calls.push('list'), list.map(({ healthy: _h, error: _e, ...m }) => m)),
    memberHealth: async (ms, o) => {
      signals.add(o?.signal);
      calls.push(`health ${ms ? ms.length : 'all'}`);
      return (ms ?? list).map((m) => list.find((x) => x.id === m.id)!);
    },
    memberAdd: async (urls, o) => {
      signals.add(o?.signal);
      calls.push(`add${o?.isLearner ? ' learner' : ''} ${urls.join(',')}`);
      list.push({ id: String(nextId++), name: '', peerURLs: urls, clientURLs: [], isLearner: o?.isLearner === true, healthy: false });
      return { member: list.at(-1)!, members: list };
    },
    memberRemove: async (id, o) => (signals.add(o?.signal), calls.push(`remove ${id}`), list.splice(list.findIndex((m) => m.id === id), 1), list),
    memberPromote: async (id, o) => (signals.add(o?.signal), calls.push(`promote ${id}`), (list.find((m) => m.id === id)!.isLearner = false), list),
    metrics: async () => '',
  };
  /** The added member at `peerURL` starts: it gets its name and client URL, and answers /health. */
  const start = (peerURL: string) => {
    const m = list.find((x) => x.peerURLs.includes(peerURL))!;
    Object.assign(m, { name: peerURL.replace(/^https:\/\/10\.0\.0\.|:2380$/g, ''), clientURLs: [peerURL.replace(':2380', ':2379')], healthy: true });
  };
  return { api, calls, signals, start };
}

test('EtcdMembership.join adds a learner once, lets MAX_JOINING join together, and plans the start', async () => {
  const signal = new AbortController().signal;
  const f = fakeApi(members('a b'));
  const m = new EtcdMembership(f.api, { signal });
  const self = { name: 'c', peerURL: peer('c'), clientURL: client('c') };
  const first = await m.join(self, new Map());
  assert.ok(first.ok && first.added);
  assert.deepEqual(first.initialCluster.map((x) => x.name), ['a', 'b', 'c']);
  const again = await m.join(self, new Map());
  assert.ok(again.ok && !again.added, 'a repeated start finds its member by peer URL');
  const early = await m.join({ name: 'd', peerURL: peer('d'), clientURL: client('d') }, new Map([[peer('c'), 'c']]));
  assert.ok(!early.ok && early.reason === 'EtcdMemberJoining', 'not while c has not started');
  f.start(peer('c'));
  const second = await m.join({ name: 'd', peerURL: peer('d'), clientURL: client('d') }, new Map());
  assert.ok(second.ok && second.added, 'a second member joins beside the first once it started');
  assert.deepEqual(second.initialCluster.map((x) => x.name), ['a', 'b', 'c', 'd']);
  f.start(peer('d'));
  const third = await m.join({ name: 'e', peerURL: peer('e'), clientURL: client('e') }, new Map());
  assert.ok(!third.ok && third.reason === 'EtcdMemberJoining', 'not a third learner');
  assert.deepEqual(f.calls, ['list', 'health 2', `add learner ${peer('c')}`, 'list', 'list', 'list', 'health 3', `add learner ${peer('d')}`, 'list']);
  assert.deepEqual([...f.signals], [signal], 'every call carries the caller signal');
});

test('EtcdMembership.join refuses while a member is unhealthy', async () => {
  const f = fakeApi(members('a b!'));
  const r = await new EtcdMembership(f.api).join({ name: 'c', peerURL: peer('c'), clientURL: client('c') }, new Map());
  assert.ok(!r.ok && r.reason === 'EtcdUnhealthy');
  assert.ok(!f.calls.some((c) => c.startsWith('add')));
});

test('EtcdMembership.promote promotes a learner once and reports a missing member', async () => {
  const f = fakeApi(members('a b~'));
  const m = new EtcdMembership(f.api);
  assert.deepEqual(await m.promote(peer('b')), { member: 'voting', id: member('b').id, promoted: true });
  assert.deepEqual(await m.promote(peer('b')), { member: 'voting', id: member('b').id, promoted: false });
  assert.deepEqual(await m.promote(peer('x')), { member: 'absent' });
  assert.deepEqual(f.calls.filter((c) => c.startsWith('promote')), [`promote ${member('b').id}`]);
});

test('EtcdMembership.leave removes a member only while the rest keeps a healthy quorum', async () => {
  const f = fakeApi(members('a b! c'));
  const m = new EtcdMembership(f.api);
  const held = await m.leave(peer('c'));
  assert.ok('ok' in held && held.reason === 'EtcdQuorumAtRisk');
  assert.deepEqual(await m.leave(peer('b')), { member: 'removed', id: member('b').id });
  assert.deepEqual(await m.leave(peer('b')), { member: 'absent' });
  const last = await new EtcdMembership(fakeApi(members('a')).api).leave(peer('a'));
  assert.ok('ok' in last && last.reason === 'LastEtcdMember');
});
