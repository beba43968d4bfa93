import mysql, {
  type Connection, type Pool, type PoolConnection, type RowDataPacket,
} from 'mysql2/promise';
import {
  CHAIN_GENESIS, LocalErrorCode, VitefaError, WireError, type Change, type EnvInfo, type KeyChange,
} from '../../../protocol/index.js';
import { envNotFound, RequestError } from '../../errors.js';
import { chainOfStored, keyChangesFrom } from '../changes.js';
import { MysqlIdentity } from './identity.js';
import { MysqlAccess } from './access.js';
import { MysqlMembers } from './members.js';
import { bindDeadline, codeOf, DeadlinePassed, query, text, type MysqlRunner } from './query.js';
import { REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH, RequestReplay, type RequestRecord } from '../requests.js';
import { migrate } from './migrations.js';
import type {
  ChangeRef, CommitMeta, EnvState, EnvView, HistoryPage, HistoryPageQuery, HistoryQuery, Planner, Store, StoredRelease,
} from '../types.js';
import { beforeDeadline } from '../../../deadline.js';
import { redactUrl } from '../urls.js';

export interface MysqlStoreOptions {
  /** Releases kept per environment before the oldest are pruned. */
  retainReleases: number;
  /** Audit entries kept; the oldest beyond are pruned. */
  retainAudit?: number;
}

/** Where to connect, from a mysql://user:pass@host:port/db URL. */
export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The URL without the password, for logs and errors. */
  description: string;
}

