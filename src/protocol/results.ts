import type { AdminOp, SchemaMode } from './requests.js';
import type { Entry, EnvRev, KeyChange } from './shapes.js';

/*
 * What the server answers in a Response (`res`): one result type per admin
 * operation, mapped by ResultOf at the end.
 */

/** The result of a write: the new release, or the current revision and changed 0 when nothing changed. */
export interface WriteResult {
  env: string;
  rev: number;
  changed: number;
  /**
   * The request id (Request.rid) was kept from an earlier write of the same
   * request by the same account: this is that write's answer (`rev`,
   * `changed`), and nothing was written now.
   */
  replayed?: boolean;
  /**
   * After a rollback of a layered environment: the keys whose merged value still differs from the
   * merged view at the revision rolled back to, each with the layer whose entry makes it differ.
   */
  differs?: { key: string; layer: string }[];
  /** Failures of schemas in warn mode (the write was made): at most MAX_VIOLATIONS, then a count in `warningsMore`. */
  warnings?: SchemaViolation[];
  warningsMore?: number;
}

/** Violations one answer lists (Error.v, WriteResult.warnings); the rest are counted. */
export const MAX_VIOLATIONS = 20;

/** One way a value, or a merged view, fails a schema (docs/schemas.md). */
export interface SchemaViolation {
  env: string;
  /** The key ('' when the failure is about the environment as a whole, e.g. a key it lacks is named in `message`). */
  key: string;
  /** JSON Pointer inside the value ('' for the value itself). */
  path: string;
  /** The schema keyword that failed (`maximum`, `required`, …; `timeout` when the check ran out of time). */
  keyword: string;
  message: string;
  /** The schema: "ENV_PATTERN KEY_PATTERN", with " (whole)" for a whole-environment schema. */
  schema: string;
  version: number;
}

/** A schema as listed (without its text). */
export interface SchemaInfo {
  envPattern: string;
  keyPattern: string;
  whole: boolean;
  mode: SchemaMode;
  version: number;
  /** When and by whom this version was set. */
  time: number;
  author: string;
  /** Bytes of the schema's JSON text. */
  bytes: number;
  /** Warn mode: keys (or environments, for a whole schema) that fail it now. */
  failing?: number;
}

/** `schema.get`: the schema and its JSON text. */
export interface SchemaGetResult extends SchemaInfo {
  schema: string;
}

/** One version in `schema.history`, newest first. */
export interface SchemaVersion {
  version: number;
  rev: number;
  time: number;
  author: string;
  /** Absent for a deletion. */
  mode?: SchemaMode;
  deleted?: boolean;
  bytes: number;
}

