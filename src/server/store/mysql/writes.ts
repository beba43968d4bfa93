import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { CHAIN_GENESIS, WireError, type KeyChange } from '../../../protocol/index.js';
import { RequestError } from '../../errors.js';
import { keyChangesFrom } from '../changes.js';
import { builtOn, dependentsOf, missingDependent, parentsChange, planOf, viaTargets } from '../plan.js';
import { newRelease } from '../release.js';
import { RequestReplay, type RequestRecord } from '../requests.js';
import type { CommitMeta, EnvView, Planner, StoredRelease } from '../types.js';
import { between } from './history.js';
import type { MysqlPool } from './pool.js';
import { codeOf, query, text } from './query.js';
import { findRequest, keepRequest, seenRequest } from './request-ids.js';
import { BATCH_ROWS, batches, readEntries, readEnv, readExisting, readLayout, readOwnOf, readValues, type EnvRow } from './rows.js';

/**
 * The write transaction: each release is one InnoDB transaction that first
 * locks the single `vitefa_head` row (SELECT … FOR UPDATE), then the rows of
 * the environments it writes. The head lock is held until COMMIT, so every
 * writer is serialised cluster-wide: revisions are committed in order (a
 * reader of `rev > X ORDER BY rev` never sees N+1 without N), what a plan
 * reads of other environments is current (the transaction's snapshot starts
 * after the lock), and no two writers can deadlock on their lock order. A
 * request id is kept in the same transaction, and a write is made at most
 * once per id.
 */