export function parseMysqlUrl(spec: string): MysqlTarget {
  let url: URL;
  try {
    url = new URL(spec);
  } catch (cause) {
    throw new VitefaError(LocalErrorCode.USAGE, `invalid store URL ${redactUrl(spec)}: use mysql://user:pass@host:port/db`, { cause });
  }
  const decode = (part: string): string => {
    try {
      return decodeURIComponent(part);
    } catch (cause) {
      throw new VitefaError(LocalErrorCode.USAGE, `invalid store URL ${redactUrl(spec)}: bad %-escape`, { cause });
    }
  };
  const database = decode(url.pathname.replace(/^\//, ''));
  if (url.protocol !== 'mysql:' || url.hostname === '' || database === '' || database.includes('/')) {
    throw new VitefaError(LocalErrorCode.USAGE, `invalid store URL ${redactUrl(spec)}: use mysql://user:pass@host:port/db`);
  }
  const port = url.port === '' ? 3306 : Number(url.port);
  // URL keeps the brackets of an IPv6 literal: fine in the description, not for connecting.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const user = decode(url.username);
  const description = `mysql://${url.username === '' ? '' : `${url.username}@`}${url.hostname}:${port}/${url.pathname.slice(1)}`;
  return { host, port, user, password: decode(url.password), database, description };
}


interface EnvRow {
  rev: number;
  floor: number;
  kept: number;
  created: number;
  chain: string;
}

/** Transactions are retried this many times in all on deadlock or lock wait timeout. */
const MAX_ATTEMPTS = 5;
/** Rows of one multi-row statement: bounded by an estimate of their bytes, to stay under max_allowed_packet. */
const BATCH_BYTES = 4 << 20;
const BATCH_ROWS = 1000;

const RETRYABLE = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
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

/**
 * The shared system of record: one MySQL (or MariaDB) database that several
 * servers write at the same time. Each release is one InnoDB transaction
 * that locks its environment's row, then the single `vitefa_head` row to
 * allocate its revision; that lock is held until COMMIT, so revisions are
 * committed in order cluster-wide and a reader of `rev > X ORDER BY rev`
 * never sees N+1 without N. Every transaction takes the environment row
 * before the head row, so they cannot deadlock on each other.
 */
export class MysqlStore implements Store, MysqlRunner {
  readonly description: string;
  readonly access: MysqlAccess;
  readonly members: MysqlMembers;
  readonly identity: MysqlIdentity;
  readonly shared = true;
  private readonly target: MysqlTarget;
  private readonly options: MysqlStoreOptions;
  private pool?: Pool;

  constructor(url: string, options: MysqlStoreOptions) {
    this.target = parseMysqlUrl(url);
    this.description = this.target.description;
    this.options = options;
    this.access = new MysqlAccess(this, options.retainAudit ?? 1_000_000);
    this.members = new MysqlMembers(this);
    this.identity = new MysqlIdentity(this);
  }

  async open(): Promise<void> {
    if (this.pool !== undefined) return;
    const { host, port, user, password, database } = this.target;
    try {
      await this.guard(async () => {
        await this.createDatabase();
        // Revisions stay below 2^53: BIGINT columns come back as plain numbers.
        this.pool = mysql.createPool({
          host, port, user, password, database, connectionLimit: 8, maxIdle: 8, idleTimeout: 60_000,
          enableKeepAlive: true, connectTimeout: 5_000, supportBigNumbers: false, bigNumberStrings: false,
        });
        const conn = await this.pool.getConnection();
        try {
          await migrate(conn, this.description);
          await query(conn, 'INSERT IGNORE INTO vitefa_head (id, rev) VALUES (1, 0)');
        } finally {
          // The pool is ended anyway when opening fails.
          conn.release();
        }
        await this.identity.ensure();
      });
    } catch (err) {
      await this.close();
      const cause = err instanceof VitefaError ? err.cause : err;
      if (REFUSED.has(codeOf(cause) ?? '')) {
        throw new VitefaError(LocalErrorCode.STORE_REFUSED, `database ${this.description} refused this server: ${reasonOf(cause)}`, { cause });
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
  }

  head(): Promise<number> {
    return this.guard(() => this.read(readHead));
  }

  loadAll(): Promise<EnvState[]> {
    return this.guard(() => this.snapshot(async (conn) => {
      const envs = await query<RowDataPacket[]>(conn, 'SELECT name, rev, chain FROM vitefa_envs ORDER BY name');
      const out = new Map<string, EnvState>();
      for (const row of envs) out.set(text(row.name), { env: text(row.name), rev: row.rev as number, values: new Map(), chain: text(row.chain) });
      const values = await query<RowDataPacket[]>(conn, 'SELECT env, k, v FROM vitefa_values ORDER BY env, k');
      for (const row of values) out.get(text(row.env))?.values.set(text(row.k), row.v as string);
      return [...out.values()];
    }));
  }

  listEnvs(): Promise<EnvInfo[]> {
    return this.guard(async () => {
      const rows = await this.read((db) => query<RowDataPacket[]>(
        db,
        `SELECT e.name, e.rev, COUNT(v.k) AS n FROM vitefa_envs e
         LEFT JOIN vitefa_values v ON v.env = e.name GROUP BY e.name, e.rev ORDER BY e.name`,
      ));
      return rows.map((row) => ({ env: text(row.name), rev: row.rev as number, keys: Number(row.n) }));
    });
  }

  releasesSince(after: number, limit: number): Promise<StoredRelease[]> {
    return this.guard(() => this.read((db) => selectReleases(db, {
      where: 'rev > ?', params: [after], newestFirst: false, limit,
    })));
  }

  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.once(meta, env, () => this.transaction(async (tx) => {
      await seenRequest(tx, meta);
      // The new row first (same lock order as every other write: environment, then head).
      try {
        await query(tx, 'INSERT INTO vitefa_envs (name, rev, floor, kept, created) VALUES (?, 0, 0, 1, 0)', [env]);
      } catch (err) {
        if (codeOf(err) === 'ER_DUP_ENTRY') throw new RequestError(WireError.ENV_EXISTS, `environment ${env} already exists`);
        throw err;
      }
      const rev = await allocateRevision(tx);
      const release: StoredRelease = { env, rev, prev: 0, time: meta.time, author: meta.author, op: meta.op, changes: [] };
      release.chain = chainOfStored(CHAIN_GENESIS, release);
      await insertRelease(tx, release);
      await query(tx, 'UPDATE vitefa_envs SET rev = ?, created = ?, chain = ? WHERE name = ?', [rev, rev, release.chain, env]);
      await keepRequest(tx, meta, env, rev, 0, true);
      return { commit: true, value: release };
    }, meta.deadline));
  }

  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.once(meta, env, () => this.transaction(async (tx) => {
      const current = await readEnv(tx, env, true);
      await seenRequest(tx, meta);
      const changes: KeyChange[] = [...(await readEntries(tx, env))].map(([k, v]) => [k, v, null]);
      const rev = await allocateRevision(tx);
      const release: StoredRelease = {
        env, rev, prev: current.rev, time: meta.time, author: meta.author, op: meta.op, changes, drop: true,
      };
      release.chain = chainOfStored(current.chain, release);
      await insertRelease(tx, release);
      // The releases stay (other servers still have to pick up the drop); the next incarnation ignores them.
      await query(tx, 'DELETE FROM vitefa_values WHERE env = ?', [env]);
      await query(tx, 'DELETE FROM vitefa_envs WHERE name = ?', [env]);
      await keepRequest(tx, meta, env, rev, changes.length, true);
      return { commit: true, value: release };
    }, meta.deadline));
  }

  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null> {
    return this.once(meta, env, () => this.transaction(async (tx) => {
      // Locking read first: later plain reads of this transaction then see every release of `env`.
      const current = await readEnv(tx, env, true);
      await seenRequest(tx, meta);
      const view: EnvView = {
        env,
        rev: current.rev,
        get: async (key) => (await readValues(tx, env, [key])).get(key),
        entries: () => readEntries(tx, env),
        releasesAfter: (fromRev) => between(tx, env, current, fromRev, current.rev),
      };
      const planned: Change[] = await plan(view);
      const before = await readValues(tx, env, [...new Set(planned.map(([key]) => key))]);
      const changes = keyChangesFrom(planned, (key) => before.get(key));
      if (changes.length === 0) {
        // Nothing to release; the id is kept all the same, so that its retry changes nothing either.
        if (meta.requestId === undefined) return { commit: false, value: null };
        await keepRequest(tx, meta, env, current.rev, 0, false);
        return { commit: true, value: null };
      }
      const rev = await allocateRevision(tx);
      const release: StoredRelease = { env, rev, prev: current.rev, time: meta.time, author: meta.author, op: meta.op, changes };
      release.chain = chainOfStored(current.chain, release);
      await writeValues(tx, env, changes);
      await insertRelease(tx, release);
      const next = await this.prune(tx, env, { ...current, rev, kept: current.kept + 1, chain: release.chain });
      await query(tx, 'UPDATE vitefa_envs SET rev = ?, floor = ?, kept = ?, chain = ? WHERE name = ?', [next.rev, next.floor, next.kept, next.chain, env]);
      await keepRequest(tx, meta, env, rev, changes.length, true);
      return { commit: true, value: release };
    }, meta.deadline));
  }

  history(env: string, q: HistoryQuery): Promise<StoredRelease[]> {
    return this.guard(() => this.snapshot(async (conn) => {
      const { where, params } = historyWhere(env, await readEnv(conn, env, false), q.before);
      return selectReleases(conn, { where, params, newestFirst: true, limit: q.limit, key: q.key });
    }));
  }

  releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
    return this.guard(() => this.snapshot(async (conn) => between(conn, env, await readEnv(conn, env, false), from, to, elideAbove)));
  }

  historyPage(env: string, q: HistoryPageQuery): Promise<HistoryPage> {
    return this.guard(() => this.snapshot(async (conn) => {
      let { where, params } = historyWhere(env, await readEnv(conn, env, false), q.before);
      if (q.key !== undefined) {
        where += ' AND EXISTS (SELECT 1 FROM vitefa_changes x WHERE x.rev = vitefa_releases.rev AND x.k = ?)';
        params.push(q.key);
      }
      const headers = await query<RowDataPacket[]>(
        conn, `SELECT rev, env, prev, time, author, op, dropped, chain FROM vitefa_releases WHERE ${where} ORDER BY rev DESC LIMIT ?`,
        [...params, Math.max(0, Math.floor(q.limit))],
      );
      // Each release's changes are read on their own, large values as size and hash only (worked out by the database),
      // until the page's bytes are spent.
      const page = new PageBudget(q.maxBytes);
      const releases: StoredRelease[] = [];
      for (const header of headers) {
        if (page.spent && releases.length > 0) return { releases, next: releases[releases.length - 1]!.rev };
        const release = releaseOf(header);
        const rows = await query<RowDataPacket[]>(
          conn,
          `SELECT ${elidedColumns('c')} FROM vitefa_changes c WHERE c.rev = ?${q.key === undefined ? '' : ' AND c.k = ?'} ORDER BY c.seq LIMIT ?`,
          [q.elideAbove, q.elideAbove, q.elideAbove, q.elideAbove, release.rev, ...(q.key === undefined ? [] : [q.key]), PAGE_CHANGES_AT_MOST + 1],
        );
        for (const row of rows) {
          if (release.changes.length >= PAGE_CHANGES_AT_MOST || !page.take(row, release.changes.length === 0 && releases.length === 0)) break;
          addChange(release, row);
        }
        if (release.changes.length < rows.length) {
          const [count] = await query<RowDataPacket[]>(conn, `SELECT COUNT(*) AS n FROM vitefa_changes WHERE rev = ?${q.key === undefined ? '' : ' AND k = ?'}`, [release.rev, ...(q.key === undefined ? [] : [q.key])]);
          release.more = Number(count!.n) - release.changes.length;
        }
        releases.push(release);
        if (release.more !== undefined) return { releases, next: release.rev };
      }
      return { releases };
    }));
  }

  changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]> {
    if (refs.length === 0) return Promise.resolve([]);
    return this.guard(async () => {
      const rows = await this.read((db) => query<RowDataPacket[]>(
        db,
        `SELECT c.rev, c.k, c.before_v, c.after_v FROM vitefa_changes c JOIN vitefa_releases r ON r.rev = c.rev
         WHERE r.env = ? AND (c.rev, c.k) IN (?)`,
        [env, refs.map((r) => [r.rev, r.key])],
      ));
      const byRef = new Map(rows.map((row) => [`${row.rev}\u0000${text(row.k)}`, row]));
      return refs.map((r) => {
        const row = byRef.get(`${r.rev}\u0000${r.key}`);
        return row === undefined ? null : ((r.side === 1 ? row.before_v : row.after_v) as string | null);
      });
    });
  }

  /** Drops the oldest releases of `env` beyond the retention limit, inside the commit's transaction. */
  private async prune(tx: PoolConnection, env: string, next: EnvRow): Promise<EnvRow> {
    const excess = next.kept - this.options.retainReleases;
    if (excess <= 0) return next;
    const sql = 'SELECT rev FROM vitefa_releases WHERE env = ? AND rev >= ? AND rev < ? ORDER BY rev LIMIT ?';
    const rows = await query<RowDataPacket[]>(tx, sql, [env, next.created, next.rev, excess]);
    if (rows.length === 0) return next;
    const revs = rows.map((row) => row.rev as number);
    await query(tx, 'DELETE FROM vitefa_changes WHERE rev IN (?)', [revs]);
    await query(tx, 'DELETE FROM vitefa_releases WHERE rev IN (?)', [revs]);
    return { ...next, floor: revs[revs.length - 1]!, kept: next.kept - revs.length };
  }

  /**
   * Runs `work` in one transaction and commits it if it asks to, retrying
   * the whole of it (planner included) on deadlock or lock wait timeout.
   */
  /** @internal (also for MysqlAccess) */
  async transaction<T>(work: (tx: PoolConnection) => Promise<{ commit: boolean; value: T }>, deadline?: number): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.bracketed('START TRANSACTION', async (conn) => {
          const { commit, value } = await work(conn);
          return { value, end: commit ? 'COMMIT' : 'ROLLBACK' };
        }, true, deadline);
      } catch (err) {
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has(codeOf(err) ?? '')) continue;
        throw this.definite(err);
      }
    }
  }

  /**
   * What a failed write tells its caller. Anything but a COMMIT gone
   * unanswered means the transaction was never committed: the database
   * rolls it back (at the latest when it sees its connection closed), so
   * "not applied" is a promise. A COMMIT sent without an answer is
   * OUTCOME_UNKNOWN, naming the revision to look for; if it did commit, the
   * release reaches every server through releasesSince like any other.
   */
  private definite(err: unknown): unknown {
    if (err instanceof CommitUnanswered) {
      const release = err.value as Partial<StoredRelease> | null;
      const known = release !== null && typeof release === 'object' && typeof release.rev === 'number';
      return new RequestError(
        WireError.OUTCOME_UNKNOWN,
        known
          ? `database ${this.description} did not answer the commit of ${release.env}@${release.rev}: it may or may not have been applied; once the database answers, \`history ${release.env}\` shows revision ${release.rev} if it was`
          : `database ${this.description} did not answer a commit: the change may or may not have been applied`,
        { cause: err.cause },
      );
    }
    if (err instanceof DeadlinePassed) {
      return new RequestError(WireError.STORE_UNAVAILABLE, `database ${this.description} did not answer in time; the write was not applied`, { cause: err });
    }
    const translated = this.translate(err);
    if (translated instanceof RequestError && translated.status === WireError.STORE_UNAVAILABLE) {
      return new RequestError(WireError.STORE_UNAVAILABLE, `${translated.message}; the write was not applied`, { cause: err });
    }
    return translated;
  }


  /** Several reads that must agree with each other: one consistent snapshot. */
  private snapshot<T>(work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.bracketed('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY', async (conn) => ({
      value: await work(conn), end: 'COMMIT',
    }));
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

  /** A read on one pooled connection, bounded by `deadline` as a write's statements are. */
  private async readBy<T>(deadline: number | undefined, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
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

  /** A connection from the pool, waited for until `deadline` at most (one that comes later goes back at once). */
  private async connection(deadline?: number): Promise<PoolConnection> {
    const getting = this.db().getConnection();
    if (deadline === undefined) return getting;
    return beforeDeadline(getting, deadline, (late) => void late.then((conn) => conn.release(), () => undefined));
  }

  /** A single-statement read on any pooled connection; run again once if the connection was found dead (reads are safe to repeat). */
  /** @internal (also for MysqlAccess) */
  async read<T>(statement: (db: Pool) => Promise<T>): Promise<T> {
    try {
      return await statement(this.db());
    } catch (err) {
      if (!isLost(err)) throw err;
      return statement(this.db());
    }
  }

  private db(): Pool {
    if (this.pool === undefined) throw new RequestError(WireError.STORE_UNAVAILABLE, `database ${this.description} is closed`);
    return this.pool;
  }

  /**
   * A configuration write, made at most once per request id. The check in
   * the transaction (seenRequest) sees every id committed before it took its
   * environment's lock; an id committed meanwhile by a write racing it (the
   * same retry sent to two servers) makes this one fail — on the id's key,
   * or creating an environment that now exists — and it is answered from
   * the id's record instead; so is the retry of a drop, which finds its
   * environment gone before it looks for its id.
   */
  private async once<T>(meta: CommitMeta, env: string, write: () => Promise<T>): Promise<T> {
    try {
      return await this.guard(write);
    } catch (err) {
      const duplicate = codeOf((err as { cause?: unknown }).cause ?? err) === 'ER_DUP_ENTRY';
      const raced = duplicate || (err instanceof RequestError && (err.status === WireError.ENV_EXISTS || err.status === WireError.ENV_NOT_FOUND));
      if (meta.requestId === undefined || err instanceof RequestReplay || !raced) throw err;
      let record: RequestRecord | undefined;
      try {
        record = await this.guard(() => this.readBy(meta.deadline, (conn) => findRequest(conn, meta.requestId!)));
      } catch (readErr) {
        // On its key, another write of this id committed: the change is applied, its revision unknown here.
        if (duplicate) {
          throw new RequestError(WireError.OUTCOME_UNKNOWN, `database ${this.description} took request ${meta.requestId} as committed by another write, then did not say which revision: look in \`history ${env}\``, { cause: readErr });
        }
        throw err;
      }
      if (record !== undefined) throw new RequestReplay(record);
      throw err;
    }
  }

  /** Connection-level failures become one STORE_UNAVAILABLE naming the database; our own errors pass through. @internal (also for MysqlAccess) */
  async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw this.translate(err);
    }
  }

  private translate(err: unknown): unknown {
    if (err instanceof VitefaError || !isDatabaseError(err)) return err;
    const code = codeOf(err);
    const reason = reasonOf(err);
    if (RETRYABLE.has(code ?? '')) {
      return new RequestError(WireError.STORE_UNAVAILABLE, `database ${this.description} is busy: ${reason}`, { cause: err });
    }
    if (UNAVAILABLE.has(code ?? '') || (err as { fatal?: unknown }).fatal === true || isPoolClosed(err)) {
      return new RequestError(WireError.STORE_UNAVAILABLE, `database ${this.description} is unreachable: ${reason}`, { cause: err });
    }
    return new VitefaError(LocalErrorCode.STORE_FAILED, `database ${this.description} failed: ${reason}`, { cause: err });
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

/** The releases of the current incarnation of `env`, below `before` when given. */
function historyWhere(env: string, current: EnvRow, before: number | undefined): { where: string; params: unknown[] } {
  const params: unknown[] = [env, current.created];
  if (before === undefined) return { where: 'env = ? AND rev >= ?', params };
  params.push(before);
  return { where: 'env = ? AND rev >= ? AND rev < ?', params };
}

async function readHead(db: Connection): Promise<number> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT rev FROM vitefa_head WHERE id = 1');
  return (rows[0]?.rev as number | undefined) ?? 0;
}

