// Fault injection into the `sim` provider's clusters, for platform admins (served only by a
// server started with --sim): kill a machine, make a Node NotReady, make an agent unreachable,
// partition a cluster, take an etcd member down — and see what Marina does about it.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError } from '../../api/errors.js';
import { schemaErrors } from '../../api/validate.js';
import { activeFaults, applyFaults, SimFaultError } from '../../sim/faults.js';
import type { SimWorld } from '../../sim/world.js';
import type { AuditLog } from '../../store/types.js';
import { principal } from '../auth.js';
import { SimFaultList, SimFaultRequest, errorResponses } from '../schemas.js';

export interface SimRouteOptions {
  world: SimWorld;
  audit: AuditLog;
}

export const simRoutes: FastifyPluginAsync<SimRouteOptions> = async (app, { world, audit }) => {
  const tags = ['Simulation'];

  app.post('/sim/faults', {
    schema: {
      operationId: 'injectSimFaults',
      summary: 'Inject (or clear) faults in simulated clusters, all at once (platform admins)',
      tags,
      body: { content: { 'application/json': { schema: Type.Ref(SimFaultRequest.$id!) } } },
      response: { 200: Type.Ref(SimFaultList.$id!, { description: 'the faults as applied' }), ...errorResponses(400, 401, 403, 413, 415, 422) },
    },
    config: { access: () => ({ verb: 'create' as const, kind: 'SimFault' }) },
    handler: async (req) => {
      const body = req.body as SimFaultRequest;
      if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw ApiError.badRequest('request body must be a JSON object: {"faults": [...]}');
      }
      const causes = schemaErrors(SimFaultRequest, body);
      if (causes.length > 0) throw ApiError.invalid(causes);
      let applied;
      try {
        applied = applyFaults(world, body.faults);
      } catch (err) {
        if (err instanceof SimFaultError) throw ApiError.invalidField(err.field, err.message);
        throw err;
      }
      const user = principal(req).user;
      const time = new Date().toISOString();
      for (const f of applied) {
        await audit.append({ time, user, verb: f.clear ? 'delete' : 'create', kind: 'SimFault', project: f.project, name: `${f.type}/${f.cluster}${f.machine ? `/${f.machine}` : ''}`, code: 200 });
      }
      return { items: applied };
    },
  });

  app.get('/sim/faults', {
    schema: {
      operationId: 'listSimFaults',
      summary: 'The faults in effect in simulated clusters (platform admins)',
      tags,
      response: { 200: Type.Ref(SimFaultList.$id!, { description: 'faults in effect' }), ...errorResponses(401, 403) },
    },
    config: { access: () => ({ verb: 'list' as const, kind: 'SimFault' }) },
    handler: async () => ({ items: activeFaults(world) }),
  });
};
