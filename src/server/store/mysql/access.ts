import { randomBytes } from 'node:crypto';
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { alreadyExists, lastAdmin, noSuchName } from '../access-errors.js';
import { loadedAccount } from '../accounts.js';
import { codeOf, query, text, type MysqlRunner } from './query.js';
import type {
  AccessStore, AccountRecord, AccountRole, AuditQuery, AuditRecord, Credentials, StoredVerifier, TokenRecord,
} from '../types.js';

/** Audit rows are pruned about once every this many appended. */
const PRUNE_EVERY = 1000;

/**
 * Accounts, tokens and audit in MySQL (tables of schema 2). Each credential
 * change is one transaction that also bumps `vitefa_access.stamp`, whose row
 * lock orders credential changes across the servers sharing the database
 * (the last admin cannot be deleted by two servers at once).
 */
export class MysqlAccess implements AccessStore {
  private readonly store: MysqlRunner;
  private readonly retainAudit: number;
  private appended = 0;

  constructor(store: MysqlRunner, retainAudit: number) {
    this.store = store;
    this.retainAudit = retainAudit;
  }

  load(): Promise<Credentials> {
    return this.store.guard(() => this.store.transaction(async (tx) => {
      const accounts = await query<RowDataPacket[]>(tx, 'SELECT * FROM vitefa_accounts ORDER BY name');
      const tokens = await query<RowDataPacket[]>(tx, 'SELECT * FROM vitefa_tokens ORDER BY name');
      const stamp = await readStamp(tx, false);
      return {
        commit: false,
        value: {
          // read_envs NULL: made before read grants (schema 8); uid '': made before identities.
          accounts: accounts.map((r) => loadedAccount({
            name: text(r.name), role: text(r.role) as AccountRole, envs: JSON.parse(text(r.envs)) as string[],
            reads: r.read_envs === null ? null : JSON.parse(text(r.read_envs)) as string[], uid: text(r.uid),
            verifier: verifierOf(r), created: Number(r.created),
          })),
          tokens: tokens.map((r) => ({ name: text(r.name), id: text(r.id), envs: JSON.parse(text(r.envs)) as string[], verifier: verifierOf(r), created: Number(r.created) })),
          stamp,
        },
      };
    }));
  }

  stamp(): Promise<number> {
    return this.store.guard(() => this.store.read(async (db) => {
      const rows = await query<RowDataPacket[]>(db, 'SELECT stamp FROM vitefa_access WHERE id = 1');
      return Number(rows[0]?.stamp ?? 0);
    }));
  }

