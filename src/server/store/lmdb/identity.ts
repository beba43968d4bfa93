import { randomBytes } from 'node:crypto';
import type { Database } from 'lmdb';
import { PROOF_KEPT_MS, newStoreId, type StoreChallenge, type StoreIdentity } from '../identity.js';
import { promised } from '../../../promised.js';
import type { Mutex } from '../mutex.js';
import type { LmdbFiles } from './files.js';

/** The identity of an embedded store: its id in `meta`, the rows for peers' proofs in `proofs`. */
export class LmdbIdentity implements StoreIdentity {
  constructor(private readonly files: () => LmdbFiles, private readonly mutex: Mutex) {}

  id(): Promise<string> {
    return promised(() => String(this.files().meta.get('store-id') ?? ''));
  }

  challenge(): Promise<StoreChallenge> {
    return this.mutex.run(async () => {
      const files = this.files();
      const key = randomBytes(16).toString('hex');
      const secret = randomBytes(32);
      const now = Date.now();
      await files.root.transaction(() => {
        for (const { key: old, value } of files.proofs.getRange()) if (value[1] < now - PROOF_KEPT_MS) void files.proofs.remove(old);
        void files.proofs.put(key, [secret, now]);
      });
      return { key, secret };
    });
  }

  answer(key: string): Promise<Buffer | undefined> {
    return promised(() => {
      const row = this.files().proofs.get(key);
      return row === undefined ? undefined : Buffer.from(row[0]);
    });
  }

  adopt(serverId: string): Promise<{ before: string; after: string }> {
    return this.mutex.run(async () => {
      const files = this.files();
      const before = String(files.meta.get('store-id') ?? '');
      const after = newStoreId();
      await files.root.transaction(() => {
        void (files.meta as unknown as Database<unknown, string>).put('store-id', after);
        for (const { key } of files.servers.getRange()) if (key !== serverId) void files.servers.remove(key);
        for (const { key } of files.proofs.getRange()) void files.proofs.remove(key);
        void files.access.meta.remove('secret:peer-key');
      });
      return { before, after };
    });
  }
}