/** What schema.set, schema.del and schema.rollback did. */
export interface SchemaWriteResult {
  envPattern: string;
  keyPattern: string;
  whole: boolean;
  /** The new version (changed 0: the current one, nothing was written). */
  version: number;
  rev: number;
  changed: number;
  mode?: SchemaMode;
  deleted?: boolean;
  /** Warn mode: keys (or environments, for a whole schema) that fail it now, with the first of them. */
  failing?: number;
  warnings?: SchemaViolation[];
  replayed?: boolean;
}
export interface GetResult {
  env: string;
  rev: number;
  key: string;
  /** The merged value's JSON text; with `own`, the own entry as shown (docs/layers.md). */
  value: string;
  /** With `explain`: every leaf of the merged value and where it comes from (as far as answerBytes go). */
  explain?: ExplainLeaf[];
  /** Leaves left out of `explain`: the answer's bytes ran out. */
  explainMore?: number;
}
/** One leaf of a merged value (a scalar, or an empty object or array) and the layer that set it. */
export interface ExplainLeaf {
  /** Object keys and array indices from the value's root. */
  path: (string | number)[];
  /** The environment whose own entry set it; "(no access)" when the caller may not read it. */
  layer: string;
  /** The revision of that layer's last release that changed its own entry of the key, and its author (absent for "(no access)"). */
  rev?: number;
  author?: string;
  /** Layers whose unset hid something at, above or under this path ("(no access)" for those the caller may not read). */
  hidden?: string[];
}
/** What an apply would change (`plan`). */
export interface PlanResult {
  env: string;
  rev: number;
  /** Own entries the apply adds, changes and removes. */
  added: string[];
  changed: string[];
  removed: string[];
  /** Every environment whose merged view would change, with its count of changed keys (the environment itself first). */
  views: PlanView[];
  /** Schemas in enforce mode the apply would fail (it would be refused): at most MAX_VIOLATIONS, the rest counted in `violationsMore`. */
  violations?: SchemaViolation[];
  violationsMore?: number;
  /** Schemas in warn mode it would fail (it would be written, with these warnings). */
  warnings?: SchemaViolation[];
  warningsMore?: number;
}
export interface PlanView {
  /** "(no access)" for environments the caller may not read (their count of keys still shown). */
  env: string;
  changed: number;
}
/** An environment's layers (`env.show`). */
export interface EnvShowResult {
  env: string;
  rev: number;
  parents: string[];
  /** The merge order, lowest first, ending with the environment itself. */
  order: string[];
  /** Every environment built on it, directly or through others. */
  dependents: string[];
}
export interface ListResult {
  env: string;
  rev: number;
  entries: Entry[];
  /** The page ended early (answerBytes): ask again with `after` set to this key. */
  next?: string;
}
export interface EnvInfo {
  env: string;
  rev: number;
  keys: number;
  /** Its parents, lowest first (absent: none). */
  parents?: string[];
}
export interface EnvListResult {
  envs: EnvInfo[];
}
/**
 * A value left out of an answer, shown by its size and hash instead:
 * [index of the change, 1 for its before / 2 for its after value, bytes of
 * the JSON text (UTF-8), the first 16 hex digits of its SHA-256]. The value
 * itself is `nil` in the change.
 */
export type BigValue = [change: number, side: 1 | 2, bytes: number, sha256: string];

export interface HistoryRelease {
  rev: number;
  prev: number;
  time: number;
  author: string;
  op: string;
  /** The release came through this layer's write (the changes shown are that write's own). */
  via?: string;
  /** The parent list after this release, when it changed it. */
  parents?: string[];
  changes: KeyChange[];
  /** Values left out (larger than historyValueBytes, or past the page's bytes). */
  big?: BigValue[];
  /** Changes of this release not in the answer (the page's bytes ran out inside it). */
  more?: number;
}
export interface HistoryResult {
  env: string;
  releases: HistoryRelease[];
  /** The page ended early: ask again with `before` set to this revision. */
  next?: number;
}
export interface DiffResult {
  env: string;
  from: number;
  to: number;
  changes: KeyChange[];
  /** Values left out, as in history. */
  big?: BigValue[];
  /** The page ended early: ask again with `after` set to this key. */
  next?: string;
}
export interface AgentInfo {
  id: string;
  addr: string;
  /** Milliseconds since the epoch when the session started. */
  since: number;
  /** What it acknowledged (or held when it subscribed), with the chain value when it said. */
  envs: EnvRev[];
  /** Milliseconds since it last acknowledged anything (or subscribed). */
  ackedMs?: number;
}

/** An agent found by `status --agent`, with the server holding it. */
export interface FoundAgent extends AgentInfo {
  server: string;
}
export interface ServerInfo {
  id: string;
  version: string;
  listen: string;
  store: string;
  uptimeMs: number;
  workers: number;
  /**
   * Sessions the server ended or refused, by wire status name (SERVER_FULL,
   * MALFORMED, TIMEOUT, …), and workerRestarts: worker processes replaced.
   */
  counters: Record<string, number>;
}
export interface StatusResult {
  server: ServerInfo;
  envs: EnvInfo[];
  agentsTotal: number;
  /** At most the first 1000 agents of this server (filtered to ENV when one is given). */
  agents: AgentInfo[];
  /** Every server of the cluster (this one first) and, per environment, the revisions every agent of the cluster holds. */
  cluster: ClusterStatus;
  /** Keys (or environments, for whole schemas) that fail a schema in warn mode, by schema; absent when none does. */
  schemaWarnings?: { schema: string; version: number; failing: number }[];
}

