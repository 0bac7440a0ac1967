// Cluster subresources: the admin kubeconfig (what the Cluster controller stored in a Secret) and
// the health report with its 24-hour series.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError } from '../../api/errors.js';
import { adminKubeconfigSecretName } from '../../api/wellknown.js';
import { seriesKey } from '../../health/shared.js';
import type { ClusterHealth, HealthReport, HealthSample } from '../../health/types.js';
import type { AuditLog, SeriesStore, Store } from '../../store/types.js';
import { principal } from '../auth.js';
import { ClusterHealth as ClusterHealthSchema, HealthQuery, Kubeconfig, ProjectNameParams, errorResponses, parseDateTime } from '../schemas.js';

/** Health reports and series for GET .../clusters/{name}/health (read at request time). */
export interface HealthSource {
  latest(project: string, cluster: string): Promise<HealthReport | undefined> | HealthReport | undefined;
  series?: SeriesStore;
}

export interface ClusterRouteOptions {
  store: Store;
  audit: AuditLog;
  health?: HealthSource;
}

const DAY_MS = 24 * 3600 * 1000;

interface Params {
  project: string;
  name: string;
}

export const clusterRoutes: FastifyPluginAsync<ClusterRouteOptions> = async (app, { store, audit, health }) => {
  const tags = ['Cluster'];

  app.get<{ Params: Params }>('/projects/:project/clusters/:name/kubeconfig', {
    schema: {
      operationId: 'readClusterKubeconfig',
      summary: "The cluster's admin kubeconfig",
      tags,
      params: ProjectNameParams,
      response: {
        200: { description: 'the admin kubeconfig', content: { 'application/yaml': { schema: Kubeconfig } } },
        ...errorResponses(401, 403, 404, 409),
      },
    },
    // The kubeconfig is the admin credential in a Secret: reading it needs what reading Secrets needs.
    config: { access: (req) => ({ verb: 'get', kind: 'Secret', project: (req.params as Params).project, name: (req.params as Params).name }) },
    handler: async (req, reply) => {
      const { project, name } = req.params;
      const cluster = await store.get({ kind: 'Cluster', project, name });
      if (!cluster) throw ApiError.notFound('Cluster', name);
      const secret = await store.get({ kind: 'Secret', project, name: adminKubeconfigSecretName(name) });
      const kubeconfig = (secret?.spec as { data?: Record<string, string> } | undefined)?.data?.kubeconfig;
      if (!kubeconfig) {
        const phase = (cluster.status as { phase?: string } | undefined)?.phase ?? 'Pending';
        throw new ApiError(409, 'Conflict', `cluster ${name} has no kubeconfig yet (phase ${phase}); wait until it is provisioned`);
      }
      await audit.append({ time: new Date().toISOString(), user: principal(req).user, verb: 'get', kind: 'Kubeconfig', project, name, code: 200 });
      void reply.type('application/yaml');
      return kubeconfig;
    },
  });

  app.get<{ Params: Params; Querystring: { since?: string } }>('/projects/:project/clusters/:name/health', {
    schema: {
      operationId: 'readClusterHealth',
      summary: 'The newest health report of a cluster and the samples since a time (default: the last 24 hours)',
      tags,
      params: ProjectNameParams,
      querystring: HealthQuery,
      response: { 200: Type.Ref(ClusterHealthSchema.$id!, { description: 'ClusterHealth' }), ...errorResponses(400, 401, 403, 404) },
    },
    config: { access: (req) => ({ verb: 'get', kind: 'Cluster', project: (req.params as Params).project, name: (req.params as Params).name }) },
    handler: async (req): Promise<ClusterHealth> => {
      const { project, name } = req.params;
      if (!(await store.get({ kind: 'Cluster', project, name }))) throw ApiError.notFound('Cluster', name);
      const since = new Date(req.query.since === undefined ? Date.now() - DAY_MS : parseDateTime(req.query.since)).toISOString();
      const [latest, series] = await Promise.all([health?.latest(project, name), health?.series ? health.series.range(seriesKey(project, name), since) : []]);
      return {
        kind: 'ClusterHealth',
        project,
        cluster: name,
        latest: latest ?? null,
        samples: series.map((s) => s.sample as HealthSample),
      };
    },
  });
};
