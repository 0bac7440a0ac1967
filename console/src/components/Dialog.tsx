// A modal confirmation built on <dialog>: showModal() traps focus and closes on Escape; focus goes
// back to whatever opened it. With `confirmText`, the confirm button stays disabled until that
// exact text is typed (deleting a cluster asks for its name).
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';

export interface ConfirmDialogProps {
  open: boolean;
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  /** Text the user must type to enable the confirm button. */
  confirmText?: string;
  danger?: boolean;
  onConfirm(): Promise<void>;
  onClose(): void;
}

export function ConfirmDialog({ open, title, children, confirmLabel, confirmText, danger, onConfirm, onClose }: ConfirmDialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);
  const guard = useRef(new SingleFlight());
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const id = useId();

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement;
      setTyped('');
      setError(undefined);
      d.showModal();
    } else if (!open && d.open) {
      d.close();
    }
  }, [open]);

  const close = () => {
    onClose();
    const back = opener.current as HTMLElement | null;
    if (back && typeof back.focus === 'function' && document.contains(back)) back.focus();
  };

  const confirm = async () => {
    if (confirmText !== undefined && typed !== confirmText) return;
    try {
      await guard.current.run(async () => {
        setBusy(true);
        try {
          await onConfirm();
        } finally {
          setBusy(false);
        }
      });
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const enabled = !busy && (confirmText === undefined || typed === confirmText);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={`${id}-title`}
      onCancel={(e) => {
        e.preventDefault();
        close();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          void confirm();
        }}
      >
        <h2 id={`${id}-title`}>{title}</h2>
        {children}
        {confirmText !== undefined && (
          <p>
            <label htmlFor={`${id}-confirm`}>
              Type <strong>{confirmText}</strong> to confirm
            </label>
            <input id={`${id}-confirm`} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" autoFocus spellCheck={false} />
          </p>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <div className="dialog-actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" className={danger ? 'danger' : 'primary'} disabled={!enabled}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
