import { VitefaError, WireError, wireErrorName, type SchemaViolation } from '../protocol/index.js';

/** SCHEMA_VIOLATION: what failed (the Error frame's `v`), and how many more did. */
export interface ViolationDetails {
  v: SchemaViolation[];
  more: number;
}

/**
 * An error that answers an admin request: carries the wire status sent back
 * to the client. Thrown by stores and handlers alike.
 */
export class RequestError extends VitefaError {
  readonly status: WireError;
  readonly details: ViolationDetails | undefined;
  constructor(status: WireError, message: string, options?: { cause?: unknown; details?: ViolationDetails }) {
    super(`E_${wireErrorName(status) ?? status}`, message, options);
    this.status = status;
    this.details = options?.details;
  }
}

export const envNotFound = (env: string): RequestError =>
  new RequestError(WireError.ENV_NOT_FOUND, `environment ${env} does not exist (create it with: env add ${env})`);

export const keyNotFound = (env: string, key: string): RequestError =>
  new RequestError(WireError.KEY_NOT_FOUND, `key ${key} does not exist in ${env}`);

/** What an error answers with on the wire. */
export interface WireAnswer {
  status: WireError;
  message: string;
  /** Not a RequestError: a fault of this server, to be reported (with its stack) where it was caught. */
  fault: boolean;
  details?: ViolationDetails;
}

/**
 * The one mapping from errors to wire statuses: a RequestError answers with
 * its own status and message; anything else is INTERNAL with `faultMessage`,
 * since an internal error's own text may name internals and never goes over
 * the wire.
 */
export function wireAnswer(err: unknown, faultMessage: string): WireAnswer {
  if (err instanceof RequestError) return { status: err.status, message: err.message, fault: false, ...(err.details === undefined ? {} : { details: err.details }) };
  return { status: WireError.INTERNAL, message: faultMessage, fault: true };
}
