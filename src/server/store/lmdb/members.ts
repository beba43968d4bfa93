import type { Database } from 'lmdb';
import { promised } from '../../../promised.js';
import type { Mutex } from '../mutex.js';
import type { MemberRecord, MemberRegistry } from '../types.js';

/** The server of an embedded store (one, in practice), in its own LMDB database. */
export class LmdbMembers implements MemberRegistry {
  private readonly db: () => Database<MemberRecord, string>;
  private readonly mutex: Mutex;

  constructor(db: () => Database<MemberRecord, string>, mutex: Mutex) {
    this.db = db;
    this.mutex = mutex;
  }

  register(record: Omit<MemberRecord, 'gen'>): Promise<number> {
    return this.mutex.run(async () => {
      const db = this.db();
      const gen = (db.get(record.id)?.gen ?? 0) + 1;
      await db.put(record.id, { ...record, gen });
      return gen;
    });
  }

  heartbeat(record: MemberRecord): Promise<boolean> {
    return this.mutex.run(async () => {
      const db = this.db();
      if (db.get(record.id)?.gen !== record.gen) return false;
      await db.put(record.id, record);
      return true;
    });
  }

  list(): Promise<MemberRecord[]> {
    return promised(() => [...this.db().getRange()].map((e) => e.value));
  }

  prune(before: number): Promise<number> {
    return this.mutex.run(async () => {
      const db = this.db();
      let n = 0;
      for (const { key, value } of db.getRange()) {
        if (value.heartbeat < before) {
          await db.remove(key);
          n++;
        }
      }
      return n;
    });
  }
}
