import type { MessageType, Role } from './codes.js';
import type { AdminRequest } from './requests.js';
import type { Change, Entry, EnvRev } from './shapes.js';
import type { SchemaViolation } from './results.js';

/**
 * Every message on the wire, one interface per message type (docs/protocol.md
 * lists them with the same fields). The admin requests a Request carries are
 * in requests.ts, the results a Response carries in results.ts, and the small
 * shapes they share in shapes.ts.
 */

/** One layer of an environment and the revision of it behind a view: `[env, rev]`. */
export type LayerRev = [env: string, rev: number];

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
  /** For an environment built on others only: its layers, lowest first and itself last, each at its revision (LayerRevs). */
  layers?: LayerRev[];
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
  /**
   * The release was made by a write to `via`, an environment this one is built on (docs/layers.md):
   * its changes are those of this environment's merged view. Covered by the chain value.
   */
  via?: string;
  /**
   * One of several releases of the same revision (a write and the environments built on it): a
   * receiver holds it, and what follows it, until the next GroupEnd, then applies them together.
   */
  grp?: boolean;
  /**
   * For an environment built on others only: its layers in merge order, lowest first and itself
   * last, each with the revision the server held of it when it made this message (at most
   * MAX_LAYER_REVS in checkers.ts, the highest kept). Not covered by the chain value.
   */
  layers?: LayerRev[];
}

/**
 * Server -> agent: the releases marked `grp` sent since the last GroupEnd (and whatever came after
 * them) go into the local store in one transaction: a local reader sees all of them, or none.
 */
export interface GroupEnd {
  t: typeof MessageType.GroupEnd;
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
  /** SCHEMA_VIOLATION: the violations, at most MAX_VIOLATIONS (results.ts). */
  v?: SchemaViolation[];
  /** SCHEMA_VIOLATION: violations left out of `v`. */
  more?: number;
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
  | StoreProof
  | GroupEnd;
