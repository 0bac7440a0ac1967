// Pipelines of a project: the list, one pipeline (its steps, a run form, its runs) and one run
// traced step by step with the activation of every attempt.
import { useMemo, useRef, useState, type FormEvent } from 'react';
import type { FunctionsApi } from '../../../src/client/index.js';
import { formatAge, formatMs, formatTime } from '../../../src/console-lib/format.js';
import { outcomeTone, parseEventText, showValue, traceRun, triggerLines, type PipelineView } from '../../../src/console-lib/functions.js';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';
import { Link, navigate, paths } from '../router.js';
import { usePolled } from '../poll.js';
import { useFunctionsApi, useLive, useNow } from '../session.js';
import { ActivationDetails } from '../components/Activations.js';
import { Badge, ListState, Page, Section } from '../components/ui.js';

function stepsText(p: PipelineView): string {
  return (p.spec?.steps ?? []).map((s) => (s.parallel ? `(${s.parallel.map((b) => b.function).join(' ∥ ')})` : s.function)).join(' → ');
}

export function PipelinesPage({ project }: { project: string }) {
  const pipelines = useLive<PipelineView>('Pipeline', project);
  const now = useNow();
  return (
    <Page title={`Pipelines in ${project}`} live={pipelines}>
      <p className="muted">
        Functions run one after another, each step’s output the next one’s input, with parallel branches. Apply them with <code>marina pipeline apply -f FILE</code>.
      </p>
      <ListState live={pipelines} empty="No pipelines in this project yet.">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Steps</th>
              <th scope="col">Triggers</th>
              <th scope="col">Age</th>
            </tr>
          </thead>
          <tbody>
            {pipelines.items.map((p) => (
              <tr key={p.metadata.name} data-pipeline={p.metadata.name}>
                <th scope="row">
                  <Link to={paths.pipeline(project, p.metadata.name)}>{p.metadata.name}</Link>
                </th>
                <td>{stepsText(p)}</td>
                <td>{triggerLines(p.spec, undefined).map((t) => `${t.kind} ${t.name}`).join(', ') || <span className="muted">none (run on demand)</span>}</td>
                <td>{formatAge(p.metadata.creationTimestamp, now)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListState>
    </Page>
  );
}

export function PipelinePage({ project, name }: { project: string; name: string }) {
  const pipelines = useLive<PipelineView>('Pipeline', project);
  const api = useFunctionsApi();
  const runs = usePolled((signal) => api.runs(project, name, { limit: 50, signal }), `${project}/${name}`);
  const now = useNow();
  const pipeline = pipelines.items.find((p) => p.metadata.name === name);
  if (!pipelines.synced) return <Page title={name}><p className="muted">Loading…</p></Page>;
  if (!pipeline) {
    return (
      <Page title={name}>
        <p>
          There is no pipeline <strong>{name}</strong> in project {project} (any more). <Link to={paths.pipelines(project)}>Back to the pipelines</Link>
        </p>
      </Page>
    );
  }
  return (
    <Page title={`Pipeline ${name}`} live={pipelines}>
      <div className="grid-2">
        <Section id="steps" title="Steps">
          <ol data-testid="steps">
            {(pipeline.spec?.steps ?? []).map((s) => (
              <li key={s.name}>
                <strong>{s.name}</strong>:{' '}
                {s.parallel ? (
                  <>in parallel {s.parallel.map((b) => `${b.name} (function ${b.function})`).join(', ')}</>
                ) : (
                  <Link to={paths.function(project, s.function ?? '')}>function {s.function}</Link>
                )}
                {s.retry?.maxAttempts ? <span className="small muted"> up to {s.retry.maxAttempts} attempts</span> : null}
              </li>
            ))}
          </ol>
          <p className="small muted">Deadline of a run: {pipeline.spec?.deadlineSeconds ?? 300} s. A failed run goes to the <Link to={paths.deadLetters(project)}>dead letters</Link> whole.</p>
        </Section>
        <RunSection api={api} project={project} name={name} />
      </div>
      <Section id="runs" title="Runs">
        {runs.error ? (
          <p className="error" role="alert">{runs.error}</p>
        ) : !runs.data ? (
          <p className="muted">Loading…</p>
        ) : runs.data.length === 0 ? (
          <p className="muted">No runs yet.</p>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Steps done</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Error</th></tr>
              </thead>
              <tbody>
                {runs.data.map((r) => (
                  <tr key={r.id} data-run={r.id}>
                    <th scope="row"><Link to={paths.run(project, name, r.id)}>{r.id.slice(0, 8)}</Link></th>
                    <td><Badge tone={outcomeTone(r.state)}>{r.state}</Badge></td>
                    <td>{r.steps.filter((s) => s.outcome === 'success').length}/{r.steps.length}</td>
                    <td>{formatAge(r.start, now)} ago</td>
                    <td>{formatMs((r.end ? Date.parse(r.end) : now) - Date.parse(r.start))}</td>
                    <td className="wrap">{r.error ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </Page>
  );
}

function RunSection({ api, project, name }: { api: FunctionsApi; project: string; name: string }) {
  const flight = useRef(new SingleFlight()).current;
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseEventText(text);
    if (!parsed.ok) return setError(parsed.error);
    setBusy(true);
    await flight.run(async () => {
      try {
        setError(undefined);
        const d = await api.runPipeline(project, name, parsed.event);
        // The run gets its id when a worker picks the delivery up: follow it there.
        for (let i = 0; i < 100; i++) {
          const run = await api.runOf(project, name, d.id);
          if (run) return navigate(paths.run(project, name, run.id));
          await new Promise((r) => setTimeout(r, 100));
        }
        setError(`The run is queued (delivery ${d.id}) but has not started yet; it shows under Runs once it does.`);
      } catch (err) {
        setError((err as Error).message);
      } finally {
        setBusy(false);
      }
    });
  };
  return (
    <Section id="run" title="Run">
      <form className="form" onSubmit={submit}>
        <label htmlFor="run-input">Input of the first step (JSON; empty: null)</label>
        <textarea id="run-input" rows={3} value={text} onChange={(e) => setText(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={error ? 'run-error' : undefined} />
        {error && <p className="error" role="alert" id="run-error">{error}</p>}
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Starting…' : 'Run'}
          </button>
        </div>
      </form>
    </Section>
  );
}

export function PipelineRunPage({ project, name, run: runId }: { project: string; name: string; run: string }) {
  const api = useFunctionsApi();
  const pipelines = useLive<PipelineView>('Pipeline', project);
  const trace = usePolled((signal) => api.run(project, name, runId, signal), `${project}/${name}/${runId}`, 1_000);
  const pipeline = pipelines.items.find((p) => p.metadata.name === name);
  const run = trace.data;
  const steps = useMemo(() => (run ? traceRun(pipeline, run) : []), [pipeline, run]);
  return (
    <Page title={`Run ${runId.slice(0, 8)} of ${name}`} actions={<Link to={paths.pipeline(project, name)} className="button">Pipeline {name}</Link>}>
      {trace.error && <p className="error" role="alert">{trace.error}</p>}
      {!run ? (
        !trace.error && <p className="muted">Loading…</p>
      ) : (
        <>
          <div className="summary">
            <Badge tone={outcomeTone(run.state)}>
              <span className="visually-hidden">State: </span>
              <span data-testid="run-state">{run.state}</span>
            </Badge>
            <dl className="facts">
              <div><dt>Run</dt><dd><code>{run.id}</code></dd></div>
              <div><dt>Started</dt><dd>{formatTime(run.start)}</dd></div>
              <div><dt>Ended</dt><dd>{formatTime(run.end)}</dd></div>
              <div><dt>Deadline</dt><dd>{formatTime(run.deadline)}</dd></div>
            </dl>
          </div>
          {run.error && <p className="notice error">{run.error}</p>}
          <Section id="trace" title="Steps">
            <ol className="trace" data-testid="trace">
              {steps.map((s) => (
                <li key={s.name} data-step={s.name} data-state={s.state}>
                  <p>
                    <strong>{s.name}</strong> <Badge tone={outcomeTone(s.state)}>{s.state}</Badge>
                    {s.parallel && <span className="small muted"> parallel branches</span>}
                  </p>
                  <ul className="plain">
                    {s.branches.map((b) => (
                      <li key={b.branch ?? b.function} data-branch={b.branch ?? ''}>
                        {b.branch ? `${b.branch}: ` : ''}function <Link to={paths.function(project, b.function)}>{b.function}</Link>{' '}
                        {b.attempts > 0 && (
                          <span className="small">
                            — {b.state}, {b.attempts} attempt{b.attempts === 1 ? '' : 's'}, {formatMs(b.durationMs)}
                          </span>
                        )}
                        {b.error && <div className="small error">{b.error}</div>}
                        {b.activations.length > 0 && (
                          <ul className="plain attempts">
                            {b.activations.map((a) => (
                              <li key={a.id}>
                                attempt {a.attempt} <Badge tone={outcomeTone(a.outcome)}>{a.outcome}</Badge> <ActivationDetails api={api} project={project} activation={a} />
                              </li>
                            ))}
                          </ul>
                        )}
                      </li>
                    ))}
                  </ul>
                </li>
              ))}
            </ol>
          </Section>
          <div className="grid-2">
            <Section id="input" title="Input">
              <pre className="result">{showValue(run.input ?? null)}</pre>
            </Section>
            <Section id="output" title="Output">
              {run.state === 'succeeded' ? <pre className="result" data-testid="run-output">{showValue(run.output ?? null)}</pre> : <p className="muted">{run.state === 'running' ? 'Not done yet.' : 'None: the run failed.'}</p>}
            </Section>
          </div>
        </>
      )}
    </Page>
  );
}
