// Alert identity: the labels that make an alert one alert, their fingerprint, and the stable
// object name derived from both. Raising "the same" alert again always lands on the same object.
import { createHash } from 'node:crypto';
import type { Alert } from '../api/kinds.js';
import { NAME_MAX } from '../api/meta.js';

export interface AlertIdentity {
  project: string;
  cluster?: string;
  rule: string;
  labels?: Record<string, string>;
}

/**
 * The identifying label set, as receivers see it: `alertname` (the rule), `project`, `cluster`
 * (when the alert is about one) and the evaluator's own labels. Severity is deliberately not part
 * of it: an alert that escalates from warning to critical stays the same alert.
 */
export function identityLabels(id: AlertIdentity): Record<string, string> {
  const out: Record<string, string> = { ...id.labels, alertname: id.rule, project: id.project };
  if (id.cluster) out.cluster = id.cluster;
  return sortLabels(out);
}

export function sortLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * 16 hex digits (64 bits, Alertmanager's fingerprint size) of SHA-256 over the sorted identity
 * labels. Independent of label order and of anything but rule, project, cluster and labels.
 */
export function fingerprint(id: AlertIdentity): string {
  const h = createHash('sha256');
  for (const [k, v] of Object.entries(identityLabels(id))) {
    // Separators that cannot occur in label names keep ("a","bc") and ("ab","c") apart.
    h.update(k).update('\u0000').update(v).update('\u00ff');
  }
  return h.digest('hex').slice(0, 16);
}

/** `NodeProvisioningSlow` → `node-provisioning-slow`. */
export function kebab(rule: string): string {
  return rule
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
}

/** Stable object name: `<rule in kebab case>-<fingerprint>`, a DNS-1123 label (≤ 63 characters). */
export function alertName(rule: string, fp: string): string {
  const prefix = kebab(rule).slice(0, NAME_MAX - fp.length - 1).replace(/-+$/, '');
  return prefix ? `${prefix}-${fp}` : `alert-${fp}`;
}

/** The identity of a stored Alert. */
export function identityOf(alert: Alert): AlertIdentity {
  return { project: alert.metadata.project ?? '', cluster: alert.spec.cluster, rule: alert.spec.rule, labels: alert.spec.labels };
}
