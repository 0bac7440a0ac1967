// What a receiver gets. Two formats:
//  - the Alertmanager webhook payload, version "4" (prometheus.io/docs/alerting/latest/configuration/
//    #webhook_config), so anything that takes Alertmanager webhooks (PagerDuty/Opsgenie bridges,
//    alerta, custom receivers) takes Marina's;
//  - a Slack-compatible incoming-webhook body (`text` plus `attachments`), which Slack, Mattermost
//    and Rocket.Chat all render (blocks are Slack-only, attachments are not).
// Marina sends one notification per alert and state change, so every "group" holds one alert:
// groupLabels are its identity labels, and groupKey is stable across its firing and resolved
// notifications (receivers use it to pair them).
import type { Alert, AlertState, ChannelType, Severity } from '../api/kinds.js';
import { API_VERSION, VERSION } from '../api/meta.js';
import { identityLabels, identityOf, sortLabels } from './fingerprint.js';

/** Alertmanager's "zero" time: endsAt of an alert that has not ended. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface AlertmanagerAlert {
  status: AlertState;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  fingerprint: string;
}

export interface AlertmanagerPayload {
  version: '4';
  groupKey: string;
  truncatedAlerts: number;
  status: AlertState;
  receiver: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  alerts: AlertmanagerAlert[];
}

export interface PayloadContext {
  /** The channel's name: Alertmanager's `receiver`. */
  receiver: string;
  /** Marina's base URL (backlinks); empty when unknown. */
  externalURL?: string;
}

/** Every label of the alert as a receiver sees it: identity labels plus severity. */
export function alertLabels(alert: Alert): Record<string, string> {
  return sortLabels({ ...identityLabels(identityOf(alert)), severity: alert.spec.severity });
}

export function alertAnnotations(alert: Alert): Record<string, string> {
  const a: Record<string, string> = { summary: alert.spec.annotations.summary };
  if (alert.spec.annotations.description) a.description = alert.spec.annotations.description;
  return a;
}

/** API URL of the Alert object under `externalURL` (empty when Marina's URL is unknown). */
export function alertURL(alert: Alert, externalURL?: string): string {
  if (!externalURL) return '';
  const base = externalURL.replace(/\/+$/, '');
  return `${base}/api/${VERSION}/projects/${encodeURIComponent(alert.metadata.project ?? '')}/alerts/${encodeURIComponent(alert.metadata.name)}`;
}

/** `{a="1", b="2"}`: Prometheus' label-set notation (Alertmanager builds groupKey from it). */
export function labelSetString(labels: Record<string, string>): string {
  return `{${Object.entries(sortLabels(labels))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ')}}`;
}

/** The alert as of the notification: `state` with the times the alert had for it. */
export function amAlert(alert: Alert, state: AlertState, ctx: PayloadContext): AlertmanagerAlert {
  const s = alert.status ?? {};
  return {
    status: state,
    labels: alertLabels(alert),
    annotations: alertAnnotations(alert),
    startsAt: s.startsAt ?? alert.metadata.creationTimestamp ?? ZERO_TIME,
    endsAt: state === 'resolved' ? (s.endsAt ?? new Date().toISOString()) : ZERO_TIME,
    generatorURL: alertURL(alert, ctx.externalURL),
    fingerprint: s.fingerprint ?? '',
  };
}

export function alertmanagerPayload(alert: Alert, state: AlertState, ctx: PayloadContext): AlertmanagerPayload {
  const a = amAlert(alert, state, ctx);
  const groupLabels = identityLabels(identityOf(alert));
  return {
    version: '4',
    groupKey: `{}/{project=${JSON.stringify(alert.metadata.project ?? '')}}:${labelSetString(groupLabels)}`,
    truncatedAlerts: 0,
    status: state,
    receiver: ctx.receiver,
    groupLabels,
    // With one alert per notification, the common labels/annotations are the alert's own.
    commonLabels: a.labels,
    commonAnnotations: a.annotations,
    externalURL: ctx.externalURL ?? '',
    alerts: [a],
  };
}

const SEVERITY_COLOR: Record<Severity, string> = { critical: 'danger', warning: 'warning', info: '#439FE0' };

export interface SlackPayload {
  text: string;
  attachments: {
    fallback: string;
    color: string;
    title: string;
    title_link?: string;
    text: string;
    fields: { title: string; value: string; short: boolean }[];
    footer: string;
    ts: number;
  }[];
}

export function slackPayload(alert: Alert, state: AlertState, ctx: PayloadContext): SlackPayload {
  const a = amAlert(alert, state, ctx);
  const where = [alert.metadata.project, alert.spec.cluster].filter(Boolean).join('/');
  const tag = state === 'firing' ? `FIRING:${alert.spec.severity}` : 'RESOLVED';
  const text = `[${tag}] ${alert.spec.rule} (${where}): ${alert.spec.annotations.summary}`;
  const fields = [
    { title: 'Severity', value: alert.spec.severity, short: true },
    { title: 'Project', value: alert.metadata.project ?? '', short: true },
  ];
  if (alert.spec.cluster) fields.push({ title: 'Cluster', value: alert.spec.cluster, short: true });
  const extra = Object.entries(alert.spec.labels ?? {});
  if (extra.length > 0) fields.push({ title: 'Labels', value: extra.map(([k, v]) => `${k}=${v}`).join(', '), short: false });
  fields.push({ title: 'Started', value: a.startsAt, short: true });
  if (state === 'resolved') fields.push({ title: 'Resolved', value: a.endsAt, short: true });
  const at = Date.parse(state === 'resolved' ? a.endsAt : a.startsAt);
  return {
    text,
    attachments: [
      {
        fallback: text,
        color: state === 'resolved' ? 'good' : SEVERITY_COLOR[alert.spec.severity],
        title: `${alert.spec.rule}: ${alert.spec.annotations.summary}`,
        ...(a.generatorURL ? { title_link: a.generatorURL } : {}),
        text: alert.spec.annotations.description ?? '',
        fields,
        footer: `Marina (${API_VERSION}) · ${a.fingerprint}`,
        ts: Number.isNaN(at) ? Math.floor(Date.now() / 1000) : Math.floor(at / 1000),
      },
    ],
  };
}

/** The request body for a channel type. */
export function payloadFor(type: ChannelType, alert: Alert, state: AlertState, ctx: PayloadContext): unknown {
  return type === 'slack' ? slackPayload(alert, state, ctx) : alertmanagerPayload(alert, state, ctx);
}