/**
 * The next revision. The row lock taken here is held until COMMIT: the next
 * release anywhere waits for this one to be committed (or rolled back, which
 * also rolls the counter back, leaving no gap).
 */
async function allocateRevision(tx: PoolConnection): Promise<number> {
  const result = await query(tx, 'UPDATE vitefa_head SET rev = LAST_INSERT_ID(rev + 1) WHERE id = 1');
  if (result.affectedRows !== 1) throw new Error('vitefa_head has no row');
  return result.insertId;
}

async function readEnv(db: Connection, env: string, forUpdate: boolean): Promise<EnvRow> {
  const sql = `SELECT rev, floor, kept, created, chain FROM vitefa_envs WHERE name = ?${forUpdate ? ' FOR UPDATE' : ''}`;
  const row = (await query<RowDataPacket[]>(db, sql, [env]))[0];
  if (row === undefined) throw envNotFound(env);
  return { rev: row.rev as number, floor: row.floor as number, kept: row.kept as number, created: row.created as number, chain: text(row.chain) };
}

/** Releases of the current incarnation of `env` with from < rev <= to (the same checks as the LMDB store). */
async function between(db: Connection, env: string, current: EnvRow, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
  const head = await readHead(db);
  if (from < current.floor || from > head || to > head) {
    throw new RequestError(
      WireError.REVISION_NOT_FOUND,
      `revision ${from < current.floor ? from : to} of ${env} is not in the history kept (from ${current.floor} to ${head})`,
    );
  }
  return selectReleases(db, {
    where: 'env = ? AND rev >= ? AND rev > ? AND rev <= ?', params: [env, current.created, from, to], newestFirst: false, elideAbove,
  });
}

