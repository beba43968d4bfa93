import { randomBytes } from 'node:crypto';
import type { RowDataPacket } from 'mysql2/promise';
import { query, text, type MysqlRunner } from './query.js';
import { PROOF_KEPT_MS, newStoreId, type StoreChallenge, type StoreIdentity } from '../identity.js';

/** The identity of a MySQL store (vitefa_identity and vitefa_proofs, schema 7). */
export class MysqlIdentity implements StoreIdentity {
  private readonly store: MysqlRunner;

  constructor(store: MysqlRunner) {
    this.store = store;
  }

  /** At open: a store id for a database that has none yet (a new one, or one made by an older build). */
  async ensure(): Promise<void> {
    await this.store.guard(() => this.store.read((db) => query(db,
      'INSERT IGNORE INTO vitefa_identity (id, store, created) VALUES (1, ?, ?)', [newStoreId(), Date.now()])));
  }

  id(): Promise<string> {
    return this.store.guard(async () => {
      const rows = await this.store.read((db) => query<RowDataPacket[]>(db, 'SELECT store FROM vitefa_identity WHERE id = 1'));
      return rows.length === 0 ? '' : text(rows[0].store);
    });
  }

  challenge(): Promise<StoreChallenge> {
    const key = randomBytes(16).toString('hex');
    const secret = randomBytes(32);
    const now = Date.now();
    return this.store.guard(() => this.store.transaction(async (tx) => {
      await query(tx, 'DELETE FROM vitefa_proofs WHERE time < ? ORDER BY time LIMIT 100', [now - PROOF_KEPT_MS]);
      await query(tx, 'INSERT INTO vitefa_proofs (k, secret, time) VALUES (?, ?, ?)', [key, secret, now]);
      return { commit: true, value: { key, secret } };
    }));
  }

  answer(key: string): Promise<Buffer | undefined> {
    return this.store.guard(async () => {
      const rows = await this.store.read((db) => query<RowDataPacket[]>(db, 'SELECT secret FROM vitefa_proofs WHERE k = ?', [key]));
      return rows.length === 0 ? undefined : Buffer.from(rows[0].secret as Buffer);
    });
  }

  adopt(serverId: string): Promise<{ before: string; after: string }> {
    const after = newStoreId();
    return this.store.guard(() => this.store.transaction(async (tx) => {
      const rows = await query<RowDataPacket[]>(tx, 'SELECT store FROM vitefa_identity WHERE id = 1 FOR UPDATE');
      const before = rows.length === 0 ? '' : text(rows[0].store);
      await query(tx,
        'INSERT INTO vitefa_identity (id, store, created, adopted) VALUES (1, ?, ?, ?) ON DUPLICATE KEY UPDATE store = VALUES(store), adopted = VALUES(adopted)',
        [after, Date.now(), Date.now()]);
      // Nothing may lead back to the servers of the store this was copied from.
      await query(tx, 'DELETE FROM vitefa_servers WHERE id <> ?', [serverId]);
      await query(tx, 'DELETE FROM vitefa_proofs');
      // The copy's peer key is the original's: a new one, so that knowing it proves nothing here.
      await query(tx, "DELETE FROM vitefa_secrets WHERE name = 'peer-key'");
      return { commit: true, value: { before, after } };
    }));
  }
}
