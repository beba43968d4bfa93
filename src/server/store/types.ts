import type { BigValue, Change, EnvInfo, KeyChange } from '../../protocol/index.js';

/** What identifies a release and who made it: the columns or record fields a store keeps beside its changes. */
export interface ReleaseHeader {
  env: string;
  rev: number;
  /** The environment's revision before this release (0 for the release that created it). */
  prev: number;
  time: number;
  author: string;
  op: string;
  /** The release deleted the environment (a store may keep it as a flag or a number). */
  drop?: boolean;
  /**
   * The release's chain value (src/protocol/chain.ts): over the chain value
   * of the environment's release before it and this release's content.
   * Empty or absent for releases committed before the store kept chains.
   */
  chain?: string;
  /**
   * Set on a release made by a write to another environment this one is built on (a layer
   * below it): that environment's name. Such a release is committed in the same transaction and
   * at the same revision as the write's own, and keeps no changes of its own in the store.
   */
  via?: string;
  /** The environment's parent list after this release, when the release changed it ([]: none). */
  parents?: string[];
}

/**
 * One committed release as the store keeps it: every changed key with its value before and after.
 * `changes` are the environment's OWN entries (own texts, src/server/model/layers/own.ts): for an
 * environment built on nothing and unsetting nothing, exactly its values.
 */
export interface StoredRelease extends ReleaseHeader {
  changes: KeyChange[];
  /**
   * The changes of the environment's merged view — what agents are sent and what the chain value
   * covers — when they are known and differ from `changes` (a layered environment). Kept in
   * memory only; a server that reads the release from the store works them out (model/layers).
   */
  merged?: KeyChange[];
  /** The other releases of the same revision (the dependents' `via` releases), on the release a commit returns. */
  group?: StoredRelease[];
  /** Values left out of `changes` (they are null there), by their size and hash: only when asked for (elideAbove). */
  big?: BigValue[];
  /** Changes of this release left out of a page (HistoryPage). */
  more?: number;
}

/** The committed state of one environment as a store loads it at start. */
export interface EnvState {
  env: string;
  rev: number;
  /** The environment's own entries (own texts): its values when it is built on nothing. */
  values: Map<string, string>;
  /** The chain value of the release at `rev` ('' when not known: committed before the store kept chains). */
  chain: string;
  /** Its parent list, lowest first (absent or empty: none). */
  parents?: string[];
}

/**
 * A consistent view of one environment inside a commit: nothing else can
 * commit to this environment until the commit ends.
 */
export interface EnvView {
  readonly env: string;
  readonly rev: number;
  /** The revision of the release that created the environment (of its current incarnation, when it was deleted and created again). */
  readonly created: number;
  /** The store's highest revision as the commit found it, under its lock: a server that has applied less holds an older state. */
  readonly head: number;
  /** The environment's own entry of `key` (own text). */
  get(key: string): Promise<string | undefined>;
  /** Every own entry (for whole-environment operations). */
  entries(): Promise<Map<string, string>>;
  /** The parent list of every live environment that has parents, as committed: the commit holds every writer off meanwhile. */
  layout(): Promise<Map<string, string[]>>;
  /** Which of `envs` exist. */
  exist(envs: string[]): Promise<Set<string>>;
  /** Own entries of other environments: of `keys` only, or all of them when `keys` is undefined. */
  ownOf(envs: string[], keys?: string[]): Promise<Map<string, Map<string, string>>>;
  /** Releases of this environment with fromRev < rev <= its current revision, ascending (for rollback). */
  releasesAfter(fromRev: number): Promise<StoredRelease[]>;
}

export interface CommitMeta {
  author: string;
  op: string;
  /** Milliseconds since the epoch; the store stamps the release with it. */
  time: number;
  /**
   * When the write must be answered by (ms since the epoch): a store that can
   * hang (a database) abandons it before then — before its COMMIT if it can,
   * so that the failure is definite. Not stored.
   */
  deadline?: number;
  /**
   * The request id of the write (Request.rid). Kept with the release, in the
   * same transaction, for REQUEST_IDS_KEPT_MS; a write with an id already
   * kept throws RequestReplay instead of committing. A write that changes
   * nothing keeps its id too, so its retry changes nothing either.
   */
  requestId?: string;
  /** What the request was (requestDigest() of it), kept with its id so that only the same request is answered as a retry. */
  requestDigest?: string;
}

