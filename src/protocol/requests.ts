import type { ADMIN_OPS } from './operations.js';
import type { Entry } from './shapes.js';

/** What an admin asks in a Request (`req`): one variant per operation, told apart by `op`. */
export type AdminRequest =
  | { op: 'env.add'; env: string }
  | { op: 'env.del'; env: string }
  | { op: 'env.list' }
  /** `env` is built from `parents` (lowest first), then its own entries; [] removes them (docs/layers.md). */
  | { op: 'env.layers'; env: string; parents: string[]; allowGrowth?: boolean }
  /** An environment's parents, its merge order (flattened) and the environments built on it. */
  | { op: 'env.show'; env: string }
  /** `allowGrowth`: a key may grow past limits.growthFactor times its size (docs/limits.md). */
  | { op: 'set'; env: string; key: string; value: string; allowGrowth?: boolean }
  /** The merged value; `own`: the environment's own entry; `explain`: where each leaf of the merged value comes from. */
  | { op: 'get'; env: string; key: string; own?: boolean; explain?: boolean }
  | { op: 'del'; env: string; key: string }
  /** A page of at most answerBytes: `after` continues after that key (ListResult.next). `own`: own entries, not the merged view. */
  | { op: 'list'; env: string; prefix?: string; after?: string; own?: boolean }
  | { op: 'merge'; env: string; key: string; value: string; allowGrowth?: boolean }
  | { op: 'clear'; env: string; key: string; path: string[] }
  /** Hides, in `env`'s view, what its layers give at `key` (and `path`, read as clear reads it; none: the whole key). */
  | { op: 'unset'; env: string; key: string; path: string[] }
  | { op: 'apply'; env: string; entries: Entry[]; replace: boolean; allowGrowth?: boolean }
  /** What `apply` with the same arguments would change, written nowhere (`apply --dry-run`). */
  | { op: 'plan'; env: string; entries: Entry[]; replace: boolean }
  /**
   * A page of at most `limit` releases and answerBytes: `before` continues
   * below that revision (HistoryResult.next). Values longer than
   * historyValueBytes come as their size and hash (HistoryRelease.big)
   * unless `values` asks for them.
   */
  | { op: 'history'; env: string; key?: string; limit?: number; before?: number; values?: boolean; own?: boolean }
  /** A page of at most answerBytes, by key: `after` continues after that key (DiffResult.next). Large values as in history. */
  | { op: 'diff'; env: string; from: number; to?: number; after?: string; values?: boolean }
  | { op: 'rollback'; env: string; rev: number; allowGrowth?: boolean }
  /**
   * Schemas (docs/schemas.md): one per environment pattern, key pattern and `whole`. `schema` is the
   * JSON Schema (draft 2020-12) as JSON text; `whole`: it checks the environment's keys that match
   * `keyPattern` as one object of key → value.
   */
  | { op: 'schema.set'; envPattern: string; keyPattern: string; schema: string; mode?: SchemaMode; whole?: boolean }
  /** The current version, or `version`. */
  | { op: 'schema.get'; envPattern: string; keyPattern: string; whole?: boolean; version?: number }
  | { op: 'schema.del'; envPattern: string; keyPattern: string; whole?: boolean }
  /** Every schema, or those that apply to `env`. */
  | { op: 'schema.list'; env?: string }
  | { op: 'schema.history'; envPattern: string; keyPattern: string; whole?: boolean }
  /** Makes `version`'s schema and mode current again, as a new version. */
  | { op: 'schema.rollback'; envPattern: string; keyPattern: string; whole?: boolean; version: number }
  /** With `agent`: also find the agents of that id, on whichever server holds them. */
  | { op: 'status'; env?: string; agent?: string }
  /** This server alone: its agents' revisions as counts (what `status` gathers from every server). */
  | { op: 'status.local'; env?: string; agent?: string }
  /**
   * `envs`: environments granted (an editor changes and reads them, a viewer
   * reads them); `reads`: environments it reads besides (none if absent).
   */
  | { op: 'user.add'; name: string; role: string; envs: string[]; reads?: string[]; verifier: VerifierFields }
  | { op: 'user.del'; name: string }
  | { op: 'user.list' }
  /** Without `name`: the session's own account. */
  | { op: 'user.passwd'; name?: string; verifier: VerifierFields }
  | { op: 'token.add'; name: string; envs: string[]; id: string; verifier: VerifierFields }
  | { op: 'token.del'; name: string }
  | { op: 'token.list' }
  | { op: 'audit'; env?: string; user?: string; since?: number; limit?: number }
  /** Follow the releases of `env` on this session (Release frames follow the Response). */
  | { op: 'watch'; env: string }
  | { op: 'unwatch'; env: string };
/** enforce: a write that fails the schema is refused; warn: it is written, with a warning, and counted in status. */
export type SchemaMode = 'enforce' | 'warn';

/** An admin operation's name (operations.ts lists them). */
export type AdminOp = (typeof ADMIN_OPS)[number];
type Agree<T extends true> = T;
/** Compiles only while every request of the union is an operation of ADMIN_OPS, and every operation has a request. */
export type AdminOpsAgree = Agree<[AdminRequest['op']] extends [AdminOp] ? ([AdminOp] extends [AdminRequest['op']] ? true : false) : false>;

/** A SCRAM verifier as the client computed it: the secret itself never travels. */
export interface VerifierFields {
  salt: string;
  iterations: number;
  storedKey: string;
  serverKey: string;
}
