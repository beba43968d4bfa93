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
  /**
   * The chain value of what is held at `rev` (see Release.chain), when the
   * holder knows it: a server that finds another chain value at that
   * revision sends a snapshot instead of releases.
   */
  chain?: string;
}

export interface Hello {
  t: typeof MessageType.Hello;
  /** Protocol version of the sender. */
  v: number;
  role: Role;
  /** Sender's identity: server id, or agent/admin host name. */
  id: string;
  /** Client -> server: who logs in — an account name (admin), or a token's id (agent). */
  user?: string;
  /** Client -> server: the client's SCRAM nonce (base64). */
  nonce?: string;
  /** Other servers' addresses (server -> client), for failover. */
  peers?: string[];
}

/** Server -> client, answering the client's hello: the SCRAM challenge. */
export interface Challenge {
  t: typeof MessageType.Challenge;
  /** The client's nonce followed by the server's. */
  nonce: string;
  /** base64 */
  salt: string;
  iterations: number;
}

/** Client -> server: the SCRAM proof. */
export interface Proof {
  t: typeof MessageType.Proof;
  /** base64 ClientProof */
  proof: string;
}

/** Server -> client: logged in. The client checks `signature`: the server knows its verifier too. */
export interface Welcome {
  t: typeof MessageType.Welcome;
  /** base64 ServerSignature */
  signature: string;
  /** The account (or token) name the session acts as. */
  account: string;
  /** viewer | editor | admin for accounts; agent for tokens. */
  role: string;
  /** Environments granted: names, or prefixes ending in `/*`; `*` for all. */
  envs: string[];
  /** For accounts: the iteration count the server wants for new passwords. */
  iterations?: number;
  /** For agents: ping this often (ms) while connected; later Pongs may change it. */
  ping?: number;
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
  /** The chain value of the release the snapshot ends at (absent for history older than chains). */
  chain?: string;
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
  /**
   * This release's chain value: a hash over the chain value of the release
   * before it and this release's content (docs/protocol.md#chain). Absent
   * for releases committed before chains existed.
   */
  chain?: string;
  /** The chain value this release follows: a receiver holding another one at `prev` has been offered a fork. */
  pchain?: string;
}

export interface Ack {
  t: typeof MessageType.Ack;
  env: string;
  rev: number;
  /** The chain value held at `rev`. */
  chain?: string;
}

/**
 * Peer port -> dialling server, after the login and before the Welcome: prove
 * that you read the same store of record as this server. `key` names a row
 * this server has just written to its store; only a server reading that same
 * store (not a copy made before) can find the row's secret.
 */
export interface StoreCheck {
  t: typeof MessageType.StoreCheck;
  /** The store id of the asking server's store. */
  store: string;
  key: string;
}

/** Dialling server -> peer port: HMAC-SHA-256 of the row's secret over the key (base64). */
export interface StoreProof {
  t: typeof MessageType.StoreProof;
  mac: string;
}

export interface ErrorMessage {
  t: typeof MessageType.Error;
  /** A WireError code. */
  code: number;
  msg: string;
  /** The request this answers; absent when the error ends the session. */
  id?: number;
  /** THROTTLED: milliseconds to wait before trying again (a client retries then, if that is within its deadline). */
  retry?: number;
}

/** How a server describes itself: owned by that server, spread by every other (its version only grows). */
export interface MemberEntry {
  /** Stable across restarts. */
  id: string;
  /** Grows at every start of the server; state of an older generation never overrides a newer one. */
  gen: number;
  /** Grows with every change of the entry and at least once a second (the heartbeat). */
  ver: number;
  /** Addresses agents and admins connect to. */
  addrs: string[];
  /** Address other servers connect to (the peer port). */
  peer: string;
  /** alive, draining (moving its agents away before it stops) or left (stopped). */
  state: MemberState;
  agents: number;
  /** Every release up to this revision has been applied and pushed to its agents. */
  head: number;
}

export type MemberState = 'alive' | 'draining' | 'left';

/** Peer <-> peer, about once a second and at once after a change of membership. */
export interface Gossip {
  t: typeof MessageType.Gossip;
  /** The sender's entry and every entry it knows (newest version of each). */
  members: MemberEntry[];
  /**
   * The sender's applied revision per environment: on a new link every one,
   * then those that changed since the last gossip on this link.
   */
  envs: [env: string, rev: number][];
  /** Environments the sender no longer has (deleted) since the last gossip on this link. */
  gone?: string[];
}

/** One server as agents see it. */
export interface PeerServer {
  addr: string;
  agents: number;
  /** alive, suspect (not heard from lately), draining. Dead and stopped servers are left out. */
  state: string;
}

/** Server -> agent: every server the agent may use (this one included). */
export interface Peers {
  t: typeof MessageType.Peers;
  servers: PeerServer[];
}

/** Server -> agent: reconnect to `to` (or, without it, to another server chosen by load) after a random delay of up to `within` ms. */
export interface Move {
  t: typeof MessageType.Move;
  to?: string;
  within: number;
  reason: string;
}

export interface Ping {
  t: typeof MessageType.Ping;
  n: number;
}

export interface Pong {
  t: typeof MessageType.Pong;
  n: number;
  /** To agents: the next ping is wanted this long (ms) after this one. */
  next?: number;
}

export type AdminRequest =
  | { op: 'env.add'; env: string }
  | { op: 'env.del'; env: string }
  | { op: 'env.list' }
  | { op: 'set'; env: string; key: string; value: string }
  | { op: 'get'; env: string; key: string }
  | { op: 'del'; env: string; key: string }
  /** A page of at most answerBytes: `after` continues after that key (ListResult.next). */
  | { op: 'list'; env: string; prefix?: string; after?: string }
  | { op: 'merge'; env: string; key: string; value: string }
  | { op: 'clear'; env: string; key: string; path: string[] }
  | { op: 'apply'; env: string; entries: Entry[]; replace: boolean }
  /**
   * A page of at most `limit` releases and answerBytes: `before` continues
   * below that revision (HistoryResult.next). Values longer than
   * historyValueBytes come as their size and hash (HistoryRelease.big)
   * unless `values` asks for them.
   */
  | { op: 'history'; env: string; key?: string; limit?: number; before?: number; values?: boolean }
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
export type AdminOp = AdminRequest['op'];

/** A SCRAM verifier as the client computed it: the secret itself never travels. */
export interface VerifierFields {
  salt: string;
  iterations: number;
  storedKey: string;
  serverKey: string;
}

export interface Request {
  t: typeof MessageType.Request;
  id: number;
  req: AdminRequest;
  /**
   * The request id of a configuration write (1–128 of A–Z a–z 0–9 . _ : -):
   * the same write sent again with the same id (a retry after a lost answer,
   * to any server of the store) gets the first one's result instead of a
   * second release. Kept a day. Other requests ignore it.
   */
  rid?: string;
}

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
  /** The page ended early (answerBytes): ask again with `after` set to this key. */
  next?: string;
}
export interface EnvInfo {
  env: string;
  rev: number;
  keys: number;
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

export interface Response {
  t: typeof MessageType.Response;
  id: number;
  /** Checked against the request's operation with `checkResult` by the requester. */
  res: unknown;
}

export type Message =
  | Hello
  | Challenge
  | Proof
  | Welcome
  | Subscribe
  | Snapshot
  | Release
  | Ack
  | ErrorMessage
  | Ping
  | Pong
  | Request
  | Response
  | Gossip
  | Peers
  | Move
  | StoreCheck
  | StoreProof;