async function readEntries(db: Connection, env: string): Promise<Map<string, string>> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT k, v FROM vitefa_values WHERE env = ? ORDER BY k', [env]);
  return new Map(rows.map((row) => [text(row.k), row.v as string]));
}

async function readValues(db: Connection, env: string, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < keys.length; i += BATCH_ROWS) {
    const rows = await query<RowDataPacket[]>(
      db, 'SELECT k, v FROM vitefa_values WHERE env = ? AND k IN (?)', [env, keys.slice(i, i + BATCH_ROWS)],
    );
    for (const row of rows) out.set(text(row.k), row.v as string);
  }
  return out;
}

async function writeValues(tx: PoolConnection, env: string, changes: KeyChange[]): Promise<void> {
  const upserts = changes.filter(([, , after]) => after !== null).map(([key, , after]) => [env, key, after]);
  for (const rows of batches(upserts)) {
    await query(tx, 'INSERT INTO vitefa_values (env, k, v) VALUES ? ON DUPLICATE KEY UPDATE v = VALUES(v)', [rows]);
  }
  const removed = changes.filter(([, , after]) => after === null).map(([key]) => key);
  for (let i = 0; i < removed.length; i += BATCH_ROWS) {
    await query(tx, 'DELETE FROM vitefa_values WHERE env = ? AND k IN (?)', [env, removed.slice(i, i + BATCH_ROWS)]);
  }
}

