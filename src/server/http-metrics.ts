// Request metrics of the REST API, by route template (not the concrete path, so that object names
// do not multiply the series), method and status code, as operators expect from an API server:
//   marina_http_requests_total{method,route,code}
//   marina_http_request_duration_seconds{method,route,code}   (watches excluded: they last)
import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';

declare module 'fastify' {
  interface FastifyRequest {
    /** process.hrtime.bigint() when the request arrived. */
    receivedAt?: bigint;
  }
}

export function registerHttpMetrics(app: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'marina_http_requests_total',
    help: 'API requests answered, by method, route template and status code',
    labelNames: ['method', 'route', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'marina_http_request_duration_seconds',
    help: 'Time from a request to its answer, by method, route template and status code (watch streams are not timed)',
    labelNames: ['method', 'route', 'code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  app.addHook('onRequest', async (req) => {
    req.receivedAt = process.hrtime.bigint();
  });
  const observe = (req: { method: string; routeOptions: { url?: string }; receivedAt?: bigint; query: unknown }, code: number) => {
    const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', code: String(code) };
    requests.inc(labels);
    const watching = (req.query as { watch?: unknown } | undefined)?.watch === true;
    if (req.receivedAt !== undefined && !watching) duration.observe(labels, Number(process.hrtime.bigint() - req.receivedAt) / 1e9);
  };
  app.addHook('onResponse', async (req, reply) => observe(req, reply.statusCode));
}