/** What a write commits: changes of the environment's own entries, perhaps a new parent list, and what they do to merged views. */
export interface CommitPlan {
  /** [key, own text or null]. */
  changes: Change[];
  /** The environment's new parent list ([]: none). */
  parents?: string[];
  /**
   * The merged changes of the written environment and of every environment built on it whose view
   * changes (model/layers mergedChanges): the written one gets them as `merged` (its chain value
   * covers them), each other one a `via` release of its own at the same revision. Absent: the
   * environment stands alone, its merged changes are its own.
   */
  merged?: Map<string, KeyChange[]>;
}

/**
 * Computes a release from the current state: its own changes (a list), or a
 * whole plan. Nothing to change commits nothing. Throwing aborts the commit.
 */
export type Planner = (view: EnvView) => Promise<Change[] | CommitPlan>;

/** A page of history bounded in bytes as well as in releases. */
export interface HistoryPageQuery {
  /** Only releases that changed this key, with only that key's change. */
  key?: string;
  /** At most this many releases, newest first. */
  limit: number;
  /** Only releases with a revision below this one. */
  before?: number;
  /** Values longer than this (bytes of JSON text) come as size and hash (StoredRelease.big), never read whole. */
  elideAbove: number;
  /** Bytes of keys and values shown, at most (the first release always has at least one change). */
  maxBytes: number;
  /** Leave out the releases made through a layer (`via`): only the environment's own. */
  own?: boolean;
}

export interface HistoryPage {
  releases: StoredRelease[];
  /** The page ended before the history did: continue below this revision. */
  next?: number;
}

/** One value of a stored change, to fetch whole (a value left out of a page). */
export interface ChangeRef {
  rev: number;
  /** The key changed (a release changes a key once). */
  key: string;
  side: 1 | 2;
}

/**
 * The system of record. Implemented by the embedded LMDB store and the MySQL
 * store; one conformance suite runs against both.
 */
export interface Store {
  /** Where the data lives, for logs and status (never includes a password). */
  readonly description: string;
  /** Accounts, tokens, audit and shared secrets. */
  readonly access: AccessStore;
  /** The servers of the store: ids, generations, addresses (every server registers itself). */
  readonly members: MemberRegistry;
  /** Which store this is: its id, and the rows by which a peer proves it reads this very store. */
  readonly identity: StoreIdentity;
  /** Several servers may share this store (MySQL); the embedded store serves one server. */
  readonly shared: boolean;
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
  /** A page of releases of `env`, newest first, large values left out, bounded in bytes (what the `history` operation answers). */
  historyPage(env: string, query: HistoryPageQuery): Promise<HistoryPage>;
  /**
   * Releases of `env` with from < rev <= to, ascending. Throws REVISION_NOT_FOUND when history before `from` was pruned.
   * With `elideAbove`, longer values are left out (StoredRelease.big): what is read stays small whatever the values.
   */
  releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]>;
  /** The whole values `refs` point at (in `env`), in order; null where the change or its value is gone. */
  changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]>;
}

/** A SCRAM verifier as stored: never the secret, nothing that lets one log in. */
export interface StoredVerifier {
  salt: string;
  iterations: number;
  storedKey: string;
  serverKey: string;
}

export type AccountRole = 'viewer' | 'editor' | 'admin';

export interface AccountRecord {
  name: string;
  role: AccountRole;
  /**
   * Environments granted to the account: an editor changes and reads them,
   * a viewer reads them. Names, or prefixes ending in `/*`; `*` for all.
   */
  envs: string[];
  /**
   * Environments it reads besides `envs` (read-only grants, same forms).
   * Accounts made before read grants existed load with `*`: they keep
   * reading everything.
   */
  reads: string[];
  /**
   * The account's identity: random, made when the account is created. A
   * session is bound to it, not to the name, so an account deleted and made
   * again (whatever its role) does not inherit the old one's sessions.
   * Anything that changes an account's role or grants must give it a new one.
   */
  uid: string;
  verifier: StoredVerifier;
  created: number;
}

export interface TokenRecord {
  name: string;
  /** The public part of the token, by which it is found. */
  id: string;
  /** Environments its agents may follow (names, `/*` prefixes, `*`). */
  envs: string[];
  verifier: StoredVerifier;
  created: number;
}