async function insertRelease(tx: PoolConnection, r: StoredRelease): Promise<void> {
  await query(tx, 'INSERT INTO vitefa_releases (rev, env, prev, time, author, op, dropped, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
    r.rev, r.env, r.prev, r.time, r.author, r.op, r.drop === true ? 1 : 0, r.chain ?? '',
  ]);
  const rows = r.changes.map(([key, before, after], seq) => [r.rev, seq, key, before, after]);
  for (const batch of batches(rows)) {
    await query(tx, 'INSERT INTO vitefa_changes (rev, seq, k, before_v, after_v) VALUES ?', [batch]);
  }
}

interface ReleaseQuery {
  /** Conditions on vitefa_releases. */
  where: string;
  params: unknown[];
  newestFirst: boolean;
  limit?: number;
  /** Only releases touching this key, with only that key's change. */
  key?: string;
  /** Values longer than this come as size and hash only (StoredRelease.big). */
  elideAbove?: number;
}

/** Releases with their changes, in one statement (so a concurrent prune cannot split a release from its changes). */
async function selectReleases(db: Connection, q: ReleaseQuery): Promise<StoredRelease[]> {
  const order = q.newestFirst ? 'DESC' : 'ASC';
  const params = [...q.params];
  let where = q.where;
  if (q.key !== undefined) {
    where += ' AND EXISTS (SELECT 1 FROM vitefa_changes x WHERE x.rev = vitefa_releases.rev AND x.k = ?)';
    params.push(q.key);
  }
  let limit = '';
  if (q.limit !== undefined) {
    limit = ' LIMIT ?';
    params.push(Math.max(0, Math.floor(q.limit)));
  }
  let join = 'c.rev = r.rev';
  if (q.key !== undefined) {
    join += ' AND c.k = ?';
    params.push(q.key);
  }
  const elide = q.elideAbove;
  const columns = elide === undefined ? 'c.k, c.before_v, c.after_v' : elidedColumns('c');
  const rows = await query<RowDataPacket[]>(
    db,
    `SELECT r.rev, r.env, r.prev, r.time, r.author, r.op, r.dropped, r.chain, ${columns}
     FROM (SELECT rev, env, prev, time, author, op, dropped, chain FROM vitefa_releases
           WHERE ${where} ORDER BY rev ${order}${limit}) r
     LEFT JOIN vitefa_changes c ON ${join}
     ORDER BY r.rev ${order}, c.seq`,
    elide === undefined ? params : [elide, elide, elide, elide, ...params],
  );
  const out: StoredRelease[] = [];
  for (const row of rows) {
    let release = out[out.length - 1];
    if (release?.rev !== row.rev) {
      release = releaseOf(row);
      out.push(release);
    }
    if (row.k === null) continue;
    if (elide === undefined) release.changes.push([text(row.k), row.before_v as string | null, row.after_v as string | null]);
    else addChange(release, row);
  }
  return out;
}

