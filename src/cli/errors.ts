// Exit codes and the one place that turns any failure into a stderr message and an exit code.
import { MarinaApiError, MarinaConnectionError } from '../client/index.js';

export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  invalid: 5,
  unauthorized: 6,
  timeout: 7,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI itself detected, with the exit code it deserves. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.error) {
    super(message);
    this.name = 'CliError';
  }
}

export function exitCodeForHttp(code: number): number {
  if (code === 404) return EXIT.notFound;
  if (code === 409) return EXIT.conflict;
  if (code === 400 || code === 422) return EXIT.invalid;
  if (code === 401 || code === 403) return EXIT.unauthorized;
  return EXIT.error;
}

/** What the request was about, so messages can name the object like kubectl does. */
export interface ErrorSubject {
  kind?: string;
  name?: string;
}

/** An error together with the object the failed request was about. */
export class SubjectError extends Error {
  constructor(readonly inner: unknown, readonly subject: ErrorSubject) {
    super((inner as Error)?.message ?? String(inner));
    this.name = 'SubjectError';
  }
}

/** Runs `fn`; failures carry `subject` so the message can say `Cluster "demo" is invalid: ...`. */
export async function about<T>(subject: ErrorSubject, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SubjectError) throw err;
    throw new SubjectError(err, subject);
  }
}

/** The text after `error: ` (may span several lines) and the exit code. */
export function describeError(err: unknown, subject: ErrorSubject = {}): { message: string; exitCode: number } {
  if (err instanceof SubjectError) return describeError(err.inner, { ...err.subject, ...subject });
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  if (err instanceof MarinaConnectionError) {
    const refused = err.errorCode === 'ECONNREFUSED';
    const hint = refused
      ? `nothing listens there. Start a server with \`marina server\`, or point the CLI elsewhere with --server, MARINA_URL or \`marina login URL --token T\`.`
      : 'check the URL (--server, MARINA_URL or the current context) and that the server is running (`marina server`).';
    const what = refused ? `cannot connect to the Marina server at ${err.server} (connection refused)` : err.message;
    return { message: `${what}\n${hint}`, exitCode: err.errorCode === 'ETIMEDOUT' ? EXIT.timeout : EXIT.error };
  }
  if (err instanceof MarinaApiError) {
    const exitCode = exitCodeForHttp(err.code);
    if (err.code === 422 && err.causes.length > 0) {
      const who = subject.kind && subject.name ? `${subject.kind} "${subject.name}" is invalid` : 'invalid input';
      if (err.causes.length === 1) {
        const c = err.causes[0]!;
        return { message: `${who}: ${c.field}: ${c.message}`, exitCode };
      }
      return { message: `${who}:\n${err.causes.map((c) => `  * ${c.field}: ${c.message}`).join('\n')}`, exitCode };
    }
    let message = err.message;
    if (err.field && err.code === 400 && !message.includes(err.field)) message = `${err.field}: ${message}`;
    if (err.code === 401) message += '\nlog in again with `marina login URL --token T`, or pass --token / MARINA_TOKEN.';
    return { message, exitCode };
  }
  const e = err as Error;
  return { message: e?.message ?? String(err), exitCode: EXIT.error };
}
