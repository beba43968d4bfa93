import type { Connection, Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { DeadlinePassed } from '../../../deadline.js';

/** What the MySQL store lends the modules beside it (the access tables): its bounded, translated ways to run statements. */
export interface MysqlRunner {
  /** Connection-level failures become one STORE_UNAVAILABLE naming the database. */
  guard<T>(work: () => Promise<T>): Promise<T>;
  /** One transaction, committed if `work` says so, retried whole on deadlock. */
  transaction<T>(work: (tx: PoolConnection) => Promise<{ commit: boolean; value: T }>): Promise<T>;
  /** A single-statement read on any pooled connection. */
  read<T>(statement: (db: Pool) => Promise<T>): Promise<T>;
}

/** A query that gets no answer in this time is abandoned (a host gone silent, not a refused connection). */
export const QUERY_TIMEOUT_MS = 60_000;

/** Connections running a write that must be answered by a deadline (ms since the epoch). */
const deadlines = new WeakMap<object, number>();

/** Bounds every statement run on `conn` by `deadline` (undefined: by QUERY_TIMEOUT_MS alone again). */
export function bindDeadline(conn: Connection, deadline: number | undefined): void {
  if (deadline === undefined) deadlines.delete(conn);
  else deadlines.set(conn, deadline);
}

/** A statement not sent because its write's deadline had passed. */
export { DeadlinePassed };

/**
 * One statement, bounded in time: a database host that goes silent must not
 * hang a commit. On expiry the connection's socket is destroyed, which fails
 * the statement as a lost connection (STORE_UNAVAILABLE). (mysql2's own
 * `timeout` option leaves its timer armed when a connection dies mid-query.)
 */
export async function query<T extends RowDataPacket[] | ResultSetHeader = ResultSetHeader>(
  db: Connection | Pool, sql: string, params: unknown[] = [],
): Promise<T> {
  if (isPool(db)) {
    const conn = await db.getConnection();
    let fatal = false;
    try {
      return await query<T>(conn, sql, params);
    } catch (err) {
      fatal = (err as { fatal?: unknown }).fatal === true;
      throw err;
    } finally {
      if (fatal) conn.destroy();
      else conn.release();
    }
  }
  const deadline = deadlines.get(db);
  const ms = deadline === undefined ? QUERY_TIMEOUT_MS : Math.min(QUERY_TIMEOUT_MS, deadline - Date.now());
  if (ms <= 0) throw new DeadlinePassed();
  const timer = setTimeout(() => {
    (db as unknown as { connection: { stream: { destroy(err: Error): void } } }).connection.stream.destroy(
      new Error(`no answer within ${ms} ms`),
    );
  }, ms);
  timer.unref();
  try {
    const [result] = await db.query<T>({ sql, values: params });
    return result;
  } finally {
    clearTimeout(timer);
  }
}

function isPool(db: Connection | Pool): db is Pool {
  return typeof (db as Pool).getConnection === 'function';
}

/** VARBINARY columns come back as Buffers holding UTF-8. */
export function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

