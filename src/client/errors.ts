// The two ways a call fails: the server answered with an error (its `Status` body, or one
// synthesized from the response), or it could not be reached at all.
import type { FieldCause, Status } from '../api/errors.js';

/** An error answer of the API (the server's `Status` body, or one synthesized from the response). */
export class MarinaApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly causes: FieldCause[];
  readonly field?: string;

  constructor(readonly status: Status, readonly method?: string, readonly url?: string) {
    super(status.message);
    this.name = 'MarinaApiError';
    this.code = status.code;
    this.reason = status.reason;
    this.causes = status.causes ?? (status.field ? [{ field: status.field, message: status.message }] : []);
    this.field = status.field ?? this.causes[0]?.field;
  }
}

/** The server could not be reached at all (refused, DNS, TLS, reset before an answer). */
export class MarinaConnectionError extends Error {
  constructor(readonly server: string, readonly errorCode: string | undefined, message: string) {
    super(message);
    this.name = 'MarinaConnectionError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof MarinaApiError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof MarinaApiError && err.code === 409 && err.reason === 'Conflict';
}


export function isStatus(v: unknown): v is Status {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

export async function errorFromResponse(res: Response, method: string, url: string): Promise<MarinaApiError> {
  const text = await res.text().catch(() => '');
  let status: Status | undefined;
  try {
    const parsed = JSON.parse(text) as Partial<Status>;
    if (parsed && typeof parsed === 'object' && typeof parsed.message === 'string') {
      status = { ...parsed, kind: 'Status', code: parsed.code ?? res.status, reason: parsed.reason ?? reasonFor(res.status) } as Status;
    }
  } catch {
    /* not JSON */
  }
  status ??= {
    kind: 'Status',
    code: res.status,
    reason: reasonFor(res.status),
    message: text.trim().slice(0, 500) || `${method} ${new URL(url).pathname}: HTTP ${res.status} ${res.statusText}`,
  } as Status;
  return new MarinaApiError(status, method, url);
}

function reasonFor(code: number): Status['reason'] {
  switch (code) {
    case 400: return 'BadRequest';
    case 401: return 'Unauthorized';
    case 403: return 'Forbidden';
    case 404: return 'NotFound';
    case 409: return 'Conflict';
    case 410: return 'Gone';
    case 415: return 'UnsupportedMediaType';
    case 422: return 'Invalid';
    default: return 'InternalError';
  }
}
