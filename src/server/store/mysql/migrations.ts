import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { LocalErrorCode, VitefaError, WireError } from '../../../protocol/index.js';
import { RequestError } from '../../errors.js';

/**
 * The MySQL schema, as an ordered list of migrations. Never edit a migration
 * that has shipped: add a new one with the next version number.
 *
 * Choices that hold for every table:
 * - InnoDB (row locks and transactions are what the store's ordering rests on).
 * - Names and keys are VARBINARY: comparisons and unique keys are byte-exact.
 *   The `_bin` collations of utf8mb4 are PAD SPACE on MariaDB and MySQL 5.7,
 *   so 'a' and 'a ' would collide as keys; VARBINARY never pads.
 * - Values are utf8mb4 text (readable from the mysql client); the server
 *   accepts values up to 1 MiB, MEDIUMTEXT holds 16 MiB.
 * - The changes of a release are rows of `vitefa_changes`, one per key, not
 *   one JSON column: a drop or a replacing apply can touch very many keys,
 *   and rows can be written in batches that each stay below
 *   max_allowed_packet, where a single JSON document could not; history
 *   filtered by key is answered inside the database.
 */
export interface Migration {
  version: number;
  statements: string[];
}

const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: [
      // One row: the global revision counter. Its row lock, taken when a
      // release allocates its revision and held until COMMIT, is what orders
      // releases across every server sharing the database.
      `CREATE TABLE IF NOT EXISTS vitefa_head (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        rev BIGINT UNSIGNED NOT NULL
      ) ${TABLE_OPTIONS}`,
      `INSERT IGNORE INTO vitefa_head (id, rev) VALUES (1, 0)`,
      // `created`: the revision of the env.add of the current incarnation;
      // releases below it belong to an earlier environment of the same name.
      `CREATE TABLE IF NOT EXISTS vitefa_envs (
        name VARBINARY(128) NOT NULL PRIMARY KEY,
        rev BIGINT UNSIGNED NOT NULL,
        floor BIGINT UNSIGNED NOT NULL,
        kept INT UNSIGNED NOT NULL,
        created BIGINT UNSIGNED NOT NULL
      ) ${TABLE_OPTIONS}`,
      `CREATE TABLE IF NOT EXISTS vitefa_values (
        env VARBINARY(128) NOT NULL,
        k VARBINARY(256) NOT NULL,
        v MEDIUMTEXT NOT NULL,
        PRIMARY KEY (env, k)
      ) ${TABLE_OPTIONS}`,
      // `drop` is a reserved word, hence `dropped`. Author and op are TEXT: the
      // embedded store puts no limit on them and neither may this one.
      `CREATE TABLE IF NOT EXISTS vitefa_releases (
        rev BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        env VARBINARY(128) NOT NULL,
        prev BIGINT UNSIGNED NOT NULL,
        time BIGINT NOT NULL,
        author TEXT NOT NULL,
        op TEXT NOT NULL,
        dropped TINYINT NOT NULL DEFAULT 0,
        KEY by_env (env, rev)
      ) ${TABLE_OPTIONS}`,
      `CREATE TABLE IF NOT EXISTS vitefa_changes (
        rev BIGINT UNSIGNED NOT NULL,
        seq INT UNSIGNED NOT NULL,
        k VARBINARY(256) NOT NULL,
        before_v MEDIUMTEXT NULL,
        after_v MEDIUMTEXT NULL,
        PRIMARY KEY (rev, seq)
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 2,
    statements: [
      // Accounts and agent tokens: SCRAM verifiers only (never a secret).
      // `envs` is a JSON array of grants.
      `CREATE TABLE IF NOT EXISTS vitefa_accounts (
        name VARBINARY(64) NOT NULL PRIMARY KEY,
        role VARBINARY(16) NOT NULL,
        envs TEXT NOT NULL,
        salt VARBINARY(64) NOT NULL,
        iterations INT UNSIGNED NOT NULL,
        stored_key VARBINARY(64) NOT NULL,
        server_key VARBINARY(64) NOT NULL,
        created BIGINT NOT NULL
      ) ${TABLE_OPTIONS}`,
      `CREATE TABLE IF NOT EXISTS vitefa_tokens (
        name VARBINARY(64) NOT NULL PRIMARY KEY,
        id VARBINARY(16) NOT NULL,
        envs TEXT NOT NULL,
        salt VARBINARY(64) NOT NULL,
        iterations INT UNSIGNED NOT NULL,
        stored_key VARBINARY(64) NOT NULL,
        server_key VARBINARY(64) NOT NULL,
        created BIGINT NOT NULL,
        UNIQUE KEY by_id (id)
      ) ${TABLE_OPTIONS}`,
      // One row: grows with every credential change; its row lock orders them across servers.
      `CREATE TABLE IF NOT EXISTS vitefa_access (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        stamp BIGINT UNSIGNED NOT NULL
      ) ${TABLE_OPTIONS}`,
      `INSERT IGNORE INTO vitefa_access (id, stamp) VALUES (1, 0)`,
      `CREATE TABLE IF NOT EXISTS vitefa_audit (
        seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        time BIGINT NOT NULL,
        actor VARBINARY(256) NOT NULL,
        addr VARBINARY(64) NOT NULL,
        action VARBINARY(32) NOT NULL,
        env VARBINARY(128) NOT NULL,
        result VARBINARY(16) NOT NULL,
        code VARBINARY(32) NOT NULL,
        detail TEXT NOT NULL,
        KEY by_actor (actor, seq),
        KEY by_env (env, seq),
        KEY by_time (time)
      ) ${TABLE_OPTIONS}`,
      // Secrets every server of the cluster shares (decoy logins, TLS session tickets).
      `CREATE TABLE IF NOT EXISTS vitefa_secrets (
        name VARBINARY(64) NOT NULL PRIMARY KEY,
        value VARBINARY(256) NOT NULL
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 3,
    statements: [
      // Every server of the database: its generation (grows at each start),
      // where agents and peers reach it, and its last heartbeat.
      `CREATE TABLE IF NOT EXISTS vitefa_servers (
        id VARBINARY(255) NOT NULL PRIMARY KEY,
        gen INT UNSIGNED NOT NULL,
        addrs TEXT NOT NULL,
        peer VARBINARY(255) NOT NULL,
        state VARBINARY(16) NOT NULL,
        agents INT UNSIGNED NOT NULL,
        head BIGINT UNSIGNED NOT NULL,
        heartbeat BIGINT NOT NULL,
        started BIGINT NOT NULL
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 4,
    statements: [
      // The request ids of configuration writes, kept a day with what they
      // answered, written in the write's own transaction: a retry is answered
      // from here instead of making a second release.
      `CREATE TABLE IF NOT EXISTS vitefa_requests (
        rid VARBINARY(128) NOT NULL PRIMARY KEY,
        env VARBINARY(128) NOT NULL,
        rev BIGINT UNSIGNED NOT NULL,
        changed INT UNSIGNED NOT NULL,
        time BIGINT NOT NULL,
        KEY by_time (time)
      ) ${TABLE_OPTIONS}`,
    ],
  },
  // Versions 5 and 6 are one ALTER each: a single DDL statement either ran or
  // did not, so an interrupted migration is run again safely (MySQL has no
  // ADD COLUMN IF NOT EXISTS).
  {
    version: 5,
    // The chain value of the environment's current release (docs/protocol.md#chain).
    statements: [`ALTER TABLE vitefa_envs ADD COLUMN chain VARBINARY(32) NOT NULL DEFAULT ''`],
  },
  {
    version: 6,
    statements: [`ALTER TABLE vitefa_releases ADD COLUMN chain VARBINARY(32) NOT NULL DEFAULT ''`],
  },
  {
    version: 7,
    statements: [
      // One row: the store id (random, made when the schema is created; a
      // new one when a copy is adopted as a store of its own).
      `CREATE TABLE IF NOT EXISTS vitefa_identity (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        store VARBINARY(32) NOT NULL,
        created BIGINT NOT NULL,
        adopted BIGINT NOT NULL DEFAULT 0
      ) ${TABLE_OPTIONS}`,
      // Rows a server writes for a peer to find: only a server reading this
      // very database (not a copy made earlier) can answer the peer login.
      `CREATE TABLE IF NOT EXISTS vitefa_proofs (
        k VARBINARY(64) NOT NULL PRIMARY KEY,
        secret VARBINARY(64) NOT NULL,
        time BIGINT NOT NULL,
        KEY by_time (time)
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 8,
    // Accounts' read grants and identity, in one ALTER (it ran or it did not).
    // read_envs: a JSON array of grants; NULL for accounts made before it,
    // which keep reading every environment. uid: random, made with the
    // account; '' for accounts made before it (docs/security.md).
    statements: [`ALTER TABLE vitefa_accounts ADD COLUMN read_envs TEXT NULL, ADD COLUMN uid VARBINARY(32) NOT NULL DEFAULT ''`],
  },
  {
    version: 9,
    // Whose request a kept request id was (the account, the operation, a
    // digest of the request): another account's write, or another request,
    // with the same id is refused instead of answered as its retry. One
    // statement, so it either ran or did not; rows kept before have '' (any).
    statements: [
      `ALTER TABLE vitefa_requests
        ADD COLUMN author VARBINARY(255) NOT NULL DEFAULT '',
        ADD COLUMN op VARBINARY(32) NOT NULL DEFAULT '',
        ADD COLUMN digest VARBINARY(64) NOT NULL DEFAULT ''`,
    ],
  },
  // Layered environments (docs/storage.md#layered-environments): 10 to 12 are one DDL each, for the
  // same reason as 5 and 6. The values an environment holds become its own entries; for one built
  // on nothing (every environment before) that is what it held, so no row changes.
  {
    version: 10,
    // The releases of environments built on the written one: header only, the changes being the
    // write's own (vitefa_changes of `rev`). Pruned with the release of `via` at `rev`.
    statements: [
      `CREATE TABLE IF NOT EXISTS vitefa_via (
        rev BIGINT UNSIGNED NOT NULL,
        env VARBINARY(128) NOT NULL,
        via VARBINARY(128) NOT NULL,
        prev BIGINT UNSIGNED NOT NULL,
        chain VARBINARY(32) NOT NULL DEFAULT '',
        PRIMARY KEY (rev, env),
        KEY by_env (env, rev)
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 11,
    // An environment's parent list, lowest first: a JSON array; NULL for none.
    statements: [`ALTER TABLE vitefa_envs ADD COLUMN parents TEXT NULL`],
  },
  {
    version: 12,
    // The parent list a release set (a JSON array, '[]' for none); NULL when it left it as it was.
    statements: [`ALTER TABLE vitefa_releases ADD COLUMN parents TEXT NULL`],
  },
];

export const LATEST_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Seconds a server waits for another one that is migrating the same database server. */
const LOCK_WAIT_SECONDS = 30;

/**
 * Brings the schema up to date. Runs under a named lock so that servers
 * starting together do not migrate at the same time: the second one waits,
 * then finds the schema current. MySQL commits DDL implicitly, so a
 * migration cannot be atomic; every statement is written to be re-runnable
 * (IF NOT EXISTS, INSERT IGNORE) and the version is bumped after the last
 * one, so a migration interrupted half-way is simply run again.
 */
export async function migrate(conn: PoolConnection, description: string): Promise<void> {
  const [locked] = await conn.query<LockRow[]>(`SELECT GET_LOCK('vitefa_migrate', ?) AS ok`, [LOCK_WAIT_SECONDS]);
  if (locked[0]?.ok !== 1) {
    throw new RequestError(
      WireError.STORE_UNAVAILABLE,
      `database ${description} is unreachable: another server held the migration lock for ${LOCK_WAIT_SECONDS}s`,
    );
  }
  try {
    // The version table comes before any migration: it says which ones ran.
    await conn.query(
      `CREATE TABLE IF NOT EXISTS vitefa_schema (
        id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
        version INT NOT NULL
      ) ${TABLE_OPTIONS}`,
    );
    const [rows] = await conn.query<VersionRow[]>('SELECT MAX(version) AS version FROM vitefa_schema');
    const current = rows[0]?.version ?? 0;
    if (current > LATEST_SCHEMA) {
      throw new VitefaError(
        LocalErrorCode.SCHEMA_TOO_NEW,
        `database ${description} has schema ${current}, newer than this build knows (${LATEST_SCHEMA})`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      for (const sql of migration.statements) await conn.query(sql);
      await conn.query(
        'INSERT INTO vitefa_schema (id, version) VALUES (1, ?) ON DUPLICATE KEY UPDATE version = VALUES(version)',
        [migration.version],
      );
    }
  } finally {
    // A lost connection releases the lock by itself; keep the original error.
    await conn.query(`SELECT RELEASE_LOCK('vitefa_migrate')`).catch(() => undefined);
  }
}

interface LockRow extends RowDataPacket {
  ok: number | null;
}

interface VersionRow extends RowDataPacket {
  version: number | null;
}