  createAccount(account: AccountRecord, onlyIfNone = false): Promise<boolean> {
    return this.change(async (tx) => {
      if (onlyIfNone) {
        const rows = await query<RowDataPacket[]>(tx, 'SELECT COUNT(*) AS n FROM vitefa_accounts');
        if (Number(rows[0]?.n) > 0) return false;
      }
      try {
        const v = account.verifier;
        await query(tx, 'INSERT INTO vitefa_accounts (name, role, envs, read_envs, uid, salt, iterations, stored_key, server_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
          account.name, account.role, JSON.stringify(account.envs), JSON.stringify(account.reads), account.uid, v.salt, v.iterations, v.storedKey, v.serverKey, account.created,
        ]);
      } catch (err) {
        if (codeOf(err) === 'ER_DUP_ENTRY') throw alreadyExists('account', account.name);
        throw err;
      }
      return true;
    });
  }

  setVerifier(name: string, v: StoredVerifier): Promise<void> {
    return this.change(async (tx) => {
      const result = await query(tx, 'UPDATE vitefa_accounts SET salt = ?, iterations = ?, stored_key = ?, server_key = ? WHERE name = ?', [
        v.salt, v.iterations, v.storedKey, v.serverKey, name,
      ]);
      if (result.affectedRows === 0) throw noSuchName('account', name);
    });
  }

  deleteAccount(name: string): Promise<void> {
    return this.change(async (tx) => {
      const rows = await query<RowDataPacket[]>(tx, 'SELECT role FROM vitefa_accounts WHERE name = ? FOR UPDATE', [name]);
      if (rows.length === 0) throw noSuchName('account', name);
      if (text(rows[0].role) === 'admin') {
        const admins = await query<RowDataPacket[]>(tx, "SELECT COUNT(*) AS n FROM vitefa_accounts WHERE role = 'admin'");
        if (Number(admins[0]?.n) <= 1) throw lastAdmin(name);
      }
      await query(tx, 'DELETE FROM vitefa_accounts WHERE name = ?', [name]);
    });
  }

  createToken(token: TokenRecord): Promise<void> {
    return this.change(async (tx) => {
      const v = token.verifier;
      try {
        await query(tx, 'INSERT INTO vitefa_tokens (name, id, envs, salt, iterations, stored_key, server_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
          token.name, token.id, JSON.stringify(token.envs), v.salt, v.iterations, v.storedKey, v.serverKey, token.created,
        ]);
      } catch (err) {
        if (codeOf(err) !== 'ER_DUP_ENTRY') throw err;
        const byName = await query<RowDataPacket[]>(tx, 'SELECT 1 FROM vitefa_tokens WHERE name = ?', [token.name]);
        throw byName.length > 0 ? alreadyExists('token', token.name) : alreadyExists('token id', token.id);
      }
    });
  }

  deleteToken(name: string): Promise<void> {
    return this.change(async (tx) => {
      const result = await query(tx, 'DELETE FROM vitefa_tokens WHERE name = ?', [name]);
      if (result.affectedRows === 0) throw noSuchName('token', name);
    });
  }

  appendAudit(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.store.guard(() => this.store.transaction(async (tx) => {
      await query(tx, 'INSERT INTO vitefa_audit (time, actor, addr, action, env, result, code, detail) VALUES ?', [
        records.map((r) => [r.time, r.actor, r.addr, r.action, r.env, r.result, r.code, r.detail]),
      ]);
      this.appended += records.length;
      if (this.appended >= PRUNE_EVERY) {
        this.appended = 0;
        const top = await query<RowDataPacket[]>(tx, 'SELECT MAX(seq) AS top FROM vitefa_audit');
        const floor = Number(top[0]?.top ?? 0) - this.retainAudit;
        if (floor > 0) await query(tx, 'DELETE FROM vitefa_audit WHERE seq <= ?', [floor]);
      }
      return { commit: true, value: undefined };
    }));
  }

  audit(q: AuditQuery): Promise<(AuditRecord & { seq: number })[]> {
    return this.store.guard(() => this.store.read(async (db) => {
      const where: string[] = [];
      const params: unknown[] = [];
      if (q.env !== undefined) {
        where.push('env = ?');
        params.push(q.env);
      }
      if (q.actor !== undefined) {
        where.push('actor = ?');
        params.push(q.actor);
      }
      if (q.since !== undefined) {
        where.push('time >= ?');
        params.push(q.since);
      }
      params.push(q.limit);
      const rows = await query<RowDataPacket[]>(db, `SELECT * FROM vitefa_audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`, params);
      return rows.map((r) => ({
        seq: Number(r.seq), time: Number(r.time), actor: text(r.actor), addr: text(r.addr), action: text(r.action), env: text(r.env),
        result: text(r.result) as AuditRecord['result'], code: text(r.code), detail: text(r.detail),
      }));
    }));
  }

  secret(name: string, bytes: number): Promise<Buffer> {
    return this.store.guard(() => this.store.transaction(async (tx) => {
      // INSERT IGNORE then read: of servers starting together, the first one's secret wins for all.
      await query(tx, 'INSERT IGNORE INTO vitefa_secrets (name, value) VALUES (?, ?)', [name, randomBytes(bytes)]);
      const rows = await query<RowDataPacket[]>(tx, 'SELECT value FROM vitefa_secrets WHERE name = ?', [name]);
      return { commit: true, value: Buffer.from(rows[0].value as Buffer) };
    }));
  }

  /** A credential change: the stamp's row lock first (orders changes across servers), then `body`, then the stamp bumped. */
  private change<T>(body: (tx: PoolConnection) => Promise<T>): Promise<T> {
    return this.store.guard(() => this.store.transaction(async (tx) => {
      await readStamp(tx, true);
      const value = await body(tx);
      await query(tx, 'UPDATE vitefa_access SET stamp = stamp + 1 WHERE id = 1');
      return { commit: true, value };
    }));
  }
}

async function readStamp(tx: PoolConnection, forUpdate: boolean): Promise<number> {
  const rows = await query<RowDataPacket[]>(tx, `SELECT stamp FROM vitefa_access WHERE id = 1${forUpdate ? ' FOR UPDATE' : ''}`);
  return Number(rows[0]?.stamp ?? 0);
}

function verifierOf(r: RowDataPacket): StoredVerifier {
  return { salt: text(r.salt), iterations: Number(r.iterations), storedKey: text(r.stored_key), serverKey: text(r.server_key) };
}
