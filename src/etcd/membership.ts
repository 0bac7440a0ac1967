// etcd membership, one owner. The rules are pure functions of a member list and its health, so
// each can be tested alone (membership.test.ts):
//
//   a member joins     as a learner (it does not count for the quorum until it caught up and is
//                      promoted), only while no added member is still to start, fewer than
//                      MAX_JOINING learners are catching up and every other member is healthy; it
//                      starts with `--initial-cluster` naming every member (etcd refuses a start
//                      whose list differs from the membership, hence one add at a time). Learners
//                      do not vote, so several catching up together cannot cost the quorum: a new
//                      cluster's members join side by side (etcd needs `--max-learners`, which
//                      bootstrap sets to MAX_JOINING, and refuses adds for 5 s after a promotion
//                      that the quorum depends on, so promotions wait for the other joiners)
//   a member leaves    only when another member remains and the remaining ones hold a healthy quorum
//   the cluster grows  (a new member is planned) when none is joining and the quorum is healthy
//   kube-apiserver     starts once the quorum is healthy, told about every member, also those to come
//
// EtcdMembership applies them to a live cluster through an EtcdApi: the one entry point for the
// Machine gate (join), promotion and leaving, the NodePool's scale decisions, the Cluster's
// EtcdReady condition and the health checker's member checks, and for what is to come (restore,
// upgrade, certificate rotation).
import { EtcdError, type EtcdApi, type EtcdCallOptions, type EtcdMember, type MemberHealth } from './client.js';

/** Why a membership change waits (a condition reason). */
export type Refusal =
  | 'EtcdMemberJoining'
  | 'EtcdUnhealthy'
  | 'EtcdQuorumUnhealthy'
  | 'EtcdQuorumAtRisk'
  | 'LastEtcdMember'
  | 'WaitingForEtcdQuorum'
  | 'WaitingForEtcdMembers';

export type Decision = { ok: true } | { ok: false; reason: Refusal; message: string };

const allow: Decision = { ok: true };
const refuse = (reason: Refusal, message: string): Decision => ({ ok: false, reason, message });