/** One server in `status`. */
export interface ServerRow {
  id: string;
  gen: number;
  /** alive, suspect, dead, draining or left, as the answering server sees it. */
  state: string;
  addrs: string[];
  /** Applied revision; lag is the cluster's head minus it. */
  head: number;
  lag: number;
  agents: number;
  /** Milliseconds since the answering server last heard of it (0 for itself). */
  heardMs: number;
  /** The server answered the status query (its agents are counted below). */
  answered: boolean;
}

/** An agent behind its environment's current revision. */
export interface LaggingAgent {
  id: string;
  addr: string;
  /** Id of the server it is connected to. */
  server: string;
  rev: number;
}

export interface EnvAgents {
  env: string;
  /** The environment's current revision. */
  rev: number;
  /**
   * [revision, number of agents, chain value] by what the agents acknowledged
   * (or held when they subscribed), highest revision first; chain '' when
   * the agents did not say. Agents acknowledge 1–3 s after a release.
   */
  holders: [rev: number, agents: number, chain: string][];
  /** The environment's chain value at `rev` on the answering server ('' when not known). */
  chain?: string;
  /** Milliseconds since `rev` was applied on the answering server: acknowledgements younger than the release are still on their way. */
  releasedMs?: number;
  /** Agents behind `rev`: the first ones only (see laggingTotal). */
  lagging: LaggingAgent[];
  laggingTotal: number;
}

export interface ClusterStatus {
  head: number;
  servers: ServerRow[];
  envs: EnvAgents[];
  /** With `status --agent ID`: the agents of that id on every server that answered. */
  found?: FoundAgent[];
}

/** One server's own part of `status`: what `status` gathers from every server. */
export interface LocalStatus {
  server: ServerInfo;
  gen: number;
  head: number;
  agentsTotal: number;
  envs: EnvAgents[];
  /** Asked with `agent`: this server's agents of that id. */
  found?: AgentInfo[];
}

/** The result of an operation that only succeeds or fails (accounts, tokens, unwatch). */
export interface DoneResult {
  done: string;
}
export interface UserInfo {
  name: string;
  role: string;
  /** Granted: an editor changes and reads them, a viewer reads them. */
  envs: string[];
  /** Read besides `envs` (absent from servers older than read grants, whose accounts read everything). */
  reads?: string[];
  created: number;
}
export interface TokenInfo {
  name: string;
  id: string;
  envs: string[];
  created: number;
}
export interface AuditEntry {
  seq: number;
  /** Milliseconds since the epoch. */
  time: number;
  /** The account or token acting, or the name that tried to log in. */
  actor: string;
  /** HOST:PORT it came from. */
  addr: string;
  /** The operation (`set`, `user.add`, …), or `login` / `agent-login`. */
  action: string;
  env: string;
  /** ok, refused (not allowed, or a bad request) or failed. */
  result: string;
  /** The wire error name when it did not succeed. */
  code: string;
  /** What was done or why not; never a secret. */
  detail: string;
}
export interface WatchResult {
  env: string;
  rev: number;
}

/** Maps each admin operation to the type of its result. */
export interface ResultOf {
  'env.add': WriteResult;
  'env.del': WriteResult;
  'env.list': EnvListResult;
  'env.layers': WriteResult;
  'env.show': EnvShowResult;
  set: WriteResult;
  get: GetResult;
  del: WriteResult;
  list: ListResult;
  merge: WriteResult;
  clear: WriteResult;
  unset: WriteResult;
  apply: WriteResult;
  plan: PlanResult;
  history: HistoryResult;
  diff: DiffResult;
  rollback: WriteResult;
  'schema.set': SchemaWriteResult;
  'schema.get': SchemaGetResult;
  'schema.del': SchemaWriteResult;
  'schema.list': { schemas: SchemaInfo[] };
  'schema.history': { versions: SchemaVersion[] };
  'schema.rollback': SchemaWriteResult;
  status: StatusResult;
  'status.local': LocalStatus;
  'user.add': DoneResult;
  'user.del': DoneResult;
  'user.list': { users: UserInfo[] };
  'user.passwd': DoneResult;
  'token.add': DoneResult;
  'token.del': DoneResult;
  'token.list': { tokens: TokenInfo[] };
  audit: { entries: AuditEntry[] };
  watch: WatchResult;
  unwatch: DoneResult;
}
export type AdminResult = ResultOf[AdminOp];
