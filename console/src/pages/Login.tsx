import { useRef, useState, type FormEvent } from 'react';
import { SingleFlight } from '../../../src/console-lib/single-flight.js';
import { useAuth } from '../session.js';

export function LoginPage() {
  const { login, ended } = useAuth();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const guard = useRef(new SingleFlight());
  const input = useRef<HTMLInputElement>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await guard.current.run(async () => {
        setBusy(true);
        setError(undefined);
        try {
          await login(token);
        } finally {
          setBusy(false);
        }
      });
    } catch (err) {
      setError((err as Error).message);
      input.current?.focus();
    }
  };

  return (
    <main id="main" className="login">
      <h1>Log in to Marina</h1>
      {ended && (
        <p className="notice" role="status">
          {ended}
        </p>
      )}
      <form onSubmit={submit} noValidate>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          ref={input}
          type="password"
          autoComplete="current-password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'token-help token-error' : 'token-help'}
          autoFocus
        />
        <p id="token-help" className="help">
          The server prints the bootstrap admin token on its first start and writes it to <code>&lt;data dir&gt;/admin-token</code>;{' '}
          <code>marina token create</code> issues more. The token stays in this browser tab only.
        </p>
        {error && (
          <p id="token-error" className="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
