import { useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import type { AuditEntry } from '../../../src/client/index.js';
import { MarinaApiError } from '../../../src/client/index.js';
import { poolIndex, scalePool } from '../../../src/console-lib/cluster-form.js';
import { formErrors } from '../../../src/console-lib/form-errors.js';
import { formatAge, formatBytes, formatCores, formatMs, formatTime } from '../../../src/console-lib/format.js';
import { fetchHealth, healthPlots, mergeHealth, type ClusterHealth } from '../../../src/console-lib/health.js';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';
import { clusterSummary, conditionRows, ofCluster, phaseTone, sortAlerts } from '../../../src/console-lib/summary.js';
import { alertEntries, auditEntries, mergeTimeline, TransitionLog } from '../../../src/console-lib/timeline.js';
import type { AlertView, ClusterView, MachineView, NodePoolView } from '../../../src/console-lib/types.js';
import { clusterOperations, operationActions, operationEntries, operationSummary, type OperationView } from '../../../src/console-lib/operations.js';
import { Link, navigate, paths } from '../router.js';
import { useApplyLocally, useLive, useNow, useRole, useSession } from '../session.js';
import { Badge, Page, Section } from '../components/ui.js';
import { ConfirmDialog } from '../components/Dialog.js';
import { LineChart } from '../components/LineChart.js';
import { AddonsSection } from '../components/AddonsSection.js';

const HEALTH_POLL_MS = 5_000;

export function ClusterPage({ project, name }: { project: string; name: string }) {
  const clusters = useLive<ClusterView>('Cluster', project);
  const nodePools = useLive<NodePoolView>('NodePool', project);
  const machineList = useLive<MachineView>('Machine', project);
  const alertList = useLive<AlertView>('Alert', project);
  const operationList = useLive<OperationView>('Operation', project);
  const now = useNow();

  const cluster = clusters.items.find((c) => c.metadata.name === name);
  const pools = useMemo(() => ofCluster(nodePools.items, name), [nodePools.items, name]);
  const machines = useMemo(() => ofCluster(machineList.items, name), [machineList.items, name]);
  const alerts = useMemo(() => sortAlerts(alertList.items.filter((a) => a.spec?.cluster === name)), [alertList.items, name]);
  const operations = useMemo(() => clusterOperations(operationList.items, name), [operationList.items, name]);
  const health = useHealth(project, name);

  if (clusters.state === 'error') return <Page title={name}><p className="error" role="alert">{clusters.error}</p></Page>;
  if (!clusters.synced) return <Page title={name}><p className="muted">Loading…</p></Page>;
  if (!cluster) {
    return (
      <Page title={name}>
        <p>
          There is no cluster <strong>{name}</strong> in project {project} (any more). <Link to={paths.clusters(project)}>Back to the clusters</Link>
        </p>
      </Page>
    );
  }
  const s = clusterSummary(cluster);
  return (
    <Page
      title={name}
      live={clusters}
      actions={<ClusterActions project={project} cluster={cluster} machineCount={machines.length} />}
    >
      <div className="summary">
        <Badge tone={s.tone}>
          <span className="visually-hidden">Phase: </span>
          <span data-testid="phase">{s.phase}</span>
        </Badge>
        <dl className="facts">
          <div><dt>Ready</dt><dd>{s.ready}</dd></div>
          <div><dt>Machines ready</dt><dd>{s.pools}</dd></div>
          <div><dt>Health</dt><dd>{s.health ?? 'no data yet'}</dd></div>
          <div><dt>Version</dt><dd>{cluster.status?.kubernetesVersion ?? cluster.spec?.kubernetesVersion ?? '-'}</dd></div>
          <div><dt>Endpoint</dt><dd>{cluster.status?.endpoint ?? '-'}</dd></div>
          <div><dt>Provider</dt><dd>{cluster.spec?.provider ?? 'local'}</dd></div>
          <div><dt>Created</dt><dd>{formatTime(cluster.metadata.creationTimestamp)}</dd></div>
        </dl>
      </div>
      {s.problem && <p className="notice">{s.problem}</p>}
      <nav aria-label="Sections of this page" className="toc">
        <a href="#operations">Operations</a> <a href="#pools">Pools</a> <a href="#machines">Machines</a> <a href="#nodes">Nodes</a> <a href="#health">Health</a> <a href="#addons">Add-ons</a>{' '}
        <a href="#cluster-alerts">Alerts</a> <a href="#conditions">Conditions</a> <a href="#timeline">Timeline</a>
      </nav>

      <OperationsSection project={project} cluster={cluster} operations={operations} now={now} />
      <div className="grid-2">
        <PoolsSection project={project} cluster={cluster} pools={pools} />
        <MachinesSection machines={machines} now={now} />
      </div>
      <div className="grid-2">
        <NodesSection health={health} />
        <ChecksSection health={health} />
      </div>
      <PlotsSection health={health} />
      <AddonsSection project={project} cluster={name} />
      <AlertsSection project={project} alerts={alerts} />
      <ConditionsSection cluster={cluster} pools={pools} machines={machines} />
      <TimelineSection project={project} cluster={cluster} pools={pools} machines={machines} alerts={alerts} operations={operations} />
    </Page>
  );
}

// ---------- header actions: kubeconfig, delete ----------

function ClusterActions({ project, cluster, machineCount }: { project: string; cluster: ClusterView; machineCount: number }) {
  const { client } = useSession();
  const applyLocally = useApplyLocally();
  const [deleting, setDeleting] = useState(false);
  const [kcError, setKcError] = useState<string>();
  const [kcBusy, setKcBusy] = useState(false);
  const name = cluster.metadata.name;

  const download = async () => {
    setKcBusy(true);
    setKcError(undefined);
    try {
      const text = await client.kubeconfig(project, name);
      const url = URL.createObjectURL(new Blob([text], { type: 'application/yaml' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `${name}.kubeconfig`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setKcError((err as Error).message);
    } finally {
      setKcBusy(false);
    }
  };

  return (
    <>
      <button type="button" onClick={download} disabled={kcBusy} aria-describedby={kcError ? 'kc-error' : undefined}>
        Download kubeconfig
      </button>
      <button type="button" className="danger" onClick={() => setDeleting(true)} disabled={!!cluster.metadata.deletionTimestamp}>
        {cluster.metadata.deletionTimestamp ? 'Deleting…' : 'Delete cluster…'}
      </button>
      {kcError && (
        <p id="kc-error" className="error" role="alert">
          {kcError}
        </p>
      )}
      <ConfirmDialog
        open={deleting}
        title={`Delete cluster ${name}?`}
        confirmLabel="Delete cluster"
        confirmText={name}
        danger
        onClose={() => setDeleting(false)}
        onConfirm={async () => {
          const { object } = await client.delete('Cluster', name, project);
          applyLocally(object);
          setDeleting(false);
          navigate(paths.clusters(project));
        }}
      >
        <p>
          Marina stops and removes its {machineCount} machine{machineCount === 1 ? '' : 's'}, their data and the cluster's endpoint. This cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

// ---------- operations: live progress, approvals, snapshot ----------

function OperationsSection({ project, cluster, operations, now }: { project: string; cluster: ClusterView; operations: OperationView[]; now: number }) {
  const { client, me } = useSession();
  const applyLocally = useApplyLocally();
  const role = useRole(project);
  const [error, setError] = useState<string>();
  const guard = useRef(new SingleFlight());
  const name = cluster.metadata.name;
  const act = async (op: OperationView, action: 'approve' | 'reject' | 'cancel') => {
    setError(undefined);
    try {
      const r = await guard.current.run(() => client.request<OperationView>('POST', `${client.path('Operation', { project, name: op.metadata.name })}/${action}`, { body: {} }));
      if (r.ran) applyLocally(r.value);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const snapshot = async () => {
    setError(undefined);
    try {
      const suffix = Math.random().toString(36).slice(2, 7);
      const r = await guard.current.run(() =>
        client.create<OperationView>({ apiVersion: 'marina.dev/v1alpha1', kind: 'Operation', metadata: { name: `${name.slice(0, 46)}-snapshot-${suffix}`, project }, spec: { cluster: name, type: 'Snapshot' } }),
      );
      if (r.ran) applyLocally(r.value);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <Section id="operations" title="Operations">
      <p>
        <button type="button" onClick={snapshot} disabled={!!cluster.metadata.deletionTimestamp}>
          Take snapshot
        </button>
      </p>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {operations.length === 0 ? (
        <p className="muted">No operations yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Operation</th>
              <th scope="col">Phase</th>
              <th scope="col">Progress</th>
              <th scope="col">Requested by</th>
              <th scope="col">Steps</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {operations.slice(0, 20).map((op) => {
              const s = operationSummary(op);
              const can = operationActions(op, me.user, role, me.platformAdmin);
              return (
                <tr key={op.metadata.name} data-operation={op.metadata.name}>
                  <th scope="row">
                    {s.title}
                    <div className="small muted">
                      {op.metadata.name} · {formatAge(op.metadata.creationTimestamp, now)} ago
                    </div>
                  </th>
                  <td>
                    <Badge tone={s.tone}>
                      <span data-testid={`op-phase-${op.metadata.name}`}>{s.phase}</span>
                    </Badge>
                    {op.status?.message && <div className="small">{op.status.message}</div>}
                  </td>
                  <td>
                    <progress max={100} value={s.progress} aria-label={`Progress of ${op.metadata.name}`} /> {s.progress}%
                  </td>
                  <td>
                    {op.status?.requestedBy ?? '-'}
                    {op.status?.approvedBy && <div className="small">approved by {op.status.approvedBy.user}</div>}
                  </td>
                  <td>
                    <ol className="steps small">
                      {(op.status?.steps ?? []).map((st) => (
                        <li key={st.name} className={`step-${st.state.toLowerCase()}`} title={st.message}>
                          {st.name}
                          {st.disruptive ? '*' : ''}: {st.state}
                        </li>
                      ))}
                    </ol>
                  </td>
                  <td>
                    {can.approve && (
                      <button type="button" onClick={() => act(op, 'approve')}>
                        Approve
                      </button>
                    )}
                    {can.reject && (
                      <button type="button" onClick={() => act(op, 'reject')}>
                        Reject
                      </button>
                    )}
                    {can.cancel && (
                      <button type="button" className="danger" onClick={() => act(op, 'cancel')}>
                        Cancel
                      </button>
                    )}
                    {can.note && <div className="small muted">{can.note}</div>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Section>
  );
}

// ---------- pools with scaling ----------

function PoolsSection({ project, cluster, pools }: { project: string; cluster: ClusterView; pools: NodePoolView[] }) {
  const templates = cluster.spec?.nodePools ?? [];
  const status = cluster.status?.pools ?? [];
  return (
    <Section id="pools" title="Node pools">
      <table>
        <thead>
          <tr>
            <th scope="col">Pool</th>
            <th scope="col">Roles</th>
            <th scope="col">Ready / desired</th>
            <th scope="col">Scale</th>
          </tr>
        </thead>
        <tbody>
          {templates.map((t) => {
            const np = pools.find((p) => p.metadata.name === `${cluster.metadata.name}-${t.name}`) ?? pools.find((p) => p.metadata.name.endsWith(`-${t.name}`));
            const st = status.find((p) => p.name === t.name);
            const ready = np?.status?.readyReplicas ?? st?.readyReplicas ?? 0;
            return (
              <tr key={t.name} data-pool={t.name}>
                <th scope="row">{t.name}</th>
                <td>{t.roles.join(', ')}</td>
                <td>
                  <span data-testid={`ready-${t.name}`}>
                    {ready}/{t.replicas}
                  </span>
                </td>
                <td>
                  <ScaleControl project={project} cluster={cluster} pool={t.name} replicas={t.replicas} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </Section>
  );
}

function ScaleControl({ project, cluster, pool, replicas }: { project: string; cluster: ClusterView; pool: string; replicas: number }) {
  const { client } = useSession();
  const applyLocally = useApplyLocally();
  const [value, setValue] = useState(String(replicas));
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [dirty, setDirty] = useState(false);
  const guard = useRef(new SingleFlight());
  const id = `scale-${pool}`;
  // Follow the spec while the user is not editing.
  useEffect(() => {
    if (!dirty) setValue(String(replicas));
  }, [replicas, dirty]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const field = `spec.nodePools[${poolIndex(cluster, pool)}].replicas`;
    try {
      const r = await guard.current.run(async () => {
        setBusy(true);
        setError(undefined);
        try {
          const raw = value.trim();
          return await scalePool(client, project, cluster.metadata.name, pool, /^[+-]?\d+$/.test(raw) ? Number(raw) : raw);
        } finally {
          setBusy(false);
        }
      });
      if (r.ran) {
        applyLocally(r.value);
        setDirty(false);
      }
    } catch (err) {
      const fe = formErrors(err, [field]);
      setError(fe.fields[field] ?? fe.general);
    }
  };
  return (
    <form className="inline" onSubmit={submit} noValidate>
      <label htmlFor={id} className="visually-hidden">
        Replicas of pool {pool}
      </label>
      <input
        id={id}
        type="number"
        inputMode="numeric"
        className="narrow"
        value={value}
        onChange={(e) => {
          setValue(e.target.value);
          setDirty(true);
          setError(undefined);
        }}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
      />
      <button type="submit" disabled={busy || !!cluster.metadata.deletionTimestamp} aria-label={`Scale pool ${pool}`}>
        {busy ? 'Scaling…' : 'Scale'}
      </button>
      {error && (
        <p id={`${id}-error`} className="field-error">
          {error}
        </p>
      )}
    </form>
  );
}

// ---------- machines, Nodes, checks ----------

function MachinesSection({ machines, now }: { machines: MachineView[]; now: number }) {
  return (
    <Section id="machines" title="Machines">
      {machines.length === 0 ? (
        <p className="muted">No machines yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Machine</th>
              <th scope="col">Pool</th>
              <th scope="col">Phase</th>
              <th scope="col">Address</th>
              <th scope="col">Node</th>
              <th scope="col">Age</th>
            </tr>
          </thead>
          <tbody>
            {machines.map((m) => {
              const phase = m.metadata.deletionTimestamp ? 'Deleting' : m.status?.phase ?? 'Pending';
              return (
                <tr key={m.metadata.name} data-machine={m.metadata.name} data-pool={m.spec?.pool}>
                  <th scope="row">{m.metadata.name}</th>
                  <td>{m.spec?.pool}</td>
                  <td>
                    <Badge tone={phaseTone(phase)}>{phase}</Badge>
                    {m.status?.failureMessage && <div className="small error">{m.status.failureMessage}</div>}
                  </td>
                  <td>{m.status?.address ?? '-'}</td>
                  <td>
                    {m.status?.nodeName ? (
                      <>
                        {m.status.nodeReady ? <Badge tone="ok">Ready</Badge> : <Badge tone="warn">Not ready</Badge>}
                      </>
                    ) : m.spec?.roles.some((r) => r !== 'etcd') ? (
                      <span className="muted">not registered</span>
                    ) : (
                      <span className="muted">none (etcd only)</span>
                    )}
                  </td>
                  <td>{formatAge(m.metadata.creationTimestamp, now)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Section>
  );
}

interface HealthState {
  health?: ClusterHealth;
  loaded: boolean;
  error?: string;
}

/** Polls the cluster's health endpoint, fetching only newer samples after the first answer. */
function useHealth(project: string, cluster: string): HealthState {
  const { client } = useSession();
  const [state, setState] = useState<HealthState>({ loaded: false });
  useEffect(() => {
    let stopped = false;
    let current: ClusterHealth | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ctl = new AbortController();
    const poll = async () => {
      try {
        const next = await fetchHealth(client, project, cluster, current?.samples.at(-1)?.t, ctl.signal);
        if (stopped) return;
        if (next) current = mergeHealth(current, next);
        setState({ health: current, loaded: true });
      } catch (err) {
        if (stopped) return;
        setState((s) => ({ ...s, loaded: true, error: (err as Error).message }));
      }
      if (!stopped) timer = setTimeout(poll, HEALTH_POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      ctl.abort();
      if (timer) clearTimeout(timer);
    };
  }, [client, project, cluster]);
  return state;
}

function NoHealth({ h }: { h: HealthState }) {
  if (!h.loaded) return <p className="muted">Loading…</p>;
  if (h.error) return <p className="error">{h.error}</p>;
  return <p className="muted">No health data yet.</p>;
}

function NodesSection({ health }: { health: HealthState }) {
  const nodes = health.health?.latest?.nodes;
  return (
    <Section id="nodes" title="Nodes">
      {!nodes ? (
        <NoHealth h={health} />
      ) : nodes.length === 0 ? (
        <p className="muted">The cluster has no Nodes.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">Ready</th>
              <th scope="col">Problems</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => (
              <tr key={n.name} data-node={n.name}>
                <th scope="row">{n.name}</th>
                <td>
                  <Badge tone={n.ready === 'True' ? 'ok' : n.ready === 'False' ? 'bad' : 'warn'}>{n.ready === 'True' ? 'Ready' : n.ready === 'False' ? 'Not ready' : 'Unknown'}</Badge>
                  {n.unschedulable && <span className="muted"> (cordoned)</span>}
                </td>
                <td className="wrap">{n.problems.map((p) => `${p.type}=${p.status}${p.reason ? ` (${p.reason})` : ''}`).join('; ') || '-'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {health.health?.latest && <p className="small muted">Checked {formatTime(health.health.latest.at)}.</p>}
    </Section>
  );
}

function ChecksSection({ health }: { health: HealthState }) {
  const checks = health.health?.latest?.checks;
  return (
    <Section id="components" title="Component health">
      {!checks ? (
        <NoHealth h={health} />
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Component</th>
              <th scope="col">Machine</th>
              <th scope="col">Status</th>
              <th scope="col">Latency</th>
            </tr>
          </thead>
          <tbody>
            {checks.map((c, i) => (
              <tr key={`${c.component}/${c.machine ?? ''}/${i}`}>
                <th scope="row">{c.component}</th>
                <td>{c.machine ?? 'cluster'}</td>
                <td className="wrap">
                  <Badge tone={c.ok ? 'ok' : 'bad'}>{c.ok ? 'ok' : 'failing'}</Badge> {c.ok ? '' : c.message}
                </td>
                <td>{formatMs(c.latencyMs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function PlotsSection({ health }: { health: HealthState }) {
  const plots = useMemo(() => healthPlots(health.health?.samples ?? []), [health.health]);
  return (
    <Section id="health" title="Health over time">
      {!health.health || health.health.samples.length === 0 ? (
        <NoHealth h={health} />
      ) : (
        <div className="charts">
          <LineChart title="API latency" series={plots.apiLatency} format={formatMs} />
          <LineChart title="etcd database size" series={plots.etcdDb} format={formatBytes} />
          <LineChart title="etcd WAL fsync p99" series={plots.etcdFsync} format={formatMs} />
          <LineChart title="CPU per machine" series={plots.cpu} format={formatCores} />
          <LineChart title="Memory per machine" series={plots.memory} format={formatBytes} />
        </div>
      )}
    </Section>
  );
}

// ---------- alerts, conditions, timeline ----------

function AlertsSection({ project, alerts }: { project: string; alerts: AlertView[] }) {
  return (
    <Section id="cluster-alerts" title="Alerts" actions={<Link to={paths.alerts(project)}>All alerts of the project</Link>}>
      {alerts.length === 0 ? (
        <p className="muted">No alerts for this cluster.</p>
      ) : (
        <ul className="plain">
          {alerts.slice(0, 10).map((a) => (
            <li key={a.metadata.name}>
              <Badge tone={a.status?.state === 'resolved' ? 'ok' : 'bad'}>{a.status?.state ?? 'firing'}</Badge> <strong>{a.spec?.rule}</strong> {a.spec?.annotations.summary}{' '}
              <span className="muted small">
                since {formatTime(a.status?.startsAt)}
                {a.status?.endsAt ? `, until ${formatTime(a.status.endsAt)}` : ''}
              </span>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}

function ConditionsSection({ cluster, pools, machines }: { cluster: ClusterView; pools: NodePoolView[]; machines: MachineView[] }) {
  const rows = conditionRows(cluster, pools, machines);
  return (
    <Section id="conditions" title="Conditions">
      {rows.length === 0 ? (
        <p className="muted">No conditions reported yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Object</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Reason</th>
              <th scope="col">Message</th>
              <th scope="col">Last transition</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.kind}/${r.name}/${r.type}`}>
                <td>
                  {r.kind} {r.name}
                </td>
                <th scope="row">{r.type}</th>
                <td>
                  <Badge tone={r.good ? 'ok' : r.status === 'Unknown' ? 'warn' : 'bad'}>{r.status}</Badge>
                </td>
                <td>{r.reason ?? ''}</td>
                <td className="wrap">{r.message ?? ''}</td>
                <td>{formatTime(r.lastTransitionTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function TimelineSection({ project, cluster, pools, machines, alerts, operations }: { project: string; cluster: ClusterView; pools: NodePoolView[]; machines: MachineView[]; alerts: AlertView[]; operations: OperationView[] }) {
  const { client } = useSession();
  const log = useRef(new TransitionLog());
  const [audit, setAudit] = useState<AuditEntry[]>([]);
  const [auditNote, setAuditNote] = useState<string>();
  const name = cluster.metadata.name;
  const generation = cluster.metadata.generation;
  const deleting = cluster.metadata.deletionTimestamp;

  // Operations come from the audit log (the project's admins may read it); re-read when the spec changes.
  useEffect(() => {
    let cancelled = false;
    client
      .audit({ project, limit: 500 })
      .then((items) => {
        if (cancelled) return;
        setAudit(items);
        setAuditNote(undefined);
      })
      .catch((err: unknown) => {
        if (cancelled) return;
        setAuditNote(err instanceof MarinaApiError && err.code === 403 ? 'Operations from the audit log are shown to the project’s admins only.' : `Audit log: ${(err as Error).message}`);
      });
    return () => {
      cancelled = true;
    };
  }, [client, project, name, generation, deleting]);

  log.current.observe([cluster, ...pools, ...machines]);
  const entries = mergeTimeline([log.current.list(), auditEntries(audit, name), alertEntries(alerts), operationEntries(operations)], 150);
  return (
    <Section id="timeline" title="Timeline">
      {auditNote && <p className="muted small">{auditNote}</p>}
      <ol className="timeline">
        {entries.map((e) => (
          <li key={e.id} className={`tl-${e.tone}`}>
            <time dateTime={e.time}>{formatTime(e.time)}</time> <span className="tl-source">{e.source}</span> <span className="tl-title">{e.title}</span>
            {e.detail && <span className="tl-detail"> — {e.detail}</span>}
          </li>
        ))}
      </ol>
    </Section>
  );
}
