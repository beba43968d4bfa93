import type { Connection, RowDataPacket } from 'mysql2/promise';
import { WireError, type KeyChange } from '../../../protocol/index.js';
import { RequestError } from '../../errors.js';
import { releaseFrom } from '../release.js';
import type { ChangeRef, HistoryPage, HistoryPageQuery, StoredRelease } from '../types.js';
import type { MysqlPool } from './pool.js';
import { query, text } from './query.js';
import { readEnv, readHead, releaseOf, type EnvRow } from './rows.js';

/** Changes read back per release in a history page, at most (the rest are counted: HistoryRelease.more). */
const PAGE_CHANGES_AT_MOST = 10_000;

/**
 * Reads of the committed releases: the global log after a revision, a range
 * of one environment, a page of its history bounded in bytes, and single
 * values left out of those. Large values are left out by the database
 * itself (size and hash), so an answer never reads them whole.
 */
export class MysqlHistory {
  constructor(private readonly pool: MysqlPool) {}

  /** Releases of any environment committed after `after`, ascending, at most `limit`. */
  releasesSince(after: number, limit: number): Promise<StoredRelease[]> {
    // Two plain reads, no transaction (the poll runs every few seconds): a revision's via rows are committed with its
    // release, so the second read finds every one the first read's releases made (pruning may take some of the oldest
    // away in between; those are only checked, never needed).
    return this.pool.guard(() => this.pool.read(async (conn) => {
      const own = await selectReleases(conn, { where: 'rev > ?', params: [after], limit });
      if (own.length === 0) return own;
      // The `via` releases of those revisions, each after the release it came through, by name, with its changes.
      const rows = await query<RowDataPacket[]>(conn, 'SELECT rev, env, via, prev, chain FROM vitefa_via WHERE rev >= ? AND rev <= ?', [own[0].rev, own[own.length - 1].rev]);
      if (rows.length === 0) return own;
      const byRev = new Map<number, RowDataPacket[]>();
      for (const row of rows) byRev.set(row.rev as number, [...(byRev.get(row.rev as number) ?? []), row]);
      const out: StoredRelease[] = [];
      for (const release of own) {
        out.push(release);
        const vias = (byRev.get(release.rev) ?? []).map((row) => viaOf(row, release)).sort((a, b) => (a.env < b.env ? -1 : a.env > b.env ? 1 : 0));
        out.push(...vias);
      }
      return out;
    }));
  }

  releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
    return this.pool.guard(() => this.pool.snapshot(async (conn) => between(conn, env, await readEnv(conn, env, false), from, to, elideAbove)));
  }

  historyPage(env: string, q: HistoryPageQuery): Promise<HistoryPage> {
    return this.pool.guard(() => this.pool.snapshot(async (conn) => {
      const current = await readEnv(conn, env, false);
      const headers = await historyHeaders(conn, env, current, q);
      // Each release's changes are read on their own, large values as size and hash only (worked out by the database),
      // until the page's bytes are spent.
      const page = new PageBudget(q.maxBytes);
      const releases: StoredRelease[] = [];
      const byKey = q.key === undefined ? '' : ' AND c.k = ?';
      const keyParam = q.key === undefined ? [] : [q.key];
      for (const header of headers) {
        if (page.spent && releases.length > 0) return { releases, next: releases[releases.length - 1].rev };
        const release = releaseOf(header);
        const rows = await query<RowDataPacket[]>(
          conn,
          `SELECT ${elidedColumns('c')} FROM vitefa_changes c WHERE c.rev = ?${byKey} ORDER BY c.seq LIMIT ?`,
          [q.elideAbove, q.elideAbove, q.elideAbove, q.elideAbove, release.rev, ...keyParam, PAGE_CHANGES_AT_MOST + 1],
        );
        for (const row of rows) {
          if (release.changes.length >= PAGE_CHANGES_AT_MOST || !page.take(row, release.changes.length === 0 && releases.length === 0)) break;
          addChange(release, row);
        }
        if (release.changes.length < rows.length) {
          const [count] = await query<RowDataPacket[]>(conn, `SELECT COUNT(*) AS n FROM vitefa_changes c WHERE c.rev = ?${byKey}`, [release.rev, ...keyParam]);
          release.more = Number(count.n) - release.changes.length;
        }
        releases.push(release);
        if (release.more !== undefined) return { releases, next: release.rev };
      }
      return { releases };
    }));
  }

  changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]> {
    if (refs.length === 0) return Promise.resolve([]);
    return this.pool.guard(async () => {
      const rows = await this.pool.read((db) => query<RowDataPacket[]>(
        db,
        // A `via` release of `env` shows the changes of the write it came through (its revision's).
        `SELECT c.rev, c.k, c.before_v, c.after_v FROM vitefa_changes c JOIN vitefa_releases r ON r.rev = c.rev
         WHERE (r.env = ? OR EXISTS (SELECT 1 FROM vitefa_via v WHERE v.rev = c.rev AND v.env = ?)) AND (c.rev, c.k) IN (?)`,
        [env, env, refs.map((r) => [r.rev, r.key])],
      ));
      const byRef = new Map(rows.map((row) => [`${row.rev}\u0000${text(row.k)}`, row]));
      return refs.map((r) => {
        const row = byRef.get(`${r.rev}\u0000${r.key}`);
        return row === undefined ? null : ((r.side === 1 ? row.before_v : row.after_v) as string | null);
      });
    });
  }
}