/** Changes read back per release in a history page, at most (the rest are counted: HistoryRelease.more). */
const PAGE_CHANGES_AT_MOST = 10_000;

function releaseOf(row: RowDataPacket): StoredRelease {
  const release: StoredRelease = {
    env: text(row.env), rev: row.rev as number, prev: row.prev as number, time: Number(row.time),
    author: row.author as string, op: row.op as string, changes: [],
  };
  if (row.dropped === 1) release.drop = true;
  const chain = text(row.chain);
  if (chain !== '') release.chain = chain;
  return release;
}

/**
 * A change's columns with values longer than the first parameter left out:
 * the database sends their byte length and the first 16 hex digits of their
 * SHA-256 instead (4 parameters: the bound, for each side twice).
 */
function elidedColumns(c: string): string {
  const side = (col: string, as: string) => `IF(LENGTH(${c}.${col}) > ?, NULL, ${c}.${col}) AS ${as}, LENGTH(${c}.${col}) AS ${as}_len, IF(LENGTH(${c}.${col}) > ?, LEFT(SHA2(${c}.${col}, 256), 16), NULL) AS ${as}_sha`;
  return `${c}.k, ${c}.seq, ${side('before_v', 'b')}, ${side('after_v', 'a')}`;
}

/** Adds a row of elidedColumns to `release`: a value left out is null, with its size and hash in `big`. */
function addChange(release: StoredRelease, row: RowDataPacket): void {
  const index = release.changes.length;
  const value = (side: 1 | 2, prefix: 'b' | 'a'): string | null => {
    const sha = row[`${prefix}_sha`] as string | null;
    if (sha !== null && sha !== undefined) {
      (release.big ??= []).push([index, side, Number(row[`${prefix}_len`]), text(sha)]);
      return null;
    }
    return row[prefix] as string | null;
  };
  release.changes.push([text(row.k), value(1, 'b'), value(2, 'a')]);
}