/** Everything the server checks logins and permissions against. `stamp` grows with every change. */
export interface Credentials {
  accounts: AccountRecord[];
  tokens: TokenRecord[];
  stamp: number;
}

export interface AuditRecord {
  time: number;
  actor: string;
  addr: string;
  action: string;
  env: string;
  result: 'ok' | 'refused' | 'failed';
  code: string;
  detail: string;
}

export interface AuditQuery {
  env?: string;
  actor?: string;
  /** Only entries at or after this time (ms since the epoch). */
  since?: number;
  /** Newest first, at most this many. */
  limit: number;
}

/**
 * Accounts, agent tokens, the audit trail and the cluster's shared secrets,
 * in the store of record (both stores). Every credential change bumps the
 * stamp, so servers sharing the store notice it.
 */
export interface AccessStore {
  load(): Promise<Credentials>;
  stamp(): Promise<number>;
  /** Creates an account; ALREADY_EXISTS when the name is taken. With `onlyIfNone`, only when no account exists at all (false otherwise). */
  createAccount(account: AccountRecord, onlyIfNone?: boolean): Promise<boolean>;
  /** A new password; NO_SUCH_NAME when the account does not exist. */
  setVerifier(name: string, verifier: StoredVerifier): Promise<void>;
  /** NO_SUCH_NAME when it does not exist; NOT_APPLICABLE for the last admin. */
  deleteAccount(name: string): Promise<void>;
  /** ALREADY_EXISTS when the name or the id is taken. */
  createToken(token: TokenRecord): Promise<void>;
  /** NO_SUCH_NAME when it does not exist. */
  deleteToken(name: string): Promise<void>;
  /** Appends, and prunes the oldest beyond the retention. */
  appendAudit(records: AuditRecord[]): Promise<void>;
  /** Newest first. */
  audit(query: AuditQuery): Promise<(AuditRecord & { seq: number })[]>;
  /** A random secret of `bytes` bytes shared by every server of the store, made on first use. */
  secret(name: string, bytes: number): Promise<Buffer>;
}

/** A server as registered in the store. */
export interface MemberRecord {
  id: string;
  gen: number;
  /** Addresses agents and admins connect to. */
  addrs: string[];
  /** Address of its peer port. */
  peer: string;
  /** alive, draining or left. */
  state: string;
  agents: number;
  head: number;
  /** Last time the server wrote its row (ms since the epoch, its own clock). */
  heartbeat: number;
  started: number;
}

/**
 * Where servers find each other and keep their generation: each server
 * registers at start (its generation grows by one), writes its row every few
 * seconds, and reads every row to find peers it has no link to.
 */
export interface MemberRegistry {
  /** Registers `id` (a new generation: the previous one plus one, or 1) and returns the generation. */
  register(record: Omit<MemberRecord, 'gen'>): Promise<number>;
  /** Updates the row of `id` if it still belongs to generation `gen`; false when a newer generation owns it. */
  heartbeat(record: MemberRecord): Promise<boolean>;
  list(): Promise<MemberRecord[]>;
  /** Forgets rows not written since `before` (servers gone for good). */
  prune(before: number): Promise<number>;
}

/** A row a server writes so that a peer can prove it reads the same store. */
export interface StoreChallenge {
  key: string;
  secret: Buffer;
}

/**
 * The identity of a store of record. Its id is random, made when the store's
 * schema is created, and travels with every copy (a dump carries it); so
 * knowing it proves nothing about which copy a server reads. What a copy
 * cannot carry is a row written after it was made: a server proves that it
 * reads the same store as a peer by finding the row the peer has just
 * written (challenge / answer).
 */
export interface StoreIdentity {
  /** The store id (hex). */
  id(): Promise<string>;
  /** Writes a fresh random row for a peer to find (rows older than a few minutes are pruned). */
  challenge(): Promise<StoreChallenge>;
  /** The secret of the row `key`, when this store holds it. */
  answer(key: string): Promise<Buffer | undefined>;
  /**
   * Makes this store a store of its own (a restored copy becoming the new
   * production, on purpose): a new store id, and the registry emptied of
   * every other server, so that nothing leads back to the store it was
   * copied from.
   */
  adopt(serverId: string): Promise<{ before: string; after: string }>;
}