export class MysqlWrites {
  constructor(private readonly pool: MysqlPool, private readonly retainReleases: number) {}

  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.once(meta, env, () => this.pool.transaction(async (tx) => {
      await lockHead(tx);
      await seenRequest(tx, meta);
      try {
        await query(tx, 'INSERT INTO vitefa_envs (name, rev, floor, kept, created) VALUES (?, 0, 0, 1, 0)', [env]);
      } catch (err) {
        if (codeOf(err) === 'ER_DUP_ENTRY') throw new RequestError(WireError.ENV_EXISTS, `environment ${env} already exists`);
        throw err;
      }
      const release = newRelease(env, await allocateRevision(tx), 0, meta, [], CHAIN_GENESIS);
      await insertRelease(tx, release);
      await query(tx, 'UPDATE vitefa_envs SET rev = ?, created = ?, chain = ? WHERE name = ?', [release.rev, release.rev, release.chain, env]);
      await keepRequest(tx, meta, env, release.rev, 0, true);
      return { commit: true, value: release };
    }, meta.deadline));
  }

  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.once(meta, env, () => this.pool.transaction(async (tx) => {
      await lockHead(tx);
      const current = await readEnv(tx, env, true);
      await seenRequest(tx, meta);
      const dependents = dependentsOf(await readLayout(tx), env);
      if (dependents.length > 0) throw builtOn(env, dependents);
      const changes: KeyChange[] = [...(await readEntries(tx, env))].map(([k, v]) => [k, v, null]);
      const release = newRelease(env, await allocateRevision(tx), current.rev, meta, changes, current.chain, true);
      await insertRelease(tx, release);
      // The releases stay (other servers still have to pick up the drop); the next incarnation ignores them.
      await query(tx, 'DELETE FROM vitefa_values WHERE env = ?', [env]);
      await query(tx, 'DELETE FROM vitefa_envs WHERE name = ?', [env]);
      await keepRequest(tx, meta, env, release.rev, changes.length, true);
      return { commit: true, value: release };
    }, meta.deadline));
  }

  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null> {
    return this.once(meta, env, () => this.pool.transaction(async (tx) => {
      // Locking reads first: later plain reads of this transaction then see every release committed.
      const head = await lockHead(tx);
      const current = await readEnv(tx, env, true);
      await seenRequest(tx, meta);
      const view: EnvView = {
        env,
        rev: current.rev,
        created: current.created,
        head,
        get: async (key) => (await readValues(tx, env, [key])).get(key),
        entries: () => readEntries(tx, env),
        layout: () => readLayout(tx),
        exist: (names) => readExisting(tx, names),
        ownOf: (envs, keys) => readOwnOf(tx, envs, keys),
        releasesAfter: (fromRev) => between(tx, env, current, fromRev, current.rev),
      };
      const planned = planOf(await plan(view));
      const before = await readValues(tx, env, [...new Set(planned.changes.map(([key]) => key))]);
      const changes = keyChangesFrom(planned.changes, (key) => before.get(key));
      const parentsChanged = parentsChange(planned, current.parents);
      if (changes.length === 0 && !parentsChanged) {
        // Nothing to release; the id is kept all the same, so that its retry changes nothing either.
        if (meta.requestId === undefined) return { commit: false, value: null };
        await keepRequest(tx, meta, env, current.rev, 0, false);
        return { commit: true, value: null };
      }
      const parents = parentsChanged ? planned.parents : undefined;
      const release = newRelease(env, await allocateRevision(tx), current.rev, meta, changes, current.chain, false, { merged: planned.merged?.get(env), parents });
      await writeValues(tx, env, changes);
      await insertRelease(tx, release);
      const next = await this.prune(tx, env, { ...current, rev: release.rev, kept: current.kept + 1, chain: release.chain! });
      await query(tx, 'UPDATE vitefa_envs SET rev = ?, floor = ?, kept = ?, chain = ? WHERE name = ?', [next.rev, next.floor, next.kept, next.chain, env]);
      if (parents !== undefined) await query(tx, 'UPDATE vitefa_envs SET parents = ? WHERE name = ?', [parentsColumn(parents), env]);
      const group = await writeVia(tx, env, release, meta, viaTargets(planned, env));
      await keepRequest(tx, meta, env, release.rev, changes.length, true);
      return { commit: true, value: group.length === 0 ? release : { ...release, group } };
    }, meta.deadline));
  }

  /** Drops the oldest releases of `env` beyond the retention limit, inside the commit's transaction. */
  private async prune(tx: PoolConnection, env: string, next: EnvRow): Promise<EnvRow> {
    const excess = next.kept - this.retainReleases;
    if (excess <= 0) return next;
    const sql = 'SELECT rev FROM vitefa_releases WHERE env = ? AND rev >= ? AND rev < ? ORDER BY rev LIMIT ?';
    const rows = await query<RowDataPacket[]>(tx, sql, [env, next.created, next.rev, excess]);
    if (rows.length === 0) return next;
    const revs = rows.map((row) => row.rev as number);
    await query(tx, 'DELETE FROM vitefa_changes WHERE rev IN (?)', [revs]);
    // The `via` releases they made go with them: they show their changes.
    await query(tx, 'DELETE FROM vitefa_via WHERE rev IN (?)', [revs]);
    await query(tx, 'DELETE FROM vitefa_releases WHERE rev IN (?)', [revs]);
    return { ...next, floor: revs[revs.length - 1], kept: next.kept - revs.length };
  }

  /**
   * A configuration write, made at most once per request id. The check in
   * the transaction (seenRequest) sees every id committed before it took the
   * head's lock; should an id be committed meanwhile by a write racing it
   * (the same retry sent to two servers), this one fails — on the id's key,
   * or creating an environment that now exists — and it is answered from
   * the id's record instead; so is the retry of a drop, which finds its
   * environment gone before it looks for its id.
   */
  private async once<T>(meta: CommitMeta, env: string, write: () => Promise<T>): Promise<T> {
    try {
      return await this.pool.guard(write);
    } catch (err) {
      const duplicate = codeOf((err as { cause?: unknown }).cause ?? err) === 'ER_DUP_ENTRY';
      const raced = duplicate || (err instanceof RequestError && (err.status === WireError.ENV_EXISTS || err.status === WireError.ENV_NOT_FOUND));
      if (meta.requestId === undefined || err instanceof RequestReplay || !raced) throw err;
      let record: RequestRecord | undefined;
      try {
        record = await this.pool.guard(() => this.pool.readBy(meta.deadline, (conn) => findRequest(conn, meta.requestId!)));
      } catch (readErr) {
        // On its key, another write of this id committed: the change is applied, its revision unknown here.
        if (duplicate) {
          throw new RequestError(WireError.OUTCOME_UNKNOWN, `database ${this.pool.description} took request ${meta.requestId} as committed by another write, then did not say which revision: look in \`history ${env}\``, { cause: readErr });
        }
        throw err;
      }
      if (record !== undefined) throw new RequestReplay(record);
      throw err;
    }
  }
}

