import type { RowDataPacket } from 'mysql2/promise';
import { query, text, type MysqlRunner } from './query.js';
import type { MemberRecord, MemberRegistry } from '../types.js';

/** The servers of a MySQL store (vitefa_servers, schema 3). */
export class MysqlMembers implements MemberRegistry {
  private readonly store: MysqlRunner;

  constructor(store: MysqlRunner) {
    this.store = store;
  }

  register(record: Omit<MemberRecord, 'gen'>): Promise<number> {
    return this.store.guard(() => this.store.transaction(async (tx) => {
      // The row lock orders two processes registering one id: each gets its own generation.
      const rows = await query<RowDataPacket[]>(tx, 'SELECT gen FROM vitefa_servers WHERE id = ? FOR UPDATE', [record.id]);
      const gen = rows.length === 0 ? 1 : Number(rows[0].gen) + 1;
      await query(tx,
        `INSERT INTO vitefa_servers (id, gen, addrs, peer, state, agents, head, heartbeat, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE gen = VALUES(gen), addrs = VALUES(addrs), peer = VALUES(peer), state = VALUES(state),
           agents = VALUES(agents), head = VALUES(head), heartbeat = VALUES(heartbeat), started = VALUES(started)`,
        [record.id, gen, JSON.stringify(record.addrs), record.peer, record.state, record.agents, record.head, record.heartbeat, record.started]);
      return { commit: true, value: gen };
    }));
  }

  heartbeat(record: MemberRecord): Promise<boolean> {
    return this.store.guard(async () => {
      const result = await this.store.read((db) => query(db,
        'UPDATE vitefa_servers SET addrs = ?, peer = ?, state = ?, agents = ?, head = ?, heartbeat = ? WHERE id = ? AND gen = ?',
        [JSON.stringify(record.addrs), record.peer, record.state, record.agents, record.head, record.heartbeat, record.id, record.gen]));
      return result.affectedRows > 0;
    });
  }

  list(): Promise<MemberRecord[]> {
    return this.store.guard(async () => {
      const rows = await this.store.read((db) => query<RowDataPacket[]>(db, 'SELECT * FROM vitefa_servers ORDER BY id'));
      return rows.map((r) => ({
        id: text(r.id), gen: Number(r.gen), addrs: parseAddrs(text(r.addrs)), peer: text(r.peer), state: text(r.state),
        agents: Number(r.agents), head: Number(r.head), heartbeat: Number(r.heartbeat), started: Number(r.started),
      }));
    });
  }

  prune(before: number): Promise<number> {
    return this.store.guard(async () => {
      const result = await this.store.read((db) => query(db, 'DELETE FROM vitefa_servers WHERE heartbeat < ?', [before]));
      return result.affectedRows;
    });
  }
}

/** A row written by hand or by a broken build must not stop the others from being read. */
function parseAddrs(json: string): string[] {
  try {
    const value: unknown = JSON.parse(json);
    return Array.isArray(value) ? value.filter((a): a is string => typeof a === 'string') : [];
  } catch {
    return [];
  }
}
