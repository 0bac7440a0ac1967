// Functions of a project: the list, one function (revision, Ready, triggers, limits, instances,
// an invoke form, its activations with logs) and the dead-letter list with replay.
import { useRef, useState, type FormEvent } from 'react';
import { MarinaApiError, type FunctionsApi, type Invocation } from '../../../src/client/index.js';
import { formatAge, formatTime } from '../../../src/console-lib/format.js';
import { errorHeadline, functionOverview, limitRows, outcomeTone, parseEventText, showValue, triggerLines, type FunctionView } from '../../../src/console-lib/functions.js';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';
import { Link, paths } from '../router.js';
import { usePolled } from '../poll.js';
import { useFunctionsApi, useLive, useNow, useRole } from '../session.js';
import { ActivationTable } from '../components/Activations.js';
import { Badge, ListState, Page, Section } from '../components/ui.js';

export function FunctionsPage({ project }: { project: string }) {
  const fns = useLive<FunctionView>('Function', project);
  const now = useNow();
  return (
    <Page title={`Functions in ${project}`} live={fns} actions={<Link to={paths.deadLetters(project)} className="button">Dead letters</Link>}>
      <p className="muted">
        Functions run in a sandbox on HTTP calls, cron schedules and events, and scale to zero. Deploy them with <code>marina function deploy -f FILE</code> or
        through the API.
      </p>
      <ListState live={fns} empty="No functions in this project yet.">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Ready</th>
              <th scope="col">Revision</th>
              <th scope="col">Triggers</th>
              <th scope="col">HTTP</th>
              <th scope="col">Age</th>
            </tr>
          </thead>
          <tbody>
            {fns.items.map((f) => {
              const o = functionOverview(f);
              const triggers = triggerLines(f.spec, { project, name: f.metadata.name });
              return (
                <tr key={f.metadata.name} data-function={f.metadata.name}>
                  <th scope="row">
                    <Link to={paths.function(project, f.metadata.name)}>{f.metadata.name}</Link>
                  </th>
                  <td>
                    <Badge tone={o.tone}>{o.ready === 'True' ? 'Ready' : o.ready === 'False' ? (o.readyReason ?? 'Not ready') : 'Pending'}</Badge>
                  </td>
                  <td>{o.revision ?? '-'}</td>
                  <td>{triggers.length === 0 ? <span className="muted">none (invoke only)</span> : triggers.map((t) => (t.kind === 'http' ? 'HTTP' : `${t.kind} ${t.name}`)).join(', ')}</td>
                  <td>{o.url ? <code>{o.url}</code> : '-'}</td>
                  <td>{formatAge(f.metadata.creationTimestamp, now)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </ListState>
    </Page>
  );
}

export function FunctionPage({ project, name }: { project: string; name: string }) {
  const fns = useLive<FunctionView>('Function', project);
  const api = useFunctionsApi();
  const fn = fns.items.find((f) => f.metadata.name === name);
  const activations = usePolled((signal) => api.activations(project, name, { limit: 50, signal }), `${project}/${name}`);
  const instances = usePolled((signal) => api.instances(project, name, signal), `${project}/${name}`);

  if (fns.state === 'error') return <Page title={name}><p className="error" role="alert">{fns.error}</p></Page>;
  if (!fns.synced) return <Page title={name}><p className="muted">Loading…</p></Page>;
  if (!fn) {
    return (
      <Page title={name}>
        <p>
          There is no function <strong>{name}</strong> in project {project} (any more). <Link to={paths.functions(project)}>Back to the functions</Link>
        </p>
      </Page>
    );
  }
  const o = functionOverview(fn);
  const triggers = triggerLines(fn.spec, { project, name });
  const env = [...Object.keys(fn.spec?.env ?? {}), ...(fn.spec?.secretEnv ?? []).map((s) => `${s.name} (from secret ${s.secret})`)];
  return (
    <Page title={`Function ${name}`} live={fns}>
      <div className="summary">
        <Badge tone={o.tone}>
          <span className="visually-hidden">Ready: </span>
          <span data-testid="ready">{o.ready === 'True' ? 'Ready' : o.ready === 'False' ? 'Not ready' : 'Pending'}</span>
        </Badge>
        <dl className="facts">
          <div><dt>Revision</dt><dd data-testid="revision">{o.revision ?? '-'}</dd></div>
          <div><dt>Latest spec</dt><dd>generation {o.generation}{o.current ? '' : ' (not running yet)'}</dd></div>
          <div><dt>Language</dt><dd>{fn.spec?.source?.language ?? 'javascript'}{fn.spec?.source?.files ? `, bundle (entry ${fn.spec.source.entry})` : ''}</dd></div>
          <div><dt>HTTP</dt><dd>{o.url ? <code>{o.url}</code> : 'off'}</dd></div>
          <div><dt>Created</dt><dd>{formatTime(fn.metadata.creationTimestamp)}</dd></div>
        </dl>
      </div>
      {o.readyMessage && <p className={o.ready === 'False' ? 'notice error' : 'muted small'}>{o.readyReason}: {o.readyMessage}</p>}

      <div className="grid-2">
        <Section id="triggers" title="Triggers">
          {triggers.length === 0 ? (
            <p className="muted">No triggers: only API calls run it.</p>
          ) : (
            <ul className="plain" data-testid="triggers">
              {triggers.map((t) => (
                <li key={`${t.kind}/${t.name}`}>
                  <strong>{t.kind === 'http' ? 'HTTP' : `${t.kind} ${t.name}`}</strong>: {t.detail}
                </li>
              ))}
            </ul>
          )}
        </Section>
        <Section id="limits" title="Limits">
          <dl className="facts">
            {limitRows(fn.spec).map(([k, v]) => (
              <div key={k}><dt>{k}</dt><dd>{v}</dd></div>
            ))}
            <div><dt>Environment</dt><dd>{env.length > 0 ? env.join(', ') : 'none'}</dd></div>
          </dl>
        </Section>
      </div>

      <div className="grid-2">
        <Section id="instances" title="Instances">
          {instances.error ? (
            <p className="error" role="alert">{instances.error}</p>
          ) : !instances.data ? (
            <p className="muted">Loading…</p>
          ) : instances.data.length === 0 ? (
            <p className="muted" data-testid="instances">None: scaled to zero. The next call starts one (a cold start).</p>
          ) : (
            <table className="inner" data-testid="instances">
              <thead>
                <tr><th scope="col">Instance</th><th scope="col">Revision</th><th scope="col">State</th><th scope="col">In flight</th><th scope="col">Idle</th></tr>
              </thead>
              <tbody>
                {instances.data.map((i) => (
                  <tr key={i.id}>
                    <td><code>{i.id}</code></td>
                    <td>{i.revision}</td>
                    <td><Badge tone={i.state === 'ready' ? 'ok' : 'warn'}>{i.state}</Badge></td>
                    <td>{i.inFlight}</td>
                    <td>{i.idleSeconds} s</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Section>
        <InvokeSection
          api={api}
          project={project}
          name={name}
          onDone={() => {
            activations.refresh();
            instances.refresh();
          }}
        />
      </div>

      <Section id="activations" title="Activations">
        {activations.error ? (
          <p className="error" role="alert">{activations.error}</p>
        ) : !activations.data ? (
          <p className="muted">Loading…</p>
        ) : activations.data.length === 0 ? (
          <p className="muted">No activations yet.</p>
        ) : (
          <div className="table-wrap">
            <ActivationTable api={api} project={project} items={activations.data} />
          </div>
        )}
      </Section>
    </Page>
  );
}

function InvokeSection({ api, project, name, onDone }: { api: FunctionsApi; project: string; name: string; onDone: () => void }) {
  const role = useRole(project);
  const flight = useRef(new SingleFlight()).current;
  const [busy, setBusy] = useState(false);
  const [text, setText] = useState('');
  const [error, setError] = useState<string>();
  const [result, setResult] = useState<Invocation>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseEventText(text);
    if (!parsed.ok) return setError(parsed.error);
    setBusy(true);
    const r = await flight.run(async () => {
      try {
        setError(undefined);
        setResult(await api.invoke(project, name, parsed.event));
      } catch (err) {
        setResult(undefined);
        setError(err instanceof MarinaApiError ? err.message : (err as Error).message);
      } finally {
        onDone();
      }
    });
    if (r.ran) setBusy(false);
  };
  return (
    <Section id="invoke" title="Invoke">
      <form className="form" onSubmit={submit} aria-describedby="invoke-help">
        <label htmlFor="invoke-event">Event (JSON; empty: null)</label>
        <textarea id="invoke-event" rows={4} value={text} onChange={(e) => setText(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={error ? 'invoke-error' : undefined} />
        <p id="invoke-help" className="help">
          Calls the function through the API and waits for its result. Needs the member role{role ? ` (yours: ${role})` : ''}.
        </p>
        {error && <p className="error" role="alert" id="invoke-error">{error}</p>}
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Invoking…' : 'Invoke'}
          </button>
        </div>
      </form>
      {result && (
        <div role="status" data-testid="invoke-result" data-outcome={result.activation.outcome}>
          <p>
            <Badge tone={outcomeTone(result.activation.outcome)}>{result.activation.outcome}</Badge> activation <code>{result.activation.id.slice(0, 8)}</code>
            {result.activation.coldStart ? ' (cold start)' : ''}
            {result.activation.outcome !== 'success' && <span className="error"> {errorHeadline(result.activation.error)}</span>}
          </p>
          {result.activation.outcome === 'success' && <pre className="result">{showValue(result.result)}</pre>}
        </div>
      )}
    </Section>
  );
}

export function DeadLettersPage({ project }: { project: string }) {
  const api = useFunctionsApi();
  const letters = usePolled((signal) => api.deadLetters(project, { limit: 200, signal }), project, 3_000);
  const flight = useRef(new SingleFlight()).current;
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string }>();
  const now = useNow();
  const replay = async (id: string) => {
    await flight.run(async () => {
      try {
        const d = await api.replay(project, id);
        setMessage({ tone: 'ok', text: `Dead letter ${id.slice(0, 8)} queued again: ${d.target.kind.toLowerCase()} ${d.target.name} runs with fresh attempts.` });
      } catch (err) {
        setMessage({ tone: 'bad', text: (err as Error).message });
      } finally {
        letters.refresh();
      }
    });
  };
  return (
    <Page title={`Dead letters in ${project}`} actions={<Link to={paths.functions(project)} className="button">Functions</Link>}>
      <p className="muted">
        Asynchronous calls (cron, events, queued HTTP and API calls) and pipeline runs that failed their last attempt. Replaying one queues it again, with
        fresh attempts, on the current revision.
      </p>
      {message && (
        <p className={message.tone === 'ok' ? 'notice success' : 'error'} role={message.tone === 'ok' ? 'status' : 'alert'}>
          {message.text}
        </p>
      )}
      {letters.error ? (
        <p className="error" role="alert">{letters.error}</p>
      ) : !letters.data ? (
        <p className="muted">Loading…</p>
      ) : letters.data.length === 0 ? (
        <p className="muted">No dead letters: every asynchronous call succeeded or is still being retried.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Target</th>
                <th scope="col">Trigger</th>
                <th scope="col">Attempts</th>
                <th scope="col">Created</th>
                <th scope="col">Last error</th>
                <th scope="col">Event</th>
                <th scope="col"><span className="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {letters.data.map((d) => (
                <tr key={d.id} data-deadletter={d.id}>
                  <th scope="row">
                    <Link to={d.target.kind === 'Function' ? paths.function(project, d.target.name) : paths.pipeline(project, d.target.name)}>
                      {d.target.kind.toLowerCase()} {d.target.name}
                    </Link>
                  </th>
                  <td>{d.trigger.type}{d.trigger.name ? `: ${d.trigger.name}` : ''}</td>
                  <td>{d.attempts}/{d.maxAttempts}</td>
                  <td>{formatAge(d.createdAt, now)} ago</td>
                  <td className="wrap">{errorHeadline(d.lastError)}</td>
                  <td>
                    <details>
                      <summary>show</summary>
                      <pre className="result">{showValue(d.event ?? null)}</pre>
                    </details>
                  </td>
                  <td>
                    <button type="button" onClick={() => void replay(d.id)} aria-label={`Replay dead letter ${d.id}`}>
                      Replay
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}

