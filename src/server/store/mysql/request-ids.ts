import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH, RequestReplay, type RequestRecord } from '../requests.js';
import type { CommitMeta } from '../types.js';
import { query, text } from './query.js';

/** The record kept for request id `rid` (vitefa_requests), if any. */
export async function findRequest(db: Pool | PoolConnection, rid: string): Promise<RequestRecord | undefined> {
  const rows = await query<RowDataPacket[]>(db, 'SELECT env, rev, changed, time, author, op, digest FROM vitefa_requests WHERE rid = ?', [rid]);
  const row = rows[0];
  return row === undefined ? undefined : {
    env: text(row.env), rev: Number(row.rev), changed: Number(row.changed), time: Number(row.time),
    author: text(row.author), op: text(row.op), digest: text(row.digest),
  };
}

/** A write whose request id was committed before is not made again: RequestReplay. */
export async function seenRequest(tx: PoolConnection, meta: CommitMeta): Promise<void> {
  if (meta.requestId === undefined) return;
  const record = await findRequest(tx, meta.requestId);
  if (record !== undefined) throw new RequestReplay(record);
}

/**
 * Keeps the write's request id with its result and whose request it was, in its transaction. A write
 * that allocated a revision holds the head row's lock, so the ids older than
 * REQUEST_IDS_KEPT_MS are dropped there, by every such write in turn.
 */
export async function keepRequest(tx: PoolConnection, meta: CommitMeta, env: string, rev: number, changed: number, holdsHead: boolean): Promise<void> {
  if (meta.requestId === undefined) return;
  await query(
    tx, 'INSERT INTO vitefa_requests (rid, env, rev, changed, time, author, op, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    [meta.requestId, env, rev, changed, meta.time, meta.author, meta.op, meta.requestDigest ?? ''],
  );
  if (holdsHead) await query(tx, 'DELETE FROM vitefa_requests WHERE time < ? ORDER BY time LIMIT ?', [meta.time - REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH]);
}