/** Bytes a page of history has shown: keys, the values it carries whole, and a little for each value left out. */
class PageBudget {
  private used = 0;
  constructor(private readonly max: number) {}
  get spent(): boolean {
    return this.used >= this.max;
  }
  /** Counts a row of elidedColumns in, unless it would go past the budget (`first`: the page's first change is always taken). */
  take(row: RowDataPacket, first: boolean): boolean {
    const bytes = Buffer.byteLength(text(row.k)) + shown(row, 'b') + shown(row, 'a');
    if (!first && this.used + bytes > this.max) {
      this.used = this.max;
      return false;
    }
    this.used += bytes;
    return true;
  }
}

function shown(row: RowDataPacket, prefix: 'b' | 'a'): number {
  if (row[`${prefix}_sha`] !== null && row[`${prefix}_sha`] !== undefined) return 40;
  const len = row[`${prefix}_len`];
  return len === null || len === undefined ? 0 : Number(len);
}

/** Splits rows into multi-row statements that stay well under max_allowed_packet (16 MiB by default). */
function* batches(rows: unknown[][]): Generator<unknown[][]> {
  let batch: unknown[][] = [];
  let bytes = 0;
  for (const row of rows) {
    // Upper bound of the escaped UTF-8 size: at most 3 bytes per UTF-16 unit.
    const size = row.reduce<number>((n, v) => n + 16 + (typeof v === 'string' ? v.length * 3 : 0), 0);
    if (batch.length > 0 && (bytes + size > BATCH_BYTES || batch.length >= BATCH_ROWS)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(row);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}

/** The connection died under the statement (as opposed to the statement failing). */
async function findRequest(db: Pool | PoolConnection, rid: string): Promise<RequestRecord | undefined> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT env, rev, changed, time, author, op, digest FROM vitefa_requests WHERE rid = ?', [rid]);
  const row = rows[0];
  return row === undefined ? undefined : {
    env: text(row.env), rev: Number(row.rev), changed: Number(row.changed), time: Number(row.time),
    author: text(row.author), op: text(row.op), digest: text(row.digest),
  };
}

/** A write whose request id was committed before is not made again: RequestReplay. */
async function seenRequest(tx: PoolConnection, meta: CommitMeta): Promise<void> {
  if (meta.requestId === undefined) return;
  const record = await findRequest(tx, meta.requestId);
  if (record !== undefined) throw new RequestReplay(record);
}

/**
 * Keeps the write's request id with its result and whose request it was, in its transaction. A write
 * that allocated a revision holds the head row's lock, so the ids older than
 * REQUEST_IDS_KEPT_MS are dropped there, by every such write in turn.
 */
async function keepRequest(tx: PoolConnection, meta: CommitMeta, env: string, rev: number, changed: number, holdsHead: boolean): Promise<void> {
  if (meta.requestId === undefined) return;
  await query(
    tx, 'INSERT INTO vitefa_requests (rid, env, rev, changed, time, author, op, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    [meta.requestId, env, rev, changed, meta.time, meta.author, meta.op, meta.requestDigest ?? ''],
  );
  if (holdsHead) await query(tx, 'DELETE FROM vitefa_requests WHERE time < ? ORDER BY time LIMIT ?', [meta.time - REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH]);
}

/** A write whose COMMIT was sent and never answered: it may have committed. */
class CommitUnanswered extends Error {
  constructor(readonly value: unknown, cause: unknown) {
    super('the commit was not answered', { cause });
  }
}

function isLost(err: unknown): boolean {
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
