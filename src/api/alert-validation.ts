// Semantic checks of Alert and NotificationChannel that their schemas cannot express.
import type { FieldCause } from './errors.js';
import type { Resource } from './meta.js';

/** Prometheus label names: what Alertmanager receivers accept. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Labels Marina derives from the Alert itself; spec.labels may not set them. */
export const RESERVED_ALERT_LABELS: readonly string[] = ['alertname', 'severity', 'project', 'cluster'];

export function validateAlertLabels(labels: Record<string, string> | undefined, field = 'spec.labels'): FieldCause[] {
  const causes: FieldCause[] = [];
  for (const name of Object.keys(labels ?? {})) {
    const at = /^[A-Za-z0-9_]+$/.test(name) ? `${field}.${name}` : `${field}[${JSON.stringify(name)}]`;
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      causes.push({ field: at, message: `label name ${JSON.stringify(name)} must match ${LABEL_NAME.source} and not start with "__"` });
    } else if (RESERVED_ALERT_LABELS.includes(name)) {
      causes.push({ field: at, message: `label ${JSON.stringify(name)} is set by Marina from the alert (rule, severity, project, cluster)` });
    }
  }
  return causes;
}

export function validateAlert(obj: Resource): FieldCause[] {
  const spec = obj.spec as { labels?: Record<string, string> };
  return validateAlertLabels(spec.labels);
}

/** A webhook URL Marina can POST to: absolute http(s) with a host. Credentials become Basic auth. */
export function webhookUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not an absolute URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http or https URL, got scheme ${JSON.stringify(u.protocol.replace(/:$/, ''))}`;
  if (!u.hostname) return 'must name a host';
  return undefined;
}

export function validateNotificationChannel(obj: Resource): FieldCause[] {
  const spec = obj.spec as { url: string };
  const problem = webhookUrlProblem(spec.url);
  return problem ? [{ field: 'spec.url', message: problem }] : [];
}
