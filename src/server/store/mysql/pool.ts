import mysql, { type Pool, type PoolConnection } from 'mysql2/promise';
import { WireError } from '../../../protocol/index.js';
import { beforeDeadline } from '../../../deadline.js';
import { RequestError } from '../../errors.js';
import { CommitUnanswered, definite, isLost, RETRYABLE, translate } from './failures.js';
import { bindDeadline, codeOf, DeadlinePassed, query, type MysqlRunner } from './query.js';
import type { MysqlTarget } from './url.js';

/** Transactions are retried this many times in all on deadlock or lock wait timeout. */
const MAX_ATTEMPTS = 5;

/**
 * The connections to one database and the health of each: a pool whose
 * connections go back only when known sound, transactions bracketed and
 * retried on deadlock, consistent snapshots for reads that must agree, and
 * a write's deadline bounding every wait. Every part of the MySQL store
 * runs its statements through this (MysqlRunner).
 */
export class MysqlPool implements MysqlRunner {
  readonly description: string;
  private readonly target: MysqlTarget;
  private pool?: Pool;

  constructor(target: MysqlTarget) {
    this.target = target;
    this.description = target.description;
  }

  get opened(): boolean {
    return this.pool !== undefined;
  }

  /** Creates the database if needed, opens the pool and runs `prepare` (the migrations) on one of its connections. */
  async open(prepare: (conn: PoolConnection) => Promise<void>): Promise<void> {
    const { host, port, user, password, database } = this.target;
    await this.createDatabase();
    // Revisions stay below 2^53: BIGINT columns come back as plain numbers.
    this.pool = mysql.createPool({
      host, port, user, password, database, connectionLimit: 8, maxIdle: 8, idleTimeout: 60_000,
      enableKeepAlive: true, connectTimeout: 5_000, supportBigNumbers: false, bigNumberStrings: false,
    });
    const conn = await this.pool.getConnection();
    try {
      await prepare(conn);
    } finally {
      // The pool is ended anyway when opening fails.
      conn.release();
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
  }

  /** Connection-level failures become one STORE_UNAVAILABLE naming the database; our own errors pass through. */
  async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw translate(this.description, err);
    }
  }

  /**
   * Runs `work` in one transaction and commits it if it asks to, retrying
   * the whole of it (planner included) on deadlock or lock wait timeout.
   * A failure is made definite (failures.ts): not applied, or OUTCOME_UNKNOWN.
   */
  async transaction<T>(work: (tx: PoolConnection) => Promise<{ commit: boolean; value: T }>, deadline?: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.bracketed('START TRANSACTION', async (conn) => {
          const { commit, value } = await work(conn);
          return { value, end: commit ? 'COMMIT' : 'ROLLBACK' };
        }, true, deadline);
      } catch (err) {
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has(codeOf(err) ?? '')) continue;
        throw definite(this.description, err);
      }
    }
  }

  /** Several reads that must agree with each other: one consistent snapshot. */
  snapshot<T>(work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.bracketed('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY', async (conn) => ({
      value: await work(conn), end: 'COMMIT',
    }));
  }

  /** A single-statement read on any pooled connection; run again once if the connection was found dead (reads are safe to repeat). */
  async read<T>(statement: (db: Pool) => Promise<T>): Promise<T> {
    try {
      return await statement(this.db());
    } catch (err) {
      if (!isLost(err)) throw err;
      return statement(this.db());
    }
  }

  /** A read on one pooled connection, bounded by `deadline` as a write's statements are. */
  async readBy<T>(deadline: number | undefined, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.connection(deadline);
    bindDeadline(conn, deadline);
    let lost = false;
    try {
      return await work(conn);
    } catch (err) {
      lost = isLost(err);
      throw err;
    } finally {
      bindDeadline(conn, undefined);
      if (lost) conn.destroy();
      else conn.release();
    }
  }

  /**
   * Runs `work` on one pooled connection between `begin` and the statement
   * it ends with (ROLLBACK when it throws). The connection goes back to the
   * pool only when it is known to be healthy; otherwise it is destroyed, so
   * the pool opens a fresh one once the database is back (and the database
   * rolls back whatever it had not been told to commit). With a deadline,
   * waiting for a connection and every statement are bounded by it. A write's
   * COMMIT lost on the way (the connection died or went silent after it was
   * sent) is CommitUnanswered: it may have committed.
   */
  private async bracketed<T>(
    begin: string, work: (conn: PoolConnection) => Promise<{ value: T; end: 'COMMIT' | 'ROLLBACK' }>, write = false, deadline?: number,
  ): Promise<T> {
    const conn = await this.begin(begin, deadline);
    let healthy = true;
    try {
      const { value, end } = await work(conn);
      try {
        await query(conn, end);
      } catch (err) {
        if (write && end === 'COMMIT' && isLost(err)) throw new CommitUnanswered(value, err);
        throw err;
      }
      return value;
    } catch (err) {
      healthy = !(err instanceof CommitUnanswered) && !(err instanceof DeadlinePassed) && (err as { fatal?: unknown }).fatal !== true
        && (await query(conn, 'ROLLBACK').then(() => true, () => false));
      throw err;
    } finally {
      bindDeadline(conn, undefined);
      if (healthy) conn.release();
      else conn.destroy();
    }
  }

  /**
   * A pooled connection with `sql` run on it. A connection the database
   * closed while it sat idle (a restart, a kill) fails on its first
   * statement, before anything was done: it is dropped and a fresh one
   * tried, once.
   */
  private async begin(sql: string, deadline?: number): Promise<PoolConnection> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.connection(deadline);
      bindDeadline(conn, deadline);
      try {
        await query(conn, sql);
        return conn;
      } catch (err) {
        bindDeadline(conn, undefined);
        // Nothing was sent when the deadline had passed: the connection is sound.
        if (isLost(err)) conn.destroy();
        else conn.release();
        if (attempt >= 2 || !isLost(err)) throw err;
      }
    }
  }

  /** A connection from the pool, waited for until `deadline` at most (one that comes later goes back at once). */
  private async connection(deadline?: number): Promise<PoolConnection> {
    const getting = this.db().getConnection();
    if (deadline === undefined) return getting;
    return beforeDeadline(getting, deadline, (late) => void late.then((conn) => conn.release(), () => undefined));
  }

  private db(): Pool {
    if (this.pool === undefined) throw new RequestError(WireError.STORE_UNAVAILABLE, `database ${this.description} is closed`);
    return this.pool;
  }

  /** CREATE DATABASE needs a connection without a default database (it may not exist yet). */
  private async createDatabase(): Promise<void> {
    const { host, port, user, password, database } = this.target;
    const conn = await mysql.createConnection({ host, port, user, password, connectTimeout: 5_000 });
    try {
      await conn.query(`CREATE DATABASE IF NOT EXISTS ${conn.escapeId(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    } catch (err) {
      // A user allowed into an existing database only: the pool finds out whether it is there.
      if (codeOf(err) !== 'ER_DBACCESS_DENIED_ERROR' && codeOf(err) !== 'ER_SPECIFIC_ACCESS_DENIED_ERROR') throw err;
    } finally {
      await conn.end().catch(() => conn.destroy());
    }
  }
}
