// One error shape for every API failure, modelled on Kubernetes' metav1.Status: a numeric HTTP
// code, a machine-readable reason, a human message, and the offending field paths when the
// request itself was at fault.

export type ErrorReason =
  | 'BadRequest'
  | 'Invalid'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Unauthorized'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'UnsupportedMediaType'
  | 'RequestEntityTooLarge'
  | 'InternalError';

export interface FieldCause {
  /** JSON-path-like location of the bad value, e.g. `spec.nodePools[0].replicas`. */
  field: string;
  message: string;
}

export interface Status {
  kind: 'Status';
  code: number;
  reason: ErrorReason;
  message: string;
  /** First offending field, repeated from `causes` for clients that read only one. */
  field?: string;
  causes?: FieldCause[];
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: ErrorReason,
    message: string,
    readonly causes: FieldCause[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    const status: Status = { kind: 'Status', code: this.code, reason: this.reason, message: this.message };
    if (this.causes.length > 0) {
      status.field = this.causes[0]!.field;
      status.causes = this.causes;
    }
    return status;
  }

  static badRequest(message: string, field?: string): ApiError {
    return new ApiError(400, 'BadRequest', message, field ? [{ field, message }] : []);
  }
  static invalid(causes: FieldCause[]): ApiError {
    const summary = causes.map((c) => `${c.field}: ${c.message}`).join('; ');
    return new ApiError(422, 'Invalid', `invalid object: ${summary}`, causes);
  }
  static invalidField(field: string, message: string): ApiError {
    return ApiError.invalid([{ field, message }]);
  }
  static notFound(kind: string, name: string): ApiError {
    return new ApiError(404, 'NotFound', `${kind} "${name}" not found`);
  }
  static alreadyExists(kind: string, name: string): ApiError {
    return new ApiError(409, 'AlreadyExists', `${kind} "${name}" already exists`, [
      { field: 'metadata.name', message: 'already exists' },
    ]);
  }
  static conflict(kind: string, name: string, detail: string): ApiError {
    return new ApiError(409, 'Conflict', `operation on ${kind} "${name}" conflicts: ${detail}`, [
      { field: 'metadata.resourceVersion', message: detail },
    ]);
  }
  static gone(message: string): ApiError {
    return new ApiError(410, 'Gone', message, [{ field: 'resourceVersion', message }]);
  }
  static unauthorized(message = 'missing or invalid bearer token'): ApiError {
    return new ApiError(401, 'Unauthorized', message);
  }
  static forbidden(message: string): ApiError {
    return new ApiError(403, 'Forbidden', message);
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}
