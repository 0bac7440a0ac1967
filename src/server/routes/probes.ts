// Open endpoints for probes and scrapers: /healthz and the Prometheus /metrics.
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import { ApiError } from '../../api/errors.js';

export const probeRoutes: FastifyPluginAsync<{ metrics?: Registry }> = async (app, { metrics }) => {
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/metrics', { config: { access: 'public' } }, async (_req, reply) => {
    if (!metrics) throw new ApiError(404, 'NotFound', 'metrics are not enabled');
    void reply.type(metrics.contentType);
    return metrics.metrics();
  });
};
