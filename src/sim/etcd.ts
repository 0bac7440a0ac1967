// A simulated cluster's etcd, as Marina's etcd client sees it (the EtcdApi of src/etcd/client.ts):
// the membership rules of real etcd (members added before they start, one learner at a time,
// promotion only of a learner in sync with the leader, reconfiguration only with a quorum of
// started members), failover across the endpoints it is given, learners that serve no membership
// calls, and what a partition or a dead member does to a call.
import { EtcdError, type EtcdApi, type EtcdCallOptions, type EtcdMember, type MemberHealth } from '../etcd/client.js';
import { noAnswer, roundTrip } from './errors.js';
import { etcdUpSince, quorumOf, type MemberState } from './model.js';
import type { SimCluster, SimWorld } from './world.js';

export interface SimCallOptions {
  /** How long a call waits for an answer that never comes (the real client's timeout). */
  timeoutMs: number;
}

const CODE_FAILED_PRECONDITION = 9;
const CODE_NOT_FOUND = 5;
const CODE_UNAVAILABLE = 14;

export function simEtcd(world: SimWorld, c: SimCluster, endpoints: string[], opts: SimCallOptions): EtcdApi {
  const member = (x: MemberState): EtcdMember => ({ id: x.id, name: x.name, peerURLs: [x.peerURL], clientURLs: x.clientURL ? [x.clientURL] : [], isLearner: x.isLearner });
  const members = () => c.state.members.map(member);
  const voting = () => c.state.members.filter((x) => !x.isLearner);
  /** --max-learners as the leader (the first running voting member) was started with. */
  const maxLearners = () => {
    const leader = voting().find((x) => world.memberRunning(c, x));
    return (leader && world.memberMachine(c, leader)?.spec?.etcd?.maxLearners) ?? 1;
  };

  /** Like EtcdClient.call: the first endpoint whose member serves cluster-wide calls answers. */
  async function serve(signal: AbortSignal | undefined): Promise<void> {
    if (c.state.partitionedAt !== undefined) return noAnswer(opts.timeoutMs, signal);
    await roundTrip(world.timing.callLatencyMs);
    signal?.throwIfAborted();
    world.settle(c);
    let last: EtcdError | undefined;
    for (const url of endpoints) {
      const x = c.state.members.find((y) => y.clientURL === url || world.memberMachine(c, y)?.spec?.etcd?.clientURL === url);
      if (!x || !world.memberRunning(c, x)) {
        last = new EtcdError(`etcd ${url}: connect ECONNREFUSED`, 0);
        continue;
      }
      if (x.isLearner) {
        last = new EtcdError('etcdserver: rpc not supported for learner', 503, CODE_UNAVAILABLE);
        continue;
      }
      if (!world.quorum(c)) throw new EtcdError('etcdserver: request timed out', 503, CODE_UNAVAILABLE);
      return;
    }
    throw last ?? new EtcdError('no etcd endpoints', 0);
  }

  /** etcd's strict reconfiguration check: the change must leave a quorum of started voting members. */
  function reconfigurable(after: MemberState[]): boolean {
    const v = after.filter((x) => !x.isLearner);
    return v.filter((x) => world.memberRunning(c, x)).length >= quorumOf(v.length);
  }

  const api: EtcdApi = {
    async memberList(o: EtcdCallOptions = {}) {
      await serve(o.signal);
      return members();
    },

    async memberAdd(peerURLs: string[], o: EtcdCallOptions & { isLearner?: boolean } = {}) {
      await serve(o.signal);
      const isLearner = o.isLearner === true;
      const peerURL = peerURLs[0];
      if (!peerURL) throw new EtcdError('etcdserver: member peer urls are empty', 400, 3);
      if (c.state.members.some((x) => peerURLs.includes(x.peerURL))) throw new EtcdError('etcdserver: Peer URLs already exists', 400, CODE_FAILED_PRECONDITION);
      if (isLearner && c.state.members.filter((x) => x.isLearner).length >= maxLearners()) {
        throw new EtcdError('etcdserver: too many learner members in cluster', 400, CODE_FAILED_PRECONDITION);
      }
      const added: MemberState = { id: world.newMemberId(), peerURL, name: '', clientURL: '', isLearner };
      if (!isLearner && !reconfigurable([...c.state.members, added])) {
        throw new EtcdError('etcdserver: re-configuration failed due to not enough started members', 400, CODE_FAILED_PRECONDITION);
      }
      // etcd's isConnectedToQuorumAfterAddingNewMemberSince: with the newcomer counted as down, the
      // leader must have been connected to a quorum for HealthInterval (a lone member may add).
      const voting = c.state.members.filter((x) => !x.isLearner);
      const since = world.now() - world.timing.etcdHealthIntervalMs;
      const connected = voting.filter((x) => {
        const m = world.memberMachine(c, x);
        return !!m && world.memberRunning(c, x) && etcdUpSince(m, world.timing) <= since;
      }).length;
      if (voting.length > 1 && connected < quorumOf(voting.length + 1)) throw new EtcdError('etcdserver: unhealthy cluster', 503, CODE_UNAVAILABLE);
      c.state.members.push(added);
      world.saveCluster(c);
      return { member: member(added), members: members() };
    },

    async memberRemove(id: string, o: EtcdCallOptions = {}) {
      await serve(o.signal);
      const i = c.state.members.findIndex((x) => x.id === id);
      if (i < 0) throw new EtcdError('etcdserver: member not found', 404, CODE_NOT_FOUND);
      const rest = c.state.members.filter((x) => x.id !== id);
      if (!c.state.members[i]!.isLearner && !reconfigurable(rest)) {
        throw new EtcdError('etcdserver: re-configuration failed due to not enough started members', 400, CODE_FAILED_PRECONDITION);
      }
      c.state.members = rest;
      world.saveCluster(c);
      return members();
    },

    async memberPromote(id: string, o: EtcdCallOptions = {}) {
      await serve(o.signal);
      const x = c.state.members.find((y) => y.id === id);
      if (!x) throw new EtcdError('etcdserver: member not found', 404, CODE_NOT_FOUND);
      if (!x.isLearner) throw new EtcdError('etcdserver: can only promote a learner member', 400, CODE_FAILED_PRECONDITION);
      if (!world.learnerInSync(c, x)) throw new EtcdError('etcdserver: can only promote a learner member which is in sync with leader', 400, CODE_FAILED_PRECONDITION);
      x.isLearner = false;
      world.saveCluster(c);
      return members();
    },

    async memberHealth(list?: EtcdMember[], o: EtcdCallOptions = {}): Promise<MemberHealth[]> {
      const asked = list ?? (await api.memberList(o));
      if (c.state.partitionedAt !== undefined) {
        // Every /health times out, in parallel, as with the real client.
        await noAnswer(opts.timeoutMs, o.signal).catch(() => o.signal?.throwIfAborted());
        return asked.map((m) => ({ ...m, healthy: false, error: `no answer within ${opts.timeoutMs} ms` }));
      }
      await roundTrip(world.timing.callLatencyMs);
      o.signal?.throwIfAborted();
      world.settle(c);
      const quorum = world.quorum(c);
      return asked.map((m): MemberHealth => {
        const url = m.clientURLs[0];
        if (!url) return { ...m, healthy: false, error: 'not started' };
        const x = c.state.members.find((y) => y.id === m.id);
        if (!x || !world.memberRunning(c, x)) return { ...m, healthy: false, error: `etcd ${url}: connect ECONNREFUSED` };
        return quorum ? { ...m, healthy: true } : { ...m, healthy: false, error: 'RAFT NO LEADER' };
      });
    },

    async metrics(endpoint: string, o: EtcdCallOptions = {}) {
      if (c.state.partitionedAt !== undefined) return noAnswer(opts.timeoutMs, o.signal);
      await roundTrip(world.timing.callLatencyMs);
      const x = c.state.members.find((y) => y.clientURL === endpoint);
      if (!x || !world.memberRunning(c, x)) throw new EtcdError(`etcd ${endpoint}/metrics: connect ECONNREFUSED`, 0);
      const leader = voting().find((y) => world.memberRunning(c, y));
      const quorum = world.quorum(c);
      return [
        '# TYPE etcd_server_has_leader gauge',
        `etcd_server_has_leader ${quorum ? 1 : 0}`,
        '# TYPE etcd_server_is_leader gauge',
        `etcd_server_is_leader ${quorum && leader === x ? 1 : 0}`,
        '# TYPE etcd_server_leader_changes_seen_total counter',
        'etcd_server_leader_changes_seen_total 1',
        '# TYPE etcd_mvcc_db_total_size_in_bytes gauge',
        'etcd_mvcc_db_total_size_in_bytes 3276800',
        '# TYPE etcd_disk_wal_fsync_duration_seconds histogram',
        'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 900',
        'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.008"} 1000',
        'etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 1000',
        'etcd_disk_wal_fsync_duration_seconds_sum 0.6',
        'etcd_disk_wal_fsync_duration_seconds_count 1000',
        '',
      ].join('\n');
    },
  };
  return api;
}
