// The audit log: who changed what, read back by platform admins (all of it) and project admins
// (their project's).
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Resource } from '../../api/meta.js';
import type { AuditLog } from '../../store/types.js';
import type { Principal, Verb } from '../authz.js';
import { AuditList, AuditQuery, errorResponses } from '../schemas.js';

export const auditRoutes: FastifyPluginAsync<{ audit: AuditLog }> = async (app, { audit }) => {
  app.get<{ Querystring: AuditQuery }>('/audit', {
    schema: {
      operationId: 'listAuditEntries',
      summary: 'The audit log, newest first',
      tags: ['Audit'],
      querystring: AuditQuery,
      response: { 200: Type.Ref(AuditList.$id!, { description: 'entries, newest first' }), ...errorResponses(400, 401, 403, 404) },
    },
    config: { access: (req) => ({ verb: 'list', kind: 'AuditLog', project: (req.query as AuditQuery).project }) },
    handler: async (req) => {
      const { project, user, kind, limit } = req.query;
      return { items: await audit.list({ project, user, kind, limit: limit ?? 100 }) };
    },
  });
};

/** Records a change of an object by `p` with the outcome `code`. */
export async function recordChange(audit: AuditLog, p: Principal, verb: Verb, obj: Resource, code: number): Promise<void> {
  await audit.append({
    time: new Date().toISOString(),
    user: p.user,
    verb,
    kind: obj.kind,
    project: obj.metadata.project ?? '',
    name: obj.metadata.name,
    generation: obj.metadata.generation,
    resourceVersion: obj.metadata.resourceVersion,
    code,
  });
}
