// Who am I, and which Kubernetes versions this server offers: small answers for any signed-in
// user, so that the CLI and forms can offer choices instead of collecting 422s.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ValidationContext } from '../../api/registry.js';
import { principal } from '../auth.js';
import { KubernetesVersionList, WhoAmI, errorResponses } from '../schemas.js';

export const miscRoutes: FastifyPluginAsync<{ validation: ValidationContext }> = async (app, { validation }) => {
  app.get('/whoami', {
    schema: {
      operationId: 'whoAmI',
      summary: 'The caller: user name, platform admin or not, role per project',
      tags: ['Identity'],
      response: { 200: Type.Ref(WhoAmI.$id!, { description: 'the caller' }), ...errorResponses(401) },
    },
    config: { access: 'authenticated' },
    handler: async (req): Promise<WhoAmI> => {
      const p = principal(req);
      return { user: p.user, platformAdmin: p.platformAdmin, projects: [...p.roles].map(([name, role]) => ({ name, role })) };
    },
  });

  app.get('/kubernetesversions', {
    schema: {
      operationId: 'listKubernetesVersions',
      summary: 'The Kubernetes versions spec.kubernetesVersion accepts, and the default',
      tags: ['Cluster'],
      response: { 200: Type.Ref(KubernetesVersionList.$id!, { description: 'the versions' }), ...errorResponses(401) },
    },
    config: { access: 'authenticated' },
    handler: async () => ({
      kind: 'KubernetesVersionList' as const,
      default: validation.defaultKubernetesVersion ?? validation.kubernetesVersions[0] ?? null,
      versions: validation.kubernetesVersions,
    }),
  });
};
