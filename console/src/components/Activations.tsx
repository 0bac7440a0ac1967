// An activation as a table row that opens to its details and log lines (read when opened: lists
// leave the logs out).
import { useState } from 'react';
import type { Activation, FunctionsApi } from '../../../src/client/index.js';
import { formatMs, formatTime } from '../../../src/console-lib/format.js';
import { errorHeadline, outcomeTone, showValue } from '../../../src/console-lib/functions.js';
import { Badge } from './ui.js';

export function ActivationTable({ api, project, items, showFunction = false }: { api: FunctionsApi; project: string; items: readonly Activation[]; showFunction?: boolean }) {
  return (
    <table className="activations">
      <thead>
        <tr>
          <th scope="col">Started</th>
          {showFunction && <th scope="col">Function</th>}
          <th scope="col">Trigger</th>
          <th scope="col">Revision</th>
          <th scope="col">Outcome</th>
          <th scope="col">Duration</th>
          <th scope="col">Cold start</th>
          <th scope="col">Details and logs</th>
        </tr>
      </thead>
      <tbody>
        {items.map((a) => (
          <ActivationRow key={a.id} api={api} project={project} activation={a} showFunction={showFunction} />
        ))}
      </tbody>
    </table>
  );
}

function ActivationRow({ api, project, activation: a, showFunction }: { api: FunctionsApi; project: string; activation: Activation; showFunction: boolean }) {
  return (
    <tr data-activation={a.id} data-outcome={a.outcome}>
      <td>{formatTime(a.start)}</td>
      {showFunction && <td>{a.function}</td>}
      <td>
        {a.trigger.type}
        {a.trigger.name ? `: ${a.trigger.name}` : ''}
        {a.attempt > 1 && <div className="small muted">attempt {a.attempt}</div>}
      </td>
      <td>{a.revision}</td>
      <td>
        <Badge tone={outcomeTone(a.outcome)}>{a.outcome}</Badge>
      </td>
      <td>{formatMs(a.durationMs)}</td>
      <td>{a.coldStart ? formatMs(a.coldStartMs) : 'no'}</td>
      <td className="wrap">
        <ActivationDetails api={api} project={project} activation={a} />
      </td>
    </tr>
  );
}

/** A disclosure that reads the activation with its logs when opened. */
export function ActivationDetails({ api, project, activation }: { api: FunctionsApi; project: string; activation: Activation }) {
  const [full, setFull] = useState<Activation>();
  const [error, setError] = useState<string>();
  const load = () => {
    if (full) return;
    api.activation(project, activation.id).then(setFull, (e: Error) => setError(e.message));
  };
  const a = full ?? activation;
  return (
    <details onToggle={(e) => (e.currentTarget.open ? load() : undefined)}>
      <summary>
        <code>{activation.id.slice(0, 8)}</code>
        {activation.outcome !== 'success' && activation.error && <span className="small error"> {errorHeadline(activation.error)}</span>}
      </summary>
      <dl className="facts small">
        <div><dt>Activation</dt><dd><code>{a.id}</code></dd></div>
        {a.idempotencyKey && <div><dt>Idempotency key</dt><dd><code>{a.idempotencyKey}</code></dd></div>}
        {a.deliveryId && <div><dt>Delivery</dt><dd><code>{a.deliveryId}</code></dd></div>}
        {a.pipelineRun && <div><dt>Pipeline run</dt><dd><code>{a.pipelineRun}</code>{a.step ? ` step ${a.step}` : ''}</dd></div>}
        <div><dt>Ended</dt><dd>{formatTime(a.end)}</dd></div>
      </dl>
      {a.outcome === 'success' ? (
        <>
          <h3 className="small">Result</h3>
          <pre className="result">{showValue(a.result ?? null)}</pre>
        </>
      ) : (
        <>
          <h3 className="small">Error</h3>
          <pre className="result error">{a.error ?? a.outcome}</pre>
        </>
      )}
      <h3 className="small">Logs</h3>
      {error ? (
        <p className="error" role="alert">{error}</p>
      ) : !full ? (
        <p className="muted">Loading…</p>
      ) : (full.logs ?? []).length === 0 ? (
        <p className="muted">No log lines.</p>
      ) : (
        <pre className="logs" data-testid="logs">
          {full.logs!.join('\n')}
          {full.logsTruncated ? '\n… (the log is bounded: later lines were dropped)' : ''}
        </pre>
      )}
    </details>
  );
}