/** Takes the head row's lock, held until the transaction ends: every writer waits for the one before it. */
async function lockHead(tx: PoolConnection): Promise<number> {
  const rows = await query<RowDataPacket[]>(tx, 'SELECT rev FROM vitefa_head WHERE id = 1 FOR UPDATE');
  if (rows.length !== 1) throw new Error('vitefa_head has no row');
  return Number(rows[0].rev);
}

/**
 * The next revision, under the head row's lock the transaction took first
 * (lockHead) and holds until COMMIT; a rollback also rolls the counter back,
 * leaving no gap.
 */
async function allocateRevision(tx: PoolConnection): Promise<number> {
  const result = await query(tx, 'UPDATE vitefa_head SET rev = LAST_INSERT_ID(rev + 1) WHERE id = 1');
  if (result.affectedRows !== 1) throw new Error('vitefa_head has no row');
  return result.insertId;
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
  await query(tx, 'INSERT INTO vitefa_releases (rev, env, prev, time, author, op, dropped, chain, parents) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    r.rev, r.env, r.prev, r.time, r.author, r.op, r.drop === true ? 1 : 0, r.chain ?? '', r.parents === undefined ? null : JSON.stringify(r.parents),
  ]);
  const rows = r.changes.map(([key, before, after], seq) => [r.rev, seq, key, before, after]);
  for (const batch of batches(rows)) {
    await query(tx, 'INSERT INTO vitefa_changes (rev, seq, k, before_v, after_v) VALUES ?', [batch]);
  }
}

/**
 * The `via` releases of the write `release` to `env`: one for each environment of `targets` (by name,
 * with its merged changes), a row of vitefa_via each, its environment's revision and chain moved on.
 */
async function writeVia(tx: PoolConnection, env: string, release: StoredRelease, meta: CommitMeta, targets: [string, KeyChange[]][]): Promise<StoredRelease[]> {
  const group: StoredRelease[] = [];
  // A statement per batch of environments, not per environment: a write to a base with a hundred dependents is a
  // few statements more than a plain write, whatever their number.
  const rows = new Map<string, { rev: number; chain: string }>();
  for (let i = 0; i < targets.length; i += VIA_BATCH) {
    const names = targets.slice(i, i + VIA_BATCH).map(([dep]) => dep);
    for (const row of await query<RowDataPacket[]>(tx, 'SELECT name, rev, chain FROM vitefa_envs WHERE name IN (?) FOR UPDATE', [names])) {
      rows.set(text(row.name), { rev: row.rev as number, chain: text(row.chain) });
    }
  }
  for (const [dep, merged] of targets) {
    const row = rows.get(dep);
    if (row === undefined) throw missingDependent(env, dep);
    group.push(newRelease(dep, release.rev, row.rev, meta, [], row.chain, false, { merged, via: env }));
  }
  for (const batch of batches(group.map((r) => [r.rev, r.env, env, r.prev, r.chain ?? '']))) {
    await query(tx, 'INSERT INTO vitefa_via (rev, env, via, prev, chain) VALUES ?', [batch]);
  }
  for (let i = 0; i < group.length; i += VIA_BATCH) {
    const part = group.slice(i, i + VIA_BATCH);
    const cases = part.map(() => 'WHEN ? THEN ?').join(' ');
    await query(tx, `UPDATE vitefa_envs SET rev = ?, chain = CASE name ${cases} END WHERE name IN (?)`, [
      release.rev, ...part.flatMap((r) => [r.env, r.chain ?? '']), part.map((r) => r.env),
    ]);
  }
  return group;
}

/** Environments read or updated by one statement of a write's via releases. */
const VIA_BATCH = 500;

/** A parent list as vitefa_envs keeps it: NULL for none. */
const parentsColumn = (parents: string[]): string | null => (parents.length === 0 ? null : JSON.stringify(parents));
