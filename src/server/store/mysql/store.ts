import type { RowDataPacket } from 'mysql2/promise';
import type { EnvInfo } from '../../../protocol/index.js';
import type {
  ChangeRef, CommitMeta, EnvState, HistoryPage, HistoryPageQuery, Planner, Store, StoredRelease,
} from '../types.js';
import { MysqlAccess } from './access.js';
import { openFailure } from './failures.js';
import { MysqlHistory } from './history.js';
import { MysqlIdentity } from './identity.js';
import { MysqlMembers } from './members.js';
import { migrate } from './migrations.js';
import { MysqlPool } from './pool.js';
import { query, text } from './query.js';
import { parentList, readHead } from './rows.js';
import { parseMysqlUrl } from './url.js';
import { MysqlWrites } from './writes.js';

export { parseMysqlUrl, type MysqlTarget } from './url.js';

export interface MysqlStoreOptions {
  /** Releases kept per environment before the oldest are pruned. */
  retainReleases: number;
  /** Audit entries kept; the oldest beyond are pruned. */
  retainAudit?: number;
}

/**
 * The shared system of record: one MySQL (or MariaDB) database that several
 * servers write at the same time. This class puts the parts together and
 * answers what reads the state as a whole (head, environments); the parts:
 * connections and their health (pool.ts), the write transaction
 * (writes.ts), reads of releases and history (history.ts), and accounts,
 * members and identity (access.ts, members.ts, identity.ts).
 */
export class MysqlStore implements Store {
  readonly description: string;
  readonly access: MysqlAccess;
  readonly members: MysqlMembers;
  readonly identity: MysqlIdentity;
  readonly shared = true;
  private readonly pool: MysqlPool;
  private readonly writes: MysqlWrites;
  private readonly releases: MysqlHistory;

  constructor(url: string, options: MysqlStoreOptions) {
    this.pool = new MysqlPool(parseMysqlUrl(url));
    this.description = this.pool.description;
    this.access = new MysqlAccess(this.pool, options.retainAudit ?? 1_000_000);
    this.members = new MysqlMembers(this.pool);
    this.identity = new MysqlIdentity(this.pool);
    this.writes = new MysqlWrites(this.pool, options.retainReleases);
    this.releases = new MysqlHistory(this.pool);
  }

  async open(): Promise<void> {
    if (this.pool.opened) return;
    try {
      await this.pool.guard(async () => {
        await this.pool.open(async (conn) => {
          await migrate(conn, this.description);
          await query(conn, 'INSERT IGNORE INTO vitefa_head (id, rev) VALUES (1, 0)');
        });
        await this.identity.ensure();
      });
    } catch (err) {
      await this.close();
      throw openFailure(this.description, err);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  head(): Promise<number> {
    return this.pool.guard(() => this.pool.read(readHead));
  }

  loadAll(): Promise<EnvState[]> {
    return this.pool.guard(() => this.pool.snapshot(async (conn) => {
      const envs = await query<RowDataPacket[]>(conn, 'SELECT name, rev, chain, parents FROM vitefa_envs ORDER BY name');
      const out = new Map<string, EnvState>();
      for (const row of envs) {
        const state: EnvState = { env: text(row.name), rev: row.rev as number, values: new Map(), chain: text(row.chain) };
        const parents = parentList(row.parents) ?? [];
        if (parents.length > 0) state.parents = parents;
        out.set(state.env, state);
      }
      const values = await query<RowDataPacket[]>(conn, 'SELECT env, k, v FROM vitefa_values ORDER BY env, k');
      for (const row of values) out.get(text(row.env))?.values.set(text(row.k), row.v as string);
      return [...out.values()];
    }));
  }

  listEnvs(): Promise<EnvInfo[]> {
    return this.pool.guard(async () => {
      const rows = await this.pool.read((db) => query<RowDataPacket[]>(
        db,
        `SELECT e.name, e.rev, COUNT(v.k) AS n FROM vitefa_envs e
         LEFT JOIN vitefa_values v ON v.env = e.name GROUP BY e.name, e.rev ORDER BY e.name`,
      ));
      return rows.map((row) => ({ env: text(row.name), rev: row.rev as number, keys: Number(row.n) }));
    });
  }

  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.writes.createEnv(env, meta);
  }

  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.writes.dropEnv(env, meta);
  }

  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null> {
    return this.writes.commit(env, meta, plan);
  }

  releasesSince(after: number, limit: number): Promise<StoredRelease[]> {
    return this.releases.releasesSince(after, limit);
  }

  releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
    return this.releases.releasesBetween(env, from, to, elideAbove);
  }

  historyPage(env: string, query: HistoryPageQuery): Promise<HistoryPage> {
    return this.releases.historyPage(env, query);
  }

  changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]> {
    return this.releases.changeValues(env, refs);
  }
}
