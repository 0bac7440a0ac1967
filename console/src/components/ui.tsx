// Small shared pieces: page frame, badges, the live indicator, form fields with the API's errors.
import { useEffect, useRef, type ReactNode } from 'react';
import type { LiveSnapshot } from '../../../src/console-lib/live.js';
import { errorId } from '../../../src/console-lib/form-errors.js';
import type { Tone } from '../../../src/console-lib/summary.js';

/** A page: sets the document title and moves focus to the heading when the page changes. */
export function Page({ title, actions, children, live }: { title: ReactNode; actions?: ReactNode; children: ReactNode; live?: LiveSnapshot<unknown> }) {
  const h1 = useRef<HTMLHeadingElement>(null);
  const text = typeof title === 'string' ? title : '';
  useEffect(() => {
    if (text) document.title = `${text} · Marina`;
  }, [text]);
  useEffect(() => {
    // Screen reader and keyboard users land on the new page's heading, as after a page load.
    if (document.activeElement === document.body || document.activeElement?.closest('nav')) h1.current?.focus();
  }, [text]);
  return (
    <>
      <div className="page-head">
        <h1 tabIndex={-1} ref={h1}>
          {title}
        </h1>
        {live && <LiveStatus live={live} />}
        {actions && <div className="actions">{actions}</div>}
      </div>
      {children}
    </>
  );
}

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

/** "Live", "Reconnecting…" or the error of a live collection, announced politely. */
export function LiveStatus({ live }: { live: LiveSnapshot<unknown> }) {
  const label =
    live.state === 'live'
      ? 'Live'
      : live.state === 'connecting'
        ? 'Connecting…'
        : live.state === 'reconnecting'
          ? 'Reconnecting…'
          : `Not updating: ${live.error ?? 'error'}`;
  return (
    <span className={`live live-${live.state}`} role="status" title={live.state === 'reconnecting' ? live.error : undefined}>
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}

/** Loading / error / empty states of a list, or the list itself. */
export function ListState({ live, empty, children }: { live: LiveSnapshot<unknown>; empty: ReactNode; children: ReactNode }) {
  if (live.state === 'error') return <p className="error" role="alert">{live.error}</p>;
  if (!live.synced) return <p className="muted">Loading…</p>;
  if (live.items.length === 0) return <p className="muted">{empty}</p>;
  return <div className="table-wrap">{children}</div>;
}

/** The API's message for a field, referenced by the input's aria-describedby. */
export function FieldError({ form, field, errors }: { form: string; field: string; errors: Record<string, string> }) {
  const msg = errors[field];
  if (!msg) return null;
  return (
    <p className="field-error" id={errorId(form, field)}>
      {msg}
    </p>
  );
}

/** Props that tie an input to its error message (aria-invalid, aria-describedby). */
export function fieldProps(form: string, field: string, errors: Record<string, string>, help?: string): { 'aria-invalid'?: true; 'aria-describedby'?: string; 'data-field': string } {
  const ids = [help, errors[field] ? errorId(form, field) : undefined].filter(Boolean).join(' ');
  return {
    ...(errors[field] ? { 'aria-invalid': true as const } : {}),
    ...(ids ? { 'aria-describedby': ids } : {}),
    'data-field': field,
  };
}

/** After a failed submit: focus the first input with an error, or the general error. */
export function focusFirstError(form: HTMLFormElement | null): void {
  if (!form) return;
  const el = form.querySelector<HTMLElement>('[aria-invalid="true"], [role="alert"]');
  el?.focus();
}

export function Section({ id, title, children, actions }: { id: string; title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section aria-labelledby={`${id}-title`} id={id} className="section">
      <div className="section-head">
        <h2 id={`${id}-title`}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}