/** Members needed for a quorum among `n` voting members. */
export function quorumSize(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Whether enough voting members are healthy for a quorum. Learners do not vote and are ignored;
 * an empty list has no quorum.
 */
export function quorumHealthy(members: readonly { healthy: boolean; isLearner?: boolean }[]): boolean {
  const voting = members.filter((m) => !m.isLearner);
  if (voting.length === 0) return false;
  return voting.filter((m) => m.healthy).length >= quorumSize(voting.length);
}

/** Members joining at once at most (and etcd's `--max-learners`). */
export const MAX_JOINING = 2;

/** Added but not a full member yet: a learner, or a member that has not started (no name, no client URL). */
export function isJoining(m: EtcdMember): boolean {
  return m.isLearner || !m.name || m.clientURLs.length === 0;
}

export function findMember<M extends EtcdMember>(members: readonly M[], peerURL: string): M | undefined {
  return members.find((m) => m.peerURLs.includes(peerURL));
}

const describe = (m: EtcdMember): string => m.name || m.peerURLs.join(',');

function joining(members: readonly EtcdMember[]): Decision {
  const j = members.find(isJoining);
  return j ? refuse('EtcdMemberJoining', `etcd member ${describe(j)} is still joining`) : allow;
}

/** Room for one more joiner: no added member still to start, fewer than MAX_JOINING learners. */
function tooManyJoining(members: readonly EtcdMember[]): Decision {
  const unstarted = members.find((m) => !m.name || m.clientURLs.length === 0);
  if (unstarted) return refuse('EtcdMemberJoining', `etcd member ${describe(unstarted)} was added and has not started yet`);
  const learners = members.filter((m) => m.isLearner);
  return learners.length >= MAX_JOINING ? refuse('EtcdMemberJoining', `etcd members ${learners.map(describe).join(', ')} are still joining`) : allow;
}

/** May a new member be added (`member add`) now? Room for a joiner (see tooManyJoining), every other member healthy. */
export function mayAddMember(health: readonly MemberHealth[]): Decision {
  const j = tooManyJoining(health);
  if (!j.ok) return j;
  const sick = health.filter((m) => !isJoining(m) && !m.healthy);
  if (sick.length > 0) return refuse('EtcdUnhealthy', `etcd member ${sick.map(describe).join(', ')} unhealthy: ${sick[0]!.error ?? ''}`);
  return allow;
}

/** May one more member be planned (its machine created)? Nobody joining and the quorum healthy. */
export function mayGrow(health: readonly MemberHealth[]): Decision {
  const j = joining(health);
  if (!j.ok) return j;
  if (!quorumHealthy(health)) return refuse('EtcdQuorumUnhealthy', `${health.filter((m) => m.healthy).length}/${health.length} etcd members healthy`);
  return allow;
}

/** May the member at `peerURL` leave? When another remains and the rest hold a healthy quorum. */
export function mayRemoveMember(health: readonly MemberHealth[], peerURL: string): Decision {
  const rest = health.filter((m) => !m.peerURLs.includes(peerURL));
  if (rest.length === 0) return refuse('LastEtcdMember', 'the last etcd member is not removed');
  if (!quorumHealthy(rest)) {
    return refuse('EtcdQuorumAtRisk', `only ${rest.filter((m) => m.healthy).length}/${rest.length} remaining etcd members are healthy`);
  }
  return allow;
}

/**
 * What kube-apiserver is told about (`--etcd-servers`), once the quorum is healthy: the voting,
 * healthy, started members, and the members still to come (`planned`: client URLs of etcd machines
 * that are joining or about to). kube-apiserver's etcd client fails over among its endpoints, so it
 * starts as soon as a quorum serves and uses the others once they do, instead of waiting for
 * every member to have joined.
 */
export function apiserverMembers(health: readonly MemberHealth[], planned: readonly string[] = []): Decision & { clientURLs: string[] } {
  if (!quorumHealthy(health)) {
    return { ...refuse('WaitingForEtcdQuorum', `${health.filter((m) => m.healthy).length}/${health.length} etcd members healthy`), clientURLs: [] };
  }
  const up = health.filter((m) => m.healthy && !m.isLearner && m.clientURLs.length > 0).flatMap((m) => m.clientURLs.slice(0, 1));
  return { ok: true, clientURLs: [...new Set([...up, ...planned])] };
}

/** One entry of `--initial-cluster`. */
export interface InitialMember {
  name: string;
  peerURL: string;
}

/** How a member starts: founding a new cluster alone, or joining the existing one. */
export interface JoinPlan {
  /** Every member the new member should know, itself included (`--initial-cluster`). */
  initialCluster: InitialMember[];
  state: 'new' | 'existing';
  /** Client URLs of the members (kube-apiserver's `--etcd-servers`). */
  clientURLs: string[];
}

export interface Joiner {
  /** The etcd member name (the machine's name). */
  name: string;
  peerURL: string;
  clientURL: string;
}

/** The first member of a fresh cluster. */
export function foundingPlan(self: Joiner): JoinPlan {
  return { initialCluster: [{ name: self.name, peerURL: self.peerURL }], state: 'new', clientURLs: [self.clientURL] };
}

/**
 * The initial cluster a member that was added starts with. A member that has not started yet has
 * no name in etcd: `names` (peer URL → member name, from Marina's machines) fills it in; one that
 * is still nameless makes the joiner wait.
 */
export function joinPlan(members: readonly EtcdMember[], self: Joiner, names: ReadonlyMap<string, string>): (JoinPlan & { ok: true }) | (Decision & { ok: false }) {
  const initialCluster = members.map((m) => ({
    name: m.peerURLs.includes(self.peerURL) ? self.name : m.name || names.get(m.peerURLs[0] ?? '') || '',
    peerURL: m.peerURLs[0] ?? '',
  }));
  const anonymous = initialCluster.find((m) => !m.name || !m.peerURL);
  if (anonymous) return { ok: false, reason: 'EtcdMemberJoining', message: `etcd member ${anonymous.peerURL} has no name yet` };
  return { ok: true, initialCluster, state: 'existing', clientURLs: members.flatMap((m) => m.clientURLs.slice(0, 1)) };
}

/** Sum of member health for a cluster's EtcdReady condition. */
export function quorumSummary(health: readonly MemberHealth[]): { quorum: boolean; allHealthy: boolean; message: string } {
  const healthy = health.filter((m) => m.healthy).length;
  const sick = health.filter((m) => !m.healthy).map((m) => `; ${m.name || m.peerURLs[0]}: ${m.error ?? 'unhealthy'}`);
  return { quorum: quorumHealthy(health), allHealthy: healthy === health.length, message: `${healthy}/${health.length} members healthy${sick.join('')}` };
}

/** Condition reason for a failed etcd call: no answer at all, or an answer that said no. */
export function failureReason(err: unknown): 'EtcdUnreachable' | 'EtcdRefused' {
  return err instanceof EtcdError && !err.network ? 'EtcdRefused' : 'EtcdUnreachable';
}

export type JoinResult = (JoinPlan & { ok: true; added: boolean }) | (Decision & { ok: false });
export type PromoteResult = { member: 'absent' } | { member: 'voting'; id: string; promoted: boolean } | { member: 'learner'; id: string };
export type LeaveResult = { member: 'absent' } | { member: 'removed'; id: string } | (Decision & { ok: false; member: 'present' });

/** The membership rules applied to one cluster's etcd. Every call carries the caller's signal. */
export class EtcdMembership {
  constructor(
    private readonly api: EtcdApi,
    private readonly opts: EtcdCallOptions = {},
  ) {}

  /** /health of every member. */
  health(): Promise<MemberHealth[]> {
    return this.api.memberHealth(undefined, this.opts);
  }

  /**
   * Adds `self` as a learner unless it is a member already (added before a restart: a start is
   * repeated after a crash, the member must not be added twice), and returns how it starts.
   */
  async join(self: Joiner, names: ReadonlyMap<string, string>): Promise<JoinResult> {
    let members = await this.api.memberList(this.opts);
    let added = false;
    if (!findMember(members, self.peerURL)) {
      const room = tooManyJoining(members);
      if (!room.ok) return room;
      const may = mayAddMember(await this.api.memberHealth(members, this.opts));
      if (!may.ok) return may;
      members = (await this.api.memberAdd([self.peerURL], { ...this.opts, isLearner: true })).members;
      added = true;
    }
    const plan = joinPlan(members, self, names);
    return plan.ok ? { ...plan, added } : plan;
  }

  /**
   * Makes the member at `peerURL` a voting member if it is a learner (it must have caught up: etcd
   * refuses otherwise). `hold`: leave a learner a learner for now (others are about to join).
   */
  async promote(peerURL: string, opts: { hold?: boolean } = {}): Promise<PromoteResult> {
    const self = findMember(await this.api.memberList(this.opts), peerURL);
    if (!self) return { member: 'absent' };
    if (self.isLearner && opts.hold) return { member: 'learner', id: self.id };
    if (self.isLearner) await this.api.memberPromote(self.id, this.opts);
    return { member: 'voting', id: self.id, promoted: self.isLearner };
  }

  /** Removes the member at `peerURL` if the rest keeps a healthy quorum. */
  async leave(peerURL: string): Promise<LeaveResult> {
    const members = await this.api.memberList(this.opts);
    const self = findMember(members, peerURL);
    if (!self) return { member: 'absent' };
    const rest = members.filter((m) => m.id !== self.id);
    const may = mayRemoveMember(rest.length > 0 ? await this.api.memberHealth(rest, this.opts) : [], peerURL);
    if (!may.ok) return { ...may, member: 'present' };
    await this.api.memberRemove(self.id, this.opts);
    return { member: 'removed', id: self.id };
  }

  /** May one more member be planned now? */
  async mayGrow(): Promise<Decision> {
    return mayGrow(await this.health());
  }

  /** May the member at `peerURL` leave now? */
  async mayRemove(peerURL: string): Promise<Decision> {
    return mayRemoveMember(await this.health(), peerURL);
  }

  /** Whether kube-apiserver may start now, and with which `--etcd-servers` (`planned`: members to come). */
  async apiserverMembers(planned: readonly string[] = []): Promise<Decision & { clientURLs: string[] }> {
    return apiserverMembers(await this.health(), planned);
  }
}
