import { MessageType, Role } from './codes.js';

/**
 * Every message on the wire. Values of configuration keys travel as JSON text
 * (UTF-8 strings): the server validates them once, agents store the same bytes,
 * and every language can read them back.
 */

/** [key, JSON text] */
export type Entry = [key: string, json: string];
/** [key, JSON text, or null when the key is deleted] */
export type Change = [key: string, json: string | null];
/** [key, old JSON text or null, new JSON text or null] */
export type KeyChange = [key: string, before: string | null, after: string | null];

export interface EnvRev {
  env: string;
  /** Revision held; 0 means nothing is held. */
  rev: number;
}

export interface Hello {
  t: typeof MessageType.Hello;
  /** Protocol version of the sender. */
  v: number;
  role: Role;
  /** Sender's identity: server id, or agent/admin host name. */
  id: string;
  /** Admin credential (admin -> server only). */
  token?: string;
  /** Other servers' addresses (server -> client), for failover. */
  peers?: string[];
}

export interface Subscribe {
  t: typeof MessageType.Subscribe;
  /** Follow every environment, including those created later. */
  all: boolean;
  /** Environments named explicitly, with the revision held for each. With `all`, the revisions held for any. */
  envs: EnvRev[];
}

export interface Snapshot {
  t: typeof MessageType.Snapshot;
  env: string;
  rev: number;
  entries: Entry[];
}

export interface Release {
  t: typeof MessageType.Release;
  env: string;
  rev: number;
  /** Revision of the environment before this release; a receiver holding another revision has a gap. */
  prev: number;
  /** Commit time, milliseconds since the epoch. */
  time: number;
  author: string;
  /** Operation that made it: set, del, merge, clear, apply, rollback, env.add, env.del. */
  op: string;
  changes: Change[];
  /** The environment was deleted: drop it whole. */
  drop?: boolean;
}

export interface Ack {
  t: typeof MessageType.Ack;
  env: string;
  rev: number;
}

export interface ErrorMessage {
  t: typeof MessageType.Error;
  /** A WireError code. */
  code: number;
  msg: string;
  /** The request this answers; absent when the error ends the session. */
  id?: number;
}

export interface Ping {
  t: typeof MessageType.Ping;
  n: number;
}

export interface Pong {
  t: typeof MessageType.Pong;
  n: number;
}

export type AdminRequest =
  | { op: 'env.add'; env: string }
  | { op: 'env.del'; env: string }
  | { op: 'env.list' }
  | { op: 'set'; env: string; key: string; value: string }
  | { op: 'get'; env: string; key: string }
  | { op: 'del'; env: string; key: string }
  | { op: 'list'; env: string; prefix?: string }
  | { op: 'merge'; env: string; key: string; value: string }
  | { op: 'clear'; env: string; key: string; path: string[] }
  | { op: 'apply'; env: string; entries: Entry[]; replace: boolean }
  | { op: 'history'; env: string; key?: string; limit?: number; before?: number }
  | { op: 'diff'; env: string; from: number; to?: number }
  | { op: 'rollback'; env: string; rev: number }
  | { op: 'status'; env?: string };
export type AdminOp = AdminRequest['op'];

export interface Request {
  t: typeof MessageType.Request;
  id: number;
  req: AdminRequest;
}

/** The result of a write: the new release, or the current revision and changed 0 when nothing changed. */
export interface WriteResult {
  env: string;
  rev: number;
  changed: number;
}
export interface GetResult {
  env: string;
  rev: number;
  key: string;
  value: string;
}
export interface ListResult {
  env: string;
  rev: number;
  entries: Entry[];
}
export interface EnvInfo {
  env: string;
  rev: number;
  keys: number;
}
export interface EnvListResult {
  envs: EnvInfo[];
}
export interface HistoryRelease {
  rev: number;
  prev: number;
  time: number;
  author: string;
  op: string;
  changes: KeyChange[];
}
export interface HistoryResult {
  env: string;
  releases: HistoryRelease[];
}
export interface DiffResult {
  env: string;
  from: number;
  to: number;
  changes: KeyChange[];
}
export interface AgentInfo {
  id: string;
  addr: string;
  /** Milliseconds since the epoch when the session started. */
  since: number;
  envs: EnvRev[];
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
  /** At most the first 1000 agents (filtered to ENV when one is given). */
  agents: AgentInfo[];
}

/** Maps each admin operation to the type of its result. */
export interface ResultOf {
  'env.add': WriteResult;
  'env.del': WriteResult;
  'env.list': EnvListResult;
  set: WriteResult;
  get: GetResult;
  del: WriteResult;
  list: ListResult;
  merge: WriteResult;
  clear: WriteResult;
  apply: WriteResult;
  history: HistoryResult;
  diff: DiffResult;
  rollback: WriteResult;
  status: StatusResult;
}
export type AdminResult = ResultOf[AdminOp];

export interface Response {
  t: typeof MessageType.Response;
  id: number;
  /** Checked against the request's operation with `checkResult` by the requester. */
  res: unknown;
}

export type Message =
  | Hello
  | Subscribe
  | Snapshot
  | Release
  | Ack
  | ErrorMessage
  | Ping
  | Pong
  | Request
  | Response;
