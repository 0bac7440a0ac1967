import { useMemo, useState } from 'react';
import { formatTime } from '../../../src/console-lib/format.js';
import { alertCounts, sortAlerts } from '../../../src/console-lib/summary.js';
import type { AlertView } from '../../../src/console-lib/types.js';
import { Link, paths } from '../router.js';
import { useLive } from '../session.js';
import { Badge, ListState, Page } from '../components/ui.js';

const SEVERITY_TONE: Record<string, 'bad' | 'warn' | 'neutral'> = { critical: 'bad', warning: 'warn', info: 'neutral' };

export function AlertsPage({ project }: { project: string }) {
  const alerts = useLive<AlertView>('Alert', project);
  const [state, setState] = useState<'all' | 'firing' | 'resolved'>('all');
  const [cluster, setCluster] = useState('');
  const clusters = useMemo(() => [...new Set(alerts.items.map((a) => a.spec?.cluster).filter((c): c is string => !!c))].sort(), [alerts.items]);
  const shown = useMemo(
    () =>
      sortAlerts(alerts.items).filter(
        (a) => (state === 'all' || (a.status?.state ?? 'firing') === state) && (!cluster || a.spec?.cluster === cluster),
      ),
    [alerts.items, state, cluster],
  );
  const counts = alertCounts(alerts.items);
  return (
    <Page title={`Alerts in ${project}`} live={alerts}>
      <p>
        <strong>{counts.firing}</strong> firing, <strong>{counts.resolved}</strong> resolved. Marina raises alerts itself and sends them to the{' '}
        <Link to={paths.channels(project)}>notification channels</Link>.
      </p>
      <div className="filters" role="search" aria-label="Filter alerts">
        <label htmlFor="f-state">State</label>
        <select id="f-state" value={state} onChange={(e) => setState(e.target.value as typeof state)}>
          <option value="all">All</option>
          <option value="firing">Firing</option>
          <option value="resolved">Resolved</option>
        </select>
        <label htmlFor="f-cluster">Cluster</label>
        <select id="f-cluster" value={cluster} onChange={(e) => setCluster(e.target.value)}>
          <option value="">All clusters</option>
          {clusters.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </div>
      <ListState live={alerts} empty="No alerts: nothing needs attention.">
        {shown.length === 0 ? (
          <p className="muted">No alerts match the filter.</p>
        ) : (
          <table className="alerts">
            <thead>
              <tr>
                <th scope="col">State</th>
                <th scope="col">Rule</th>
                <th scope="col">Severity</th>
                <th scope="col">Cluster</th>
                <th scope="col">Summary</th>
                <th scope="col">Labels</th>
                <th scope="col">Started</th>
                <th scope="col">Ended</th>
                <th scope="col">Deliveries</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((a) => (
                <AlertRow key={a.metadata.name} project={project} alert={a} />
              ))}
            </tbody>
          </table>
        )}
      </ListState>
    </Page>
  );
}

function AlertRow({ project, alert: a }: { project: string; alert: AlertView }) {
  const st = a.status ?? {};
  const state = st.state ?? 'firing';
  const log = st.notifications ?? [];
  return (
    <tr data-alert={a.metadata.name} data-state={state}>
      <td>
        <Badge tone={state === 'resolved' ? 'ok' : 'bad'}>{state}</Badge>
      </td>
      <th scope="row">{a.spec?.rule}</th>
      <td>
        <Badge tone={SEVERITY_TONE[a.spec?.severity ?? ''] ?? 'neutral'}>{a.spec?.severity}</Badge>
      </td>
      <td>{a.spec?.cluster ? <Link to={paths.cluster(project, a.spec.cluster)}>{a.spec.cluster}</Link> : '-'}</td>
      <td className="wrap">
        {a.spec?.annotations.summary}
        {a.spec?.annotations.description && <div className="small muted">{a.spec.annotations.description}</div>}
      </td>
      <td>
        <ul className="labels">
          {Object.entries(a.spec?.labels ?? {}).map(([k, v]) => (
            <li key={k}>
              <code>
                {k}={v}
              </code>
            </li>
          ))}
        </ul>
      </td>
      <td>{formatTime(st.startsAt)}</td>
      <td>{state === 'resolved' ? formatTime(st.endsAt) : '-'}</td>
      <td className="deliveries">
        {log.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          <details>
            <summary>
              {log.length} deliver{log.length === 1 ? 'y' : 'ies'}
            </summary>
            <ul className="deliveries-log">
              {log.map((n, i) => (
                <li key={`${n.channel}/${n.state}/${n.startsAt}/${i}`}>
                  <strong>{n.channel}</strong> {n.state}:{' '}
                  <Badge tone={n.outcome === 'delivered' ? 'ok' : n.outcome === 'failed' ? 'bad' : 'warn'}>{n.outcome}</Badge>
                  {n.code !== undefined && ` HTTP ${n.code}`}, {n.attempts} attempt{n.attempts === 1 ? '' : 's'}, {formatTime(n.at)}
                  {n.nextAttemptAt && n.outcome === 'pending' && `, next ${formatTime(n.nextAttemptAt)}`}
                  {n.error && <div className="small error">{n.error}</div>}
                </li>
              ))}
            </ul>
          </details>
        )}
      </td>
    </tr>
  );
}
