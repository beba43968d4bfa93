import type { Change, EnvInfo, KeyChange } from '../../protocol/index.js';

/** One committed release as the store keeps it: every changed key with its value before and after. */
export interface StoredRelease {
  env: string;
  rev: number;
  /** The environment's revision before this release (0 for the release that created it). */
  prev: number;
  time: number;
  author: string;
  op: string;
  changes: KeyChange[];
  /** The release deleted the environment. */
  drop?: boolean;
}

/** The committed state of one environment as a store loads it at start. */
export interface EnvState {
  env: string;
  rev: number;
  values: Map<string, string>;
}

/**
 * A consistent view of one environment inside a commit: nothing else can
 * commit to this environment until the commit ends.
 */
export interface EnvView {
  readonly env: string;
  readonly rev: number;
  get(key: string): Promise<string | undefined>;
  /** Every key and value (for whole-environment operations). */
  entries(): Promise<Map<string, string>>;
  /** Releases of this environment with fromRev < rev <= its current revision, ascending (for rollback). */
  releasesAfter(fromRev: number): Promise<StoredRelease[]>;
}

export interface CommitMeta {
  author: string;
  op: string;
  /** Milliseconds since the epoch; the store stamps the release with it. */
  time: number;
}

/**
 * Computes the changes of a release from the current state. Returning an
 * empty list commits nothing. Throwing aborts the commit.
 */
export type Planner = (view: EnvView) => Promise<Change[]>;

export interface HistoryQuery {
  key?: string;
  /** At most this many releases, newest first. */
  limit: number;
  /** Only releases with a revision below this one. */
  before?: number;
}

/**
 * The system of record. Implemented by the embedded LMDB store and the MySQL
 * store; one conformance suite runs against both.
 */
export interface Store {
  /** Where the data lives, for logs and status (never includes a password). */
  readonly description: string;
  open(): Promise<void>;
  close(): Promise<void>;
  /** The highest revision committed, cluster-wide. */
  head(): Promise<number>;
  /** Every live environment with its values. */
  loadAll(): Promise<EnvState[]>;
  listEnvs(): Promise<EnvInfo[]>;
  /** Releases of any environment committed after `after`, ascending, at most `limit`. */
  releasesSince(after: number, limit: number): Promise<StoredRelease[]>;
  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease>;
  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease>;
  /** Runs `plan` against a locked view of `env` and commits its changes as one release. Null when nothing changed. */
  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null>;
  /** Releases of `env`, newest first. */
  history(env: string, query: HistoryQuery): Promise<StoredRelease[]>;
  /** Releases of `env` with from < rev <= to, ascending. Throws REVISION_NOT_FOUND when history before `from` was pruned. */
  releasesBetween(env: string, from: number, to: number): Promise<StoredRelease[]>;
}
