// Operations in the CLI: building them, showing one with its steps, and following one until it
// ends (printing each step as it moves).
import { randomInt } from 'node:crypto';
import type { Operation, OperationSpec } from '../api/operations.js';
import { API_VERSION, type MarinaClient } from '../client/index.js';
import { CliError, EXIT } from './errors.js';
import { age, formatTable, humanDuration } from './output.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `<cluster>-<type>-<5 random>`, within 63 characters. */
export function operationName(cluster: string, type: string): string {
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += ALPHABET[randomInt(ALPHABET.length)];
  const kind = type.replace(/[A-Z]/g, (c, i: number) => `${i > 0 ? '-' : ''}${c.toLowerCase()}`);
  return `${cluster.slice(0, 63 - kind.length - 7)}-${kind}-${suffix}`;
}

export function buildOperation(project: string, spec: OperationSpec): Operation {
  return {
    apiVersion: API_VERSION as Operation['apiVersion'],
    kind: 'Operation',
    metadata: { name: operationName(spec.cluster, spec.type), project },
    spec,
  };
}

/** The human view of an operation: what, who, where it stands, and every step. */
export function describeOperation(op: Operation, now = Date.now()): string {
  const st = op.status ?? {};
  const lines = [
    `Operation:     ${op.metadata.name} (project ${op.metadata.project ?? ''})`,
    `Type:          ${op.spec.type} of cluster ${op.spec.cluster}${parameters(op)}`,
    `Phase:         ${st.phase ?? 'Pending'} (${st.progress ?? 0}%)`,
    `Requested by:  ${st.requestedBy ?? '-'} ${age(op.metadata.creationTimestamp, now)} ago`,
  ];
  if (st.approvalRequired) lines.push(`Approval:      ${st.approvedBy ? `approved by ${st.approvedBy.user}` : st.rejectedBy ? `rejected by ${st.rejectedBy.user}` : 'required, waiting for another operator'}`);
  if (st.cancelledBy) lines.push(`Cancelled by:  ${st.cancelledBy.user}`);
  if (st.startTime) lines.push(`Started:       ${st.startTime}${st.completionTime ? `, ended ${st.completionTime} (${humanDuration(Date.parse(st.completionTime) - Date.parse(st.startTime))})` : ''}`);
  if (st.message) lines.push(`Message:       ${st.message}`);
  for (const [k, v] of Object.entries(st.result ?? {})) lines.push(`Result:        ${k}=${v}`);
  const steps = st.steps ?? [];
  if (steps.length > 0) {
    lines.push('', formatTable(['STEP', 'STATE', 'TOOK', 'MESSAGE'], steps.map((s) => [`${s.name}${s.disruptive ? ' *' : ''}`, s.state, took(s.startedAt, s.finishedAt, now), (s.message ?? '').replace(/\s+/g, ' ').slice(0, 100)])).trimEnd());
    if (steps.some((s) => s.disruptive)) lines.push('(* disruptive: no cancel once it started)');
  }
  return `${lines.join('\n')}\n`;
}

function parameters(op: Operation): string {
  if (op.spec.restore) return `, from snapshot ${op.spec.restore.snapshot}${op.spec.restore.allowOtherCluster ? ' (another cluster allowed)' : ''}`;
  if (op.spec.replaceMachine) return `, machine ${op.spec.replaceMachine.machine}`;
  if (op.spec.snapshot?.target) return `, to target ${op.spec.snapshot.target}`;
  if (op.spec.upgrade) return `, to ${op.spec.upgrade.version}`;
  if (op.spec.rotateCertificates?.ca) return ', certificate authorities included';
  return '';
}

function took(start: string | undefined, end: string | undefined, now: number): string {
  if (!start) return '-';
  return humanDuration((end ? Date.parse(end) : now) - Date.parse(start));
}

/** One line per change of the operation's phase or of a step's state or message. */
export class OperationProgress {
  private seen = new Map<string, string>();

  lines(op: Operation): string[] {
    const out: string[] = [];
    const st = op.status ?? {};
    const phase = `${st.phase ?? 'Pending'}`;
    if (this.seen.get('phase') !== phase) {
      this.seen.set('phase', phase);
      out.push(`operation ${op.metadata.name} ${phase}${phase === 'AwaitingApproval' ? ' (another operator must approve it)' : ''}`);
    }
    for (const s of st.steps ?? []) {
      const key = `${s.state}|${s.message ?? ''}`;
      if (this.seen.get(`step/${s.name}`) === key || (s.state === 'Pending' && !s.message)) continue;
      this.seen.set(`step/${s.name}`, key);
      out.push(`  ${s.name}: ${s.state}${s.message ? ` — ${s.message}` : ''}`);
    }
    return out;
  }
}

export function isFinished(op: Operation): boolean {
  return ['Succeeded', 'Failed', 'Cancelled'].includes(op.status?.phase ?? '');
}

/**
 * Watches the operation and prints its progress until it ends; resolves with it when it
 * Succeeded, throws CliError (exit 1) when it failed or was cancelled, exit 7 on timeout.
 */
export async function followOperation(o: {
  client: MarinaClient;
  project: string;
  name: string;
  timeoutMs: number;
  start: number;
  print: (line: string) => void;
  signal?: AbortSignal;
}): Promise<Operation> {
  const progress = new OperationProgress();
  const stamp = () => `[${((Date.now() - o.start) / 1000).toFixed(1)}s]`;
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  o.signal?.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(abort, o.timeoutMs);
  let last: Operation | undefined;
  try {
    const first = await o.client.get<Operation>('Operation', o.name, o.project);
    last = first;
    for (const l of progress.lines(first)) o.print(`${stamp()} ${l}`);
    if (!isFinished(first)) {
      for await (const ev of o.client.watchResumable<Operation>('Operation', { project: o.project, resourceVersion: first.metadata.resourceVersion, signal: ctl.signal })) {
        if (ev.object.metadata.name !== o.name) continue;
        if (ev.type === 'DELETED') throw new CliError(`operation "${o.name}" was deleted`, EXIT.error);
        last = ev.object;
        for (const l of progress.lines(ev.object)) o.print(`${stamp()} ${l}`);
        if (isFinished(ev.object)) break;
      }
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', abort);
  }
  if (!last || !isFinished(last)) {
    if (o.signal?.aborted) throw new CliError(`interrupted; operation "${o.name}" goes on (marina operation describe ${o.name} -w)`, 130);
    throw new CliError(`operation "${o.name}" has not finished after ${humanDuration(o.timeoutMs)}; it goes on (marina operation describe ${o.name} -w)`, EXIT.timeout);
  }
  if (last.status?.phase !== 'Succeeded') throw new CliError(`operation "${o.name}" ${last.status?.phase}: ${last.status?.message ?? ''}`, EXIT.error);
  return last;
}
