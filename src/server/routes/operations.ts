// Actions on an Operation, as subresources: approve, reject (checkpoints; four-eyes: never by the
// requester) and cancel (only before the operation's first disruptive step). Each writes the
// operation's status with the resourceVersion it judged, so it cannot overwrite a step the
// controller started meanwhile (a conflict judges again), and each is audited.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { setCondition } from '../../api/conditions.js';
import { ApiError, isApiError } from '../../api/errors.js';
import type { Operation, OperationStatus } from '../../api/operations.js';
import { schemaErrors } from '../../api/validate.js';
import { OperationCondition } from '../../api/wellknown.js';
import { cancelVerdict, decisionVerdict } from '../../operations/rules.js';
import { typed } from '../../store/typed.js';
import type { AuditLog, Store } from '../../store/types.js';
import { principal } from '../auth.js';
import type { Verb } from '../authz.js';
import { OperationActionRequest, ProjectNameParams, errorResponses } from '../schemas.js';

type ActionBody = Static<typeof OperationActionRequest>;

interface Params {
  project: string;
  name: string;
}

type Action = 'approve' | 'reject' | 'cancel';

const SUMMARY: Record<Action, string> = {
  approve: 'Approve an operation that waits at its checkpoint (operator role; not its requester)',
  reject: 'Reject an operation that waits at its checkpoint: it ends Cancelled (operator role; not its requester)',
  cancel: 'Cancel an operation before its first disruptive step (409 with the reason after it)',
};

export const operationRoutes: FastifyPluginAsync<{ store: Store; audit: AuditLog }> = async (app, { store, audit }) => {
  const ops = typed(store, 'Operation');

  const body = (req: FastifyRequest): ActionBody => {
    const b = req.body;
    if (b === undefined || b === '') return {};
    if (typeof b !== 'object' || Array.isArray(b)) throw ApiError.badRequest('request body must be a JSON object like {"comment": "..."} or empty');
    const causes = schemaErrors(OperationActionRequest, b);
    if (causes.length > 0) throw ApiError.invalid(causes);
    return b as ActionBody;
  };

  /** The status after `action` by `user`, or the refusal. */
  const decide = (op: Operation, action: Action, user: string, comment: string | undefined): OperationStatus => {
    const st = op.status ?? {};
    const decision = { user, at: new Date().toISOString(), ...(comment ? { comment } : {}) };
    if (action === 'cancel') {
      const v = cancelVerdict(op);
      if (!v.ok) throw new ApiError(409, 'Conflict', v.reason);
      return st.cancelledBy ? st : { ...st, cancelledBy: decision, message: `cancel requested by ${user}` };
    }
    const v = decisionVerdict(op, user, action);
    if (!v.ok) throw st.requestedBy === user && v.reason.startsWith('four-eyes') ? ApiError.forbidden(v.reason) : new ApiError(409, 'Conflict', v.reason);
    if (action === 'approve') {
      return {
        ...st,
        approvedBy: decision,
        message: `approved by ${user}`,
        conditions: setCondition(st.conditions, { type: OperationCondition.Approved, status: 'True', reason: 'Approved', message: `approved by ${user}` }, op.metadata.generation),
      };
    }
    return {
      ...st,
      rejectedBy: decision,
      message: `rejected by ${user}`,
      conditions: setCondition(st.conditions, { type: OperationCondition.Approved, status: 'False', reason: 'Rejected', message: `rejected by ${user}${comment ? `: ${comment}` : ''}` }, op.metadata.generation),
    };
  };

  for (const action of ['approve', 'reject', 'cancel'] as const) {
    const verb: Verb = action === 'cancel' ? 'cancel' : 'approve';
    app.post<{ Params: Params }>(`/projects/:project/operations/:name/${action}`, {
      schema: {
        operationId: `${action}Operation`,
        summary: SUMMARY[action],
        tags: ['Operation'],
        params: ProjectNameParams,
        body: { content: { 'application/json': { schema: Type.Ref(OperationActionRequest.$id!) } } },
        response: {
          200: Type.Ref('Operation', { description: 'the operation with the decision recorded' }),
          ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
        },
      },
      config: { access: (req) => ({ verb, kind: 'Operation', project: (req.params as Params).project, name: (req.params as Params).name }) },
      handler: async (req) => {
        const { project, name } = req.params;
        const p = principal(req);
        const { comment } = body(req);
        const record = (code: number, op?: Operation) =>
          audit.append({ time: new Date().toISOString(), user: p.user, verb: action, kind: 'Operation', project, name, generation: op?.metadata.generation, resourceVersion: op?.metadata.resourceVersion, code });
        for (let attempt = 0; ; attempt++) {
          const op = await ops.get(project, name);
          if (!op) throw ApiError.notFound('Operation', name);
          let status: OperationStatus;
          try {
            status = decide(op, action, p.user, comment);
          } catch (err) {
            // A refused decision (four-eyes, too late to cancel) is on the record too.
            if (isApiError(err)) await record(err.code, op);
            throw err;
          }
          try {
            const updated = status === op.status ? op : await ops.updateStatus({ ...op, status });
            await record(200, updated);
            return updated;
          } catch (err) {
            // The controller moved the operation meanwhile: judge the new state.
            if (isApiError(err) && err.code === 409 && attempt < 5) continue;
            throw err;
          }
        }
      },
    });
  }
};
