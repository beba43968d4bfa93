import { LocalErrorCode, RemoteError, VitefaError, WireError, type AdminRequest } from '../protocol/index.js';

/** The operations that make releases: they carry a request id, and are retried with it when the answer is lost. */
export const CONFIG_WRITES: ReadonlySet<string> = new Set(['env.add', 'env.del', 'set', 'del', 'merge', 'clear', 'apply', 'rollback']);

/** The admin operations that change something: their outcome matters when no answer comes. */
const WRITE_OPS: ReadonlySet<string> = new Set([...CONFIG_WRITES, 'user.add', 'user.del', 'user.passwd', 'token.add', 'token.del']);

/** How to find out, and how to make the write again safely. */
function hints(req: AdminRequest, rid: string | undefined): { where: string; again: string } {
  return {
    where: 'env' in req ? `; \`history ${req.env}\` shows it if it was` : '',
    again: rid === undefined ? '' : `; running it again with --request-id ${rid} applies it once`,
  };
}

/**
 * A write whose answer never came — none in time, or the connection lost
 * after it was sent — may or may not have been applied: say so, and how to
 * find out, instead of reporting a failure.
 */
export function unanswered(req: AdminRequest, err: unknown, rid?: string): VitefaError | undefined {
  if (!WRITE_OPS.has(req.op) || !(err instanceof VitefaError)) return undefined;
  const { where, again } = hints(req, rid);
  if (err instanceof RemoteError) {
    return err.status === WireError.OUTCOME_UNKNOWN ? new RemoteError(err.status, `${err.message}${again}`) : undefined;
  }
  const lost = err.code === LocalErrorCode.REQUEST_TIMEOUT || (err.code === LocalErrorCode.CONNECTION_CLOSED && /before .* was answered/.test(err.message));
  if (!lost) return undefined;
  return new VitefaError(LocalErrorCode.OUTCOME_UNKNOWN, `${err.message}: the ${req.op} may or may not have been applied${where}${again}`, { cause: err });
}

/**
 * The final failure of a write whose first answer was lost with its
 * connection: whatever the retries were told (a refusal, the database away)
 * is about the retry, not about the attempt that may have committed.
 */
export function afterLoss(req: AdminRequest, lost: VitefaError, err: unknown, rid: string | undefined): unknown {
  const unknown = unanswered(req, err, rid);
  if (unknown !== undefined) return unknown;
  const { where, again } = hints(req, rid);
  const reason = err instanceof Error ? err.message : String(err);
  return new VitefaError(LocalErrorCode.OUTCOME_UNKNOWN, `${lost.message}, and its retry got no answer about it (${reason}): the ${req.op} may or may not have been applied${where}${again}`, { cause: err });
}
