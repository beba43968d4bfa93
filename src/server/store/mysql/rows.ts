import type { Connection, RowDataPacket } from 'mysql2/promise';
import { envNotFound } from '../../errors.js';
import { releaseFrom } from '../release.js';
import type { StoredRelease } from '../types.js';
import { query, text } from './query.js';

/** Rows of one multi-row statement: bounded by an estimate of their bytes, to stay under max_allowed_packet. */
const BATCH_BYTES = 4 << 20;
export const BATCH_ROWS = 1000;

/** An environment's row in vitefa_envs. */
export interface EnvRow {
  rev: number;
  /** Releases up to this revision were pruned. */
  floor: number;
  /** Releases of this incarnation still kept. */
  kept: number;
  /** Revision of the release that created this incarnation. */
  created: number;
  chain: string;
}

export async function readHead(db: Connection): Promise<number> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT rev FROM vitefa_head WHERE id = 1');
  return (rows[0]?.rev as number | undefined) ?? 0;
}

/** The row of `env` (locked until the transaction ends with `forUpdate`); ENV_NOT_FOUND when it has none. */
export async function readEnv(db: Connection, env: string, forUpdate: boolean): Promise<EnvRow> {
  const sql = `SELECT rev, floor, kept, created, chain FROM vitefa_envs WHERE name = ?${forUpdate ? ' FOR UPDATE' : ''}`;
  const row = (await query<RowDataPacket[]>(db, sql, [env]))[0];
  if (row === undefined) throw envNotFound(env);
  return { rev: row.rev as number, floor: row.floor as number, kept: row.kept as number, created: row.created as number, chain: text(row.chain) };
}

export async function readEntries(db: Connection, env: string): Promise<Map<string, string>> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT k, v FROM vitefa_values WHERE env = ? ORDER BY k', [env]);
  return new Map(rows.map((row) => [text(row.k), row.v as string]));
}

export async function readValues(db: Connection, env: string, keys: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < keys.length; i += BATCH_ROWS) {
    const rows = await query<RowDataPacket[]>(
      db, 'SELECT k, v FROM vitefa_values WHERE env = ? AND k IN (?)', [env, keys.slice(i, i + BATCH_ROWS)],
    );
    for (const row of rows) out.set(text(row.k), row.v as string);
  }
  return out;
}

/** A release (without its changes) from its row in vitefa_releases. */
export function releaseOf(row: RowDataPacket): StoredRelease {
  return releaseFrom({
    env: text(row.env), rev: row.rev as number, prev: row.prev as number, time: Number(row.time),
    author: row.author as string, op: row.op as string, drop: row.dropped === 1, chain: text(row.chain),
  });
}

/** Splits rows into multi-row statements that stay well under max_allowed_packet (16 MiB by default). */
export function* batches(rows: unknown[][]): Generator<unknown[][]> {
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
