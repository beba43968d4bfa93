import { randomBytes } from 'node:crypto';
import type { Database, RootDatabase } from 'lmdb';
import { promised } from '../../../promised.js';
import type { Mutex } from '../mutex.js';
import { alreadyExists, lastAdmin, noSuchName } from '../access-errors.js';
import { loadedAccount, type StoredAccount } from '../accounts.js';
import type {
  AccessStore, AccountRecord, AuditQuery, AuditRecord, Credentials, StoredVerifier, TokenRecord,
} from '../types.js';

interface Dbs {
  root: RootDatabase;
  meta: Database<unknown, string>;
  /** Records written before read grants and identities lack them (loadedAccount fills them in). */
  accounts: Database<StoredAccount, string>;
  tokens: Database<TokenRecord, string>;
  audit: Database<AuditRecord, number>;
}

/**
 * Accounts, tokens and audit of the embedded store: three more databases in
 * the same LMDB environment, changed under the store's mutex in one LMDB
 * transaction each (the stamp with them).
 */
export class LmdbAccess implements AccessStore {
  private readonly dbs: () => Dbs;
  private readonly mutex: Mutex;
  private readonly retainAudit: number;

  constructor(dbs: () => Dbs, mutex: Mutex, retainAudit: number) {
    this.dbs = dbs;
    this.mutex = mutex;
    this.retainAudit = retainAudit;
  }

  async load(): Promise<Credentials> {
    const { accounts, tokens } = this.dbs();
    return {
      accounts: [...accounts.getRange()].map((e) => loadedAccount(e.value)),
      tokens: [...tokens.getRange()].map((e) => e.value),
      stamp: await this.stamp(),
    };
  }

  stamp(): Promise<number> {
    return promised(() => (this.dbs().meta.get('accessStamp') as number | undefined) ?? 0);
  }

  createAccount(account: AccountRecord, onlyIfNone = false): Promise<boolean> {
    return this.change(({ accounts }) => {
      if (onlyIfNone && accounts.getKeysCount() > 0) return false;
      if (accounts.get(account.name) !== undefined) throw alreadyExists('account', account.name);
      void accounts.put(account.name, account);
      return true;
    });
  }

  setVerifier(name: string, verifier: StoredVerifier): Promise<void> {
    return this.change(({ accounts }) => {
      const account = accounts.get(name);
      if (account === undefined) throw noSuchName('account', name);
      void accounts.put(name, { ...account, verifier }); // its grants and identity stay as they are
    });
  }

  deleteAccount(name: string): Promise<void> {
    return this.change(({ accounts }) => {
      const account = accounts.get(name);
      if (account === undefined) throw noSuchName('account', name);
      if (account.role === 'admin' && [...accounts.getRange()].filter((e) => e.value.role === 'admin').length === 1) throw lastAdmin(name);
      void accounts.remove(name);
    });
  }

  createToken(token: TokenRecord): Promise<void> {
    return this.change(({ tokens }) => {
      if (tokens.get(token.name) !== undefined) throw alreadyExists('token', token.name);
      if ([...tokens.getRange()].some((e) => e.value.id === token.id)) throw alreadyExists('token id', token.id);
      void tokens.put(token.name, token);
    });
  }

  deleteToken(name: string): Promise<void> {
    return this.change(({ tokens }) => {
      if (tokens.get(name) === undefined) throw noSuchName('token', name);
      void tokens.remove(name);
    });
  }

  appendAudit(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.mutex.run(async () => {
      const { root, meta, audit } = this.dbs();
      await root.transaction(() => {
        let seq = (meta.get('auditSeq') as number | undefined) ?? 0;
        for (const record of records) void audit.put(++seq, record);
        void meta.put('auditSeq', seq);
        // Keep the newest retainAudit entries.
        const floor = seq - this.retainAudit;
        if (floor > 0) for (const key of audit.getKeys({ end: floor + 1, limit: records.length + 100 })) void audit.remove(key);
      });
    });
  }

  audit(query: AuditQuery): Promise<(AuditRecord & { seq: number })[]> {
    return promised(() => {
      const { audit } = this.dbs();
      const out: (AuditRecord & { seq: number })[] = [];
      for (const { key: seq, value } of audit.getRange({ reverse: true })) {
        if (query.since !== undefined && value.time < query.since) break;
        if (query.env !== undefined && value.env !== query.env) continue;
        if (query.actor !== undefined && value.actor !== query.actor) continue;
        out.push({ seq, ...value });
        if (out.length >= query.limit) break;
      }
      return out;
    });
  }

  secret(name: string, bytes: number): Promise<Buffer> {
    return this.mutex.run(async () => {
      const { root, meta } = this.dbs();
      const key = `secret:${name}`;
      const existing = meta.get(key) as string | undefined;
      if (existing !== undefined) return Buffer.from(existing, 'base64');
      const made = randomBytes(bytes);
      await root.transaction(() => meta.put(key, made.toString('base64')));
      return made;
    });
  }

  /** One credential change in one transaction, with the stamp; a throw from `body` aborts it. */
  private change<T>(body: (dbs: Dbs) => T): Promise<T> {
    return this.mutex.run(async () => {
      const dbs = this.dbs();
      let result!: T;
      await dbs.root.transaction(() => {
        result = body(dbs);
        void dbs.meta.put('accessStamp', ((dbs.meta.get('accessStamp') as number | undefined) ?? 0) + 1);
      });
      return result;
    });
  }
}

export type { Dbs as AccessDbs };
