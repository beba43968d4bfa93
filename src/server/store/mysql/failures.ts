import { LocalErrorCode, VitefaError, WireError } from '../../../protocol/index.js';
import { RequestError } from '../../errors.js';
import type { StoredRelease } from '../types.js';
import { codeOf, DeadlinePassed } from './query.js';

/**
 * What a failure of the database means to the server: busy (retry), unreachable
 * (wait, serve from memory), refused at start (exit), or a write whose outcome is
 * unknown. Each function here names the database by its description, never its password.
 */

/** Errors on which a transaction is run again. */
export const RETRYABLE = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

/** Errors that mean the database cannot be used right now (as opposed to a bug in a statement). */
const UNAVAILABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND',
  'EAI_AGAIN', 'EPIPE', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'ER_CON_COUNT_ERROR', 'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN', 'ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR',
  'ER_HOST_IS_BLOCKED', 'ER_HOST_NOT_PRIVILEGED', 'ER_READ_ONLY_MODE', 'ER_OPTION_PREVENTS_STATEMENT',
  'ER_CONNECTION_KILLED', 'ER_QUERY_INTERRUPTED',
]);

/**
 * Answers at start that waiting will not change: the credentials are wrong,
 * the user may not use (or create) the database named, or this host is not
 * let in. A server exits on them; anything else unreachable is waited for.
 * (Later, while running, the same errors only make writes fail: the server
 * keeps serving from memory.)
 */
const REFUSED = new Set([
  'ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_HOST_NOT_PRIVILEGED',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR', 'ER_TABLEACCESS_DENIED_ERROR', 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
]);

/** A write whose COMMIT was sent and never answered: it may have committed. */
export class CommitUnanswered extends Error {
  constructor(readonly value: unknown, cause: unknown) {
    super('the commit was not answered', { cause });
  }
}

/** The connection died under the statement (as opposed to the statement failing). */
export function isLost(err: unknown): boolean {
  return (err as { fatal?: unknown } | null)?.fatal === true;
}

const isPoolClosed = (err: unknown): boolean => err instanceof Error && /^Pool is closed/.test(err.message);

/** An error raised by the driver or the database (not by a planner or by this store). */
function isDatabaseError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof VitefaError) return false;
  const e = err as { sqlState?: unknown; fatal?: unknown; errno?: unknown };
  return e.sqlState !== undefined || typeof e.fatal === 'boolean' || UNAVAILABLE.has(codeOf(err) ?? '') || isPoolClosed(err);
}

/** A readable cause: connecting to a name with several addresses fails with an AggregateError and no message. */
function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message !== '') return err.message;
  if (err instanceof AggregateError) return err.errors.map(reasonOf).join('; ');
  return codeOf(err) ?? err.name;
}

/** Connection-level failures become one STORE_UNAVAILABLE naming the database; our own errors pass through. */
export function translate(description: string, err: unknown): unknown {
  if (err instanceof VitefaError || !isDatabaseError(err)) return err;
  const code = codeOf(err);
  const reason = reasonOf(err);
  if (RETRYABLE.has(code ?? '')) {
    return new RequestError(WireError.STORE_UNAVAILABLE, `database ${description} is busy: ${reason}`, { cause: err });
  }
  if (UNAVAILABLE.has(code ?? '') || (err as { fatal?: unknown }).fatal === true || isPoolClosed(err)) {
    return new RequestError(WireError.STORE_UNAVAILABLE, `database ${description} is unreachable: ${reason}`, { cause: err });
  }
  return new VitefaError(LocalErrorCode.STORE_FAILED, `database ${description} failed: ${reason}`, { cause: err });
}

/** What a failure to open tells the server: STORE_REFUSED when waiting will not help, else the error as it was. */
export function openFailure(description: string, err: unknown): unknown {
  const cause = err instanceof VitefaError ? err.cause : err;
  if (REFUSED.has(codeOf(cause) ?? '')) {
    return new VitefaError(LocalErrorCode.STORE_REFUSED, `database ${description} refused this server: ${reasonOf(cause)}`, { cause });
  }
  return err;
}

/**
 * What a failed write tells its caller. Anything but a COMMIT gone
 * unanswered means the transaction was never committed: the database
 * rolls it back (at the latest when it sees its connection closed), so
 * "not applied" is a promise. A COMMIT sent without an answer is
 * OUTCOME_UNKNOWN, naming the revision to look for; if it did commit, the
 * release reaches every server through releasesSince like any other.
 */
export function definite(description: string, err: unknown): unknown {
  if (err instanceof CommitUnanswered) {
    const release = err.value as Partial<StoredRelease> | null;
    const known = release !== null && typeof release === 'object' && typeof release.rev === 'number';
    return new RequestError(
      WireError.OUTCOME_UNKNOWN,
      known
        ? `database ${description} did not answer the commit of ${release.env}@${release.rev}: it may or may not have been applied; once the database answers, \`history ${release.env}\` shows revision ${release.rev} if it was`
        : `database ${description} did not answer a commit: the change may or may not have been applied`,
      { cause: err.cause },
    );
  }
  if (err instanceof DeadlinePassed) {
    return new RequestError(WireError.STORE_UNAVAILABLE, `database ${description} did not answer in time; the write was not applied`, { cause: err });
  }
  const translated = translate(description, err);
  if (translated instanceof RequestError && translated.status === WireError.STORE_UNAVAILABLE) {
    return new RequestError(WireError.STORE_UNAVAILABLE, `${translated.message}; the write was not applied`, { cause: err });
  }
  return translated;
}
