import { WireError, wireErrorName } from './codes.js';
import type { SchemaViolation } from './results.js';

/**
 * Base class of every error this project raises on purpose. `code` is stable
 * and listed in docs/errors.md; `cause` keeps the underlying error.
 */
export class VitefaError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A violation of the wire protocol found while decoding, or one that a peer
 * reported. `status` is the wire code to send (or that was received).
 */
export class ProtocolError extends VitefaError {
  readonly status: WireError;
  /** THROTTLED: how long the peer should wait before trying again (sent as the Error frame's `retry`). */
  readonly retryMs: number | undefined;
  constructor(status: WireError, message: string, options?: { cause?: unknown; retryMs?: number }) {
    super(`E_PROTOCOL_${wireErrorName(status) ?? status}`, message, options);
    this.status = status;
    this.retryMs = options?.retryMs;
  }
}

/** Local error codes (string) raised outside the wire protocol; see docs/errors.md. */
export const LocalErrorCode = {
  /** Connecting or the handshake did not complete in time. */
  CONNECT_TIMEOUT: 'E_CONNECT_TIMEOUT',
  /** The connection closed before an answer arrived. */
  CONNECTION_CLOSED: 'E_CONNECTION_CLOSED',
  /** A request got no answer in time. */
  REQUEST_TIMEOUT: 'E_REQUEST_TIMEOUT',
  /** A request was not sent: as many as allowed already wait for their answers on this connection. */
  QUEUE_FULL: 'E_QUEUE_FULL',
  /** A write was sent and its answer never came (no answer in time, or the connection was lost): it may or may not have been applied. */
  OUTCOME_UNKNOWN: 'E_OUTCOME_UNKNOWN',
  /** A command line or configuration file is invalid. */
  USAGE: 'E_USAGE',
  /** The local agent store does not exist or cannot be opened. */
  STORE_OPEN: 'E_STORE_OPEN',
  /** The local agent store is full and could not grow. */
  STORE_FULL: 'E_STORE_FULL',
  /** The server's store (LMDB folder or MySQL database) failed. */
  STORE_FAILED: 'E_STORE_FAILED',
  /** The database schema is newer than this build knows. */
  SCHEMA_TOO_NEW: 'E_SCHEMA_TOO_NEW',
  /** A file handed to a command could not be read or parsed. */
  BAD_FILE: 'E_BAD_FILE',
  /** The environment or key is not in the local agent store. */
  NOT_FOUND: 'E_NOT_FOUND',
  /** This client and the server speak different protocol versions (the agent stops). */
  VERSION_MISMATCH: 'E_VERSION_MISMATCH',
  /** The agent follows an environment its token does not grant (the agent stops). */
  FORBIDDEN: 'E_FORBIDDEN',
  /** The server's store refused it for good: wrong credentials, a database it may not use, a data folder in use by another server. */
  STORE_REFUSED: 'E_STORE_REFUSED',
} as const;
export type LocalErrorCode = (typeof LocalErrorCode)[keyof typeof LocalErrorCode];

/** An error frame sent by the remote peer (kept apart from errors raised locally). */
export class RemoteError extends VitefaError {
  readonly status: number;
  /** The Error frame's `retry`: the peer asks to be tried again after this many milliseconds. */
  readonly retryMs: number | undefined;
  /** SCHEMA_VIOLATION: the violations the Error frame listed (`v`). */
  readonly violations: SchemaViolation[] | undefined;
  /** SCHEMA_VIOLATION: violations left out of `violations` (the frame's `more`). */
  readonly more: number | undefined;
  constructor(status: number, message: string, retryMs?: number, schema?: { violations?: SchemaViolation[]; more?: number }) {
    super(`E_REMOTE_${wireErrorName(status) ?? status}`, message);
    this.status = status;
    this.retryMs = retryMs;
    this.violations = schema?.violations;
    this.more = schema?.more;
  }
}
