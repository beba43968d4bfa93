import { CONFIG_WRITE_OPS, LocalErrorCode, RemoteError, VitefaError, WireError, type AdminRequest } from '../protocol/index.js';

/** The operations that make releases: they carry a request id, and are retried with it when the answer is lost. */
export const CONFIG_WRITES: ReadonlySet<string> = new Set(CONFIG_WRITE_OPS);

/** The admin operations that change something: their outcome matters when no answer comes. */
const WRITE_OPS: ReadonlySet<string> = new Set([...CONFIG_WRITES, 'user.add', 'user.del', 'user.passwd', 'token.add', 'token.del']);

/** Whether `op` changes something (else it only reads, and asking again is harmless). */
export function isWrite(op: string): boolean {
  return WRITE_OPS.has(op);
}

/** How to find out, and how to make the write again safely. */
function hints(req: AdminRequest, rid: string | undefined): { where: string; again: string } {
  return {
    where: 'env' in req ? `; \`history ${req.env}\` shows it if it was`
      : 'envPattern' in req ? `; \`schema history ${req.envPattern} ${req.keyPattern}${req.whole === true ? ' --whole' : ''}\` shows it if it was` : '',
    again: rid === undefined ? '' : `; running it again with --request-id ${rid} applies it once`,
  };
}

/** Retries of a request refused by a stopping server or cut off with its connection, after 250 ms, 500 ms, 1 s, 2 s. */
export const RETRIES = 4;

/** The request was cut off with its connection: it may have been run, or not. */
export function cutOff(err: unknown): err is VitefaError {
  return err instanceof VitefaError && err.code === LocalErrorCode.CONNECTION_CLOSED;
}

/**
 * Whether a failed request may be sent again, to this server or another:
 * one a stopping server refused was not run, so any may; one cut off with
 * its connection only when running it twice cannot do it twice (a read, or
 * a configuration write with its request id).
 */
export function mayRetry(req: AdminRequest, rid: string | undefined, err: unknown): boolean {
  if (err instanceof RemoteError) return err.status === WireError.SHUTTING_DOWN;
  return cutOff(err) && (rid !== undefined || !isWrite(req.op));
}

/** A request that changed nothing (refused by a stopping server, or a read), and no server took it again: both reasons (exit 1). */
export function notRetried(err: unknown, again: unknown): VitefaError {
  const first = err instanceof Error ? err.message : String(err);
  const code = again instanceof VitefaError && !(again instanceof RemoteError) ? again.code : LocalErrorCode.CONNECTION_CLOSED;
  return new VitefaError(code, `${first}; sent again: ${again instanceof Error ? again.message : String(again)}`, { cause: again });
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
