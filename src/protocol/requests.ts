import type { ADMIN_OPS } from './operations.js';
import type { Entry } from './shapes.js';

/** What an admin asks in a Request (`req`): one variant per operation, told apart by `op`. */
export type AdminRequest =
  | { op: 'env.add'; env: string }
  | { op: 'env.del'; env: string }
  | { op: 'env.list' }
  /** `env` is built from `parents` (lowest first), then its own entries; [] removes them (docs/layers.md). */
  | { op: 'env.layers'; env: string; parents: string[] }
  /** An environment's parents, its merge order (flattened) and the environments built on it. */
  | { op: 'env.show'; env: string }
  | { op: 'set'; env: string; key: string; value: string }
  /** The merged value; `own`: the environment's own entry; `explain`: where each leaf of the merged value comes from. */
  | { op: 'get'; env: string; key: string; own?: boolean; explain?: boolean }
  | { op: 'del'; env: string; key: string }
  /** A page of at most answerBytes: `after` continues after that key (ListResult.next). `own`: own entries, not the merged view. */
  | { op: 'list'; env: string; prefix?: string; after?: string; own?: boolean }
  | { op: 'merge'; env: string; key: string; value: string }
  | { op: 'clear'; env: string; key: string; path: string[] }
  /** Hides, in `env`'s view, what its layers give at `key` (and `path`, read as clear reads it; none: the whole key). */
  | { op: 'unset'; env: string; key: string; path: string[] }
  | { op: 'apply'; env: string; entries: Entry[]; replace: boolean }
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
  | { op: 'rollback'; env: string; rev: number }
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
