import { useRef, useState, type FormEvent } from 'react';
import { API_VERSION } from '../../../src/client/index.js';
import { formErrors, NO_ERRORS, type FormErrors } from '../../../src/console-lib/form-errors.js';
import { formatTime, urlHost } from '../../../src/console-lib/format.js';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';
import type { ChannelView } from '../../../src/console-lib/types.js';
import { useApplyLocally, useLive, useRole, useSession } from '../session.js';
import { FieldError, fieldProps, focusFirstError, ListState, Page, Section } from '../components/ui.js';
import { ConfirmDialog } from '../components/Dialog.js';

const FORM = 'channel';
const FIELDS = ['metadata.name', 'spec.type', 'spec.url', 'spec.rules', 'spec.minSeverity', 'spec.sendResolved'];

export function ChannelsPage({ project }: { project: string }) {
  const channels = useLive<ChannelView>('NotificationChannel', project);
  const { client, registry } = useSession();
  const role = useRole(project);
  const [deleting, setDeleting] = useState<string>();
  return (
    <Page title={`Notification channels of ${project}`} live={channels}>
      <p className="muted">
        Every change of the project’s alerts that passes a channel’s filters is sent to it: <code>webhook</code> in the Alertmanager webhook format,{' '}
        <code>slack</code> as a Slack-compatible message. Changing channels needs the project’s admin role{role ? ` (yours: ${role})` : ''}.
      </p>
      <ListState live={channels} empty="No notification channels yet: alerts are shown here but sent nowhere.">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">URL</th>
              <th scope="col">Rules</th>
              <th scope="col">Minimum severity</th>
              <th scope="col">Resolved too</th>
              <th scope="col">Delivered</th>
              <th scope="col">Failed attempts</th>
              <th scope="col">Last error</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {channels.items.map((c) => (
              <tr key={c.metadata.name} data-channel={c.metadata.name}>
                <th scope="row">{c.metadata.name}</th>
                <td>{c.spec?.type}</td>
                <td>
                  <code>{urlHost(c.spec?.url ?? '')}</code>
                </td>
                <td>{c.spec?.rules?.join(', ') ?? 'all'}</td>
                <td>{c.spec?.minSeverity ?? 'any'}</td>
                <td>{c.spec?.sendResolved === false ? 'no' : 'yes'}</td>
                <td>
                  {c.status?.delivered ?? 0}
                  {c.status?.lastDeliveredAt && <div className="small muted">{formatTime(c.status.lastDeliveredAt)}</div>}
                </td>
                <td>{c.status?.failedAttempts ?? 0}</td>
                <td className="wrap">{c.status?.lastError ?? ''}</td>
                <td>
                  <button type="button" className="danger" onClick={() => setDeleting(c.metadata.name)} aria-label={`Delete channel ${c.metadata.name}`}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </ListState>
      <ConfirmDialog
        open={deleting !== undefined}
        title={`Delete channel ${deleting ?? ''}?`}
        confirmLabel="Delete channel"
        danger
        onClose={() => setDeleting(undefined)}
        onConfirm={async () => {
          if (!deleting) return;
          const { object, removed } = await client.delete('NotificationChannel', deleting, project);
          const c = registry.acquire('NotificationChannel', project);
          c.apply({ type: removed ? 'DELETED' : 'MODIFIED', object });
          registry.release(c);
          setDeleting(undefined);
        }}
      >
        <p>Alerts are no longer sent to it. Their delivery logs keep its name.</p>
      </ConfirmDialog>
      <CreateChannel project={project} />
    </Page>
  );
}

interface ChannelForm {
  name: string;
  type: string;
  url: string;
  rules: string;
  minSeverity: string;
  sendResolved: boolean;
}

const EMPTY: ChannelForm = { name: '', type: 'webhook', url: '', rules: '', minSeverity: '', sendResolved: true };

function CreateChannel({ project }: { project: string }) {
  const { client } = useSession();
  const applyLocally = useApplyLocally();
  const [form, setForm] = useState<ChannelForm>(EMPTY);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<string>();
  const guard = useRef(new SingleFlight());
  const formEl = useRef<HTMLFormElement>(null);
  const fe = errors.fields;
  const set = (field: string, patch: Partial<ChannelForm>) => {
    setForm((f) => ({ ...f, ...patch }));
    setCreated(undefined);
    if (fe[field]) {
      const { [field]: _gone, ...rest } = fe;
      setErrors({ ...errors, fields: rest });
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const rules = form.rules.split(/[\s,]+/).filter(Boolean);
    const body = {
      apiVersion: API_VERSION,
      kind: 'NotificationChannel',
      metadata: { name: form.name.trim(), project },
      spec: {
        type: form.type,
        url: form.url.trim(),
        sendResolved: form.sendResolved,
        ...(rules.length > 0 ? { rules } : {}),
        ...(form.minSeverity ? { minSeverity: form.minSeverity } : {}),
      },
    };
    try {
      const r = await guard.current.run(async () => {
        setBusy(true);
        setErrors(NO_ERRORS);
        try {
          return await client.create(body);
        } finally {
          setBusy(false);
        }
      });
      if (r.ran) {
        applyLocally(r.value, 'ADDED');
        setForm(EMPTY);
        setCreated(r.value.metadata.name);
      }
    } catch (err) {
      setErrors(formErrors(err, FIELDS));
      requestAnimationFrame(() => focusFirstError(formEl.current));
    }
  };

  return (
    <Section id="create-channel" title="Add a channel">
      <form ref={formEl} onSubmit={submit} noValidate className="form">
        {errors.general && (
          <p className="error" role="alert" tabIndex={-1}>
            {errors.general}
          </p>
        )}
        {created && (
          <p className="notice success" role="status">
            Channel {created} created.
          </p>
        )}
        <div className="row">
          <div className="field">
            <label htmlFor="ch-name">Channel name</label>
            <input id="ch-name" value={form.name} onChange={(e) => set('metadata.name', { name: e.target.value })} autoComplete="off" spellCheck={false} {...fieldProps(FORM, 'metadata.name', fe)} />
            <FieldError form={FORM} field="metadata.name" errors={fe} />
          </div>
          <div className="field">
            <label htmlFor="ch-type">Type</label>
            <select id="ch-type" value={form.type} onChange={(e) => set('spec.type', { type: e.target.value })} {...fieldProps(FORM, 'spec.type', fe)}>
              <option value="webhook">webhook (Alertmanager format)</option>
              <option value="slack">slack</option>
            </select>
            <FieldError form={FORM} field="spec.type" errors={fe} />
          </div>
          <div className="field grow">
            <label htmlFor="ch-url">URL</label>
            <input
              id="ch-url"
              value={form.url}
              onChange={(e) => set('spec.url', { url: e.target.value })}
              placeholder="https://alerts.example/hook"
              autoComplete="off"
              spellCheck={false}
              {...fieldProps(FORM, 'spec.url', fe, 'ch-url-help')}
            />
            <p id="ch-url-help" className="help">
              Stored encrypted; <code>user:password@</code> becomes Basic authentication.
            </p>
            <FieldError form={FORM} field="spec.url" errors={fe} />
          </div>
        </div>
        <div className="row">
          <div className="field">
            <label htmlFor="ch-rules">Rules</label>
            <input
              id="ch-rules"
              value={form.rules}
              onChange={(e) => set('spec.rules', { rules: e.target.value })}
              placeholder="all rules"
              autoComplete="off"
              spellCheck={false}
              {...fieldProps(FORM, 'spec.rules', fe, 'ch-rules-help')}
            />
            <p id="ch-rules-help" className="help">
              Optional, separated by commas, e.g. ComponentUnhealthy, NodeNotReady.
            </p>
            <FieldError form={FORM} field="spec.rules" errors={fe} />
          </div>
          <div className="field">
            <label htmlFor="ch-sev">Minimum severity</label>
            <select id="ch-sev" value={form.minSeverity} onChange={(e) => set('spec.minSeverity', { minSeverity: e.target.value })} {...fieldProps(FORM, 'spec.minSeverity', fe)}>
              <option value="">any</option>
              <option value="info">info</option>
              <option value="warning">warning</option>
              <option value="critical">critical</option>
            </select>
            <FieldError form={FORM} field="spec.minSeverity" errors={fe} />
          </div>
          <div className="field">
            <label className="check">
              <input type="checkbox" checked={form.sendResolved} onChange={(e) => set('spec.sendResolved', { sendResolved: e.target.checked })} />
              Also send resolved alerts
            </label>
          </div>
        </div>
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Adding…' : 'Add channel'}
          </button>
        </div>
      </form>
    </Section>
  );
}
