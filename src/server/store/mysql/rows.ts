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
  /** Its parent list, lowest first ([]: none). */
  parents: string[];
}

export async function readHead(db: Connection): Promise<number> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT rev FROM vitefa_head WHERE id = 1');
  return (rows[0]?.rev as number | undefined) ?? 0;
}

/** The row of `env` (locked until the transaction ends with `forUpdate`); ENV_NOT_FOUND when it has none. */
export async function readEnv(db: Connection, env: string, forUpdate: boolean): Promise<EnvRow> {
  const row = await findEnv(db, env, forUpdate);
  if (row === undefined) throw envNotFound(env);
  return row;
}

/** The row of `env`, if it has one (locked until the transaction ends with `forUpdate`). */
export async function findEnv(db: Connection, env: string, forUpdate: boolean): Promise<EnvRow | undefined> {
  const sql = `SELECT rev, floor, kept, created, chain, parents FROM vitefa_envs WHERE name = ?${forUpdate ? ' FOR UPDATE' : ''}`;
  const row = (await query<RowDataPacket[]>(db, sql, [env]))[0];
  if (row === undefined) return undefined;
  return {
    rev: row.rev as number, floor: row.floor as number, kept: row.kept as number, created: row.created as number,
    chain: text(row.chain), parents: parentList(row.parents) ?? [],
  };
}

/** Every live environment's parent list ([] for none). */
export async function readLayout(db: Connection): Promise<Map<string, string[]>> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT name, parents FROM vitefa_envs WHERE parents IS NOT NULL ORDER BY name');
  const out = new Map<string, string[]>();
  for (const row of rows) {
    const parents = parentList(row.parents) ?? [];
    if (parents.length > 0) out.set(text(row.name), parents);
  }
  return out;
}

/** Which of `envs` exist. */
export async function readExisting(db: Connection, envs: string[]): Promise<Set<string>> {
  if (envs.length === 0) return new Set();
  const rows = await query<RowDataPacket[]>(db, 'SELECT name FROM vitefa_envs WHERE name IN (?)', [envs]);
  return new Set(rows.map((row) => text(row.name)));
}

/** Own entries of `envs`: of `keys` only (read in batches), or all of them. */
export async function readOwnOf(db: Connection, envs: string[], keys?: string[]): Promise<Map<string, Map<string, string>>> {
  const out = new Map(envs.map((env) => [env, new Map<string, string>()]));
  if (envs.length === 0 || keys?.length === 0) return out;
  const add = (rows: RowDataPacket[]): void => {
    for (const row of rows) out.get(text(row.env))?.set(text(row.k), row.v as string);
  };
  if (keys === undefined) {
    add(await query<RowDataPacket[]>(db, 'SELECT env, k, v FROM vitefa_values WHERE env IN (?) ORDER BY env, k', [envs]));
    return out;
  }
  for (let i = 0; i < keys.length; i += BATCH_ROWS) {
    add(await query<RowDataPacket[]>(db, 'SELECT env, k, v FROM vitefa_values WHERE env IN (?) AND k IN (?)', [envs, keys.slice(i, i + BATCH_ROWS)]));
  }
  return out;
}

/** A parent list as a column holds it (a JSON array of names); undefined for NULL. */
export function parentList(value: unknown): string[] | undefined {
  if (value === null || value === undefined) return undefined;
  const parsed: unknown = JSON.parse(text(value));
  return Array.isArray(parsed) ? parsed.map(String) : [];
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

/** A release (without its changes) from its row in vitefa_releases (with `via` when a `via` release's row gives it). */
export function releaseOf(row: RowDataPacket): StoredRelease {
  return releaseFrom({
    env: text(row.env), rev: row.rev as number, prev: row.prev as number, time: Number(row.time),
    author: row.author as string, op: row.op as string, drop: row.dropped === 1, chain: text(row.chain),
    parents: parentList(row.parents), via: row.via === null || row.via === undefined ? undefined : text(row.via),
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