/** Releases of the current incarnation of `env` with from < rev <= to, ascending (the same checks as the LMDB store). */
export async function between(db: Connection, env: string, current: EnvRow, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
  const head = await readHead(db);
  if (from < current.floor || from > head || to > head) {
    throw new RequestError(
      WireError.REVISION_NOT_FOUND,
      `revision ${from < current.floor ? from : to} of ${env} is not in the history kept (from ${current.floor} to ${head})`,
    );
  }
  return selectReleases(db, { where: 'env = ? AND rev >= ? AND rev > ? AND rev <= ?', params: [env, current.created, from, to], elideAbove });
}

/**
 * The headers of a page of `env`'s history, newest first: its own releases and (unless `q.own`) its
 * `via` ones (time, author and operation those of the release they came through), of its current
 * incarnation, below `q.before`, that changed `q.key` when given, at most `q.limit`.
 */
async function historyHeaders(db: Connection, env: string, current: EnvRow, q: HistoryPageQuery): Promise<RowDataPacket[]> {
  const part = (alias: string): { where: string; params: unknown[] } => {
    let where = `${alias}.env = ? AND ${alias}.rev >= ?`;
    const params: unknown[] = [env, current.created];
    if (q.before !== undefined) {
      where += ` AND ${alias}.rev < ?`;
      params.push(q.before);
    }
    if (q.key !== undefined) {
      where += ` AND EXISTS (SELECT 1 FROM vitefa_changes x WHERE x.rev = ${alias}.rev AND x.k = ?)`;
      params.push(q.key);
    }
    return { where, params };
  };
  const own = part('r');
  const limit = Math.max(0, Math.floor(q.limit));
  const ownSql = `SELECT r.rev, r.env, r.prev, r.time, r.author, r.op, r.dropped, r.chain, r.parents, NULL AS via FROM vitefa_releases r WHERE ${own.where}`;
  if (q.own === true) return query<RowDataPacket[]>(db, `${ownSql} ORDER BY rev DESC LIMIT ?`, [...own.params, limit]);
  const via = part('v');
  return query<RowDataPacket[]>(
    db,
    `${ownSql} UNION ALL
     SELECT v.rev, v.env, v.prev, r.time, r.author, r.op, 0, v.chain, NULL, v.via FROM vitefa_via v JOIN vitefa_releases r ON r.rev = v.rev
     WHERE ${via.where} ORDER BY rev DESC LIMIT ?`,
    [...own.params, ...via.params, limit],
  );
}

/** The `via` release of a vitefa_via row: the header of `row`, the rest (time, author, op, changes) from the release it came through. */
function viaOf(row: RowDataPacket, source: StoredRelease): StoredRelease {
  return releaseFrom(
    { env: text(row.env), rev: source.rev, prev: row.prev as number, time: source.time, author: source.author, op: source.op, chain: text(row.chain), via: text(row.via) },
    source.changes.map(([k, before, after]): KeyChange => [k, before, after]),
  );
}

interface ReleaseQuery {
  /** Conditions on vitefa_releases. */
  where: string;
  params: unknown[];
  limit?: number;
  /** Values longer than this come as size and hash only (StoredRelease.big). */
  elideAbove?: number;
}

/** Releases with their changes, ascending, in one statement (so a concurrent prune cannot split a release from its changes). */
async function selectReleases(db: Connection, q: ReleaseQuery): Promise<StoredRelease[]> {
  const params = [...q.params];
  let limit = '';
  if (q.limit !== undefined) {
    limit = ' LIMIT ?';
    params.push(Math.max(0, Math.floor(q.limit)));
  }
  const elide = q.elideAbove;
  const columns = elide === undefined ? 'c.k, c.before_v, c.after_v' : elidedColumns('c');
  const rows = await query<RowDataPacket[]>(
    db,
    `SELECT r.rev, r.env, r.prev, r.time, r.author, r.op, r.dropped, r.chain, r.parents, ${columns}
     FROM (SELECT rev, env, prev, time, author, op, dropped, chain, parents FROM vitefa_releases
           WHERE ${q.where} ORDER BY rev ASC${limit}) r
     LEFT JOIN vitefa_changes c ON c.rev = r.rev
     ORDER BY r.rev ASC, c.seq`,
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
  const len: unknown = row[`${prefix}_len`];
  return len === null || len === undefined ? 0 : Number(len);
}
