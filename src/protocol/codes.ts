/**
 * Numeric tables shared by every peer on the wire. Numbers are part of the
 * protocol: never renumber an entry, only add new ones.
 */

/**
 * Version carried in every hello. A peer refuses a hello with another major
 * version. 2: every session logs in (SCRAM) before anything else. 3: peer
 * servers gossip (Gossip), and servers tell their agents of the other
 * servers (Peers) and move them (Move). 4: releases and snapshots carry
 * their chain value, and a peer proves it reads the same store of record
 * (StoreCheck, StoreProof) before its Welcome. 5: layered environments — a
 * Release may name the write it came from (`via`) and belong to a group of
 * one revision (`grp`), applied together at the GroupEnd that follows.
 */
export const PROTOCOL_VERSION = 5;

export const MessageType = {
  /** 1: first frame in each direction; carries the protocol version and the peer's role. */
  Hello: 1,
  /** 2: agent -> server: environments to follow and the revision already held. */
  Subscribe: 2,
  /** 3: server -> agent: the full state of one environment at a revision. */
  Snapshot: 3,
  /** 4: server -> agent: one release (the changes after a revision). */
  Release: 4,
  /** 5: agent -> server: a release or snapshot has been committed to the local store. */
  Ack: 5,
  /** 6: either way: an error; with `id` it answers a request, without it ends the session. */
  Error: 6,
  /** 7: either way: liveness probe. */
  Ping: 7,
  /** 8: either way: answer to a ping. */
  Pong: 8,
  /** 9: admin -> server: one command. */
  Request: 9,
  /** 10: server -> admin: the successful result of a request. */
  Response: 10,
  /** 11: server -> client: the login challenge (nonce, salt, iterations). */
  Challenge: 11,
  /** 12: client -> server: the login proof. */
  Proof: 12,
  /** 13: server -> client: logged in; the server's signature and what the session may do. */
  Welcome: 13,
  /** 14: peer <-> peer: membership and what each server has applied (a digest, about once a second). */
  Gossip: 14,
  /** 15: server -> agent: the servers of the cluster, their load and state (whenever it changes). */
  Peers: 15,
  /** 16: server -> agent: reconnect elsewhere (drain, rebalancing), resuming from the revisions held. */
  Move: 16,
  /** 17: peer port -> dialling server: prove you read this store (names a row just written to it). */
  StoreCheck: 17,
  /** 18: dialling server -> peer port: the proof (an HMAC of the row's secret). */
  StoreProof: 18,
  /** Server -> agent: the grouped releases sent before it are applied together. */
  GroupEnd: 19,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * Wire status codes. A wire error is always this closed numeric code plus a
 * human-readable message; no stack trace ever goes on the wire.
 * Every entry is documented in docs/errors.md (a test keeps the two in step).
 */
export const WireError = {
  /** 100: the frame or message could not be decoded. */
  MALFORMED: 100,
  /** 101: a frame declared a length above the receiver's maximum. */
  FRAME_TOO_LARGE: 101,
  /** 102: the peer speaks another protocol version. */
  VERSION_MISMATCH: 102,
  /** 103: a message arrived that is not valid in the session's current state. */
  UNEXPECTED_MESSAGE: 103,
  /** 104: the admin credentials were missing or wrong. */
  AUTH_FAILED: 104,
  /** 105: the server (or this worker) holds as many connections as it may. */
  SERVER_FULL: 105,
  /** 106: the peer did not read fast enough; its buffer limit was reached. */
  SLOW_CONSUMER: 106,
  /** 107: the server is shutting down. */
  SHUTTING_DOWN: 107,
  /** 108: the handshake or a request did not complete in time. */
  TIMEOUT: 108,
  /** 109: a message or a sender went past a limit of the receiver (values, nesting, rate, pending connections). */
  LIMIT_EXCEEDED: 109,
  /** 110: the session's account or token may not do this (its role or its environment grants). */
  FORBIDDEN: 110,
  /** 111: too many failed logins (of this name from this address, or from this address): the login is not checked; try again after `retry` ms. */
  THROTTLED: 111,
  /** 200: the request's arguments are invalid. */
  BAD_REQUEST: 200,
  /** 201: the environment does not exist. */
  ENV_NOT_FOUND: 201,
  /** 202: the environment already exists. */
  ENV_EXISTS: 202,
  /** 203: the key does not exist in the environment. */
  KEY_NOT_FOUND: 203,
  /** 204: the revision is not in the retained history of the environment. */
  REVISION_NOT_FOUND: 204,
  /** 205: a value is not valid JSON, or a key or name breaks the limits. */
  INVALID_VALUE: 205,
  /** 206: the operation does not apply to the value found (e.g. clear inside a scalar). */
  NOT_APPLICABLE: 206,
  /** 207: an account or token of that name already exists. */
  ALREADY_EXISTS: 207,
  /** 208: no account or token of that name exists. */
  NO_SUCH_NAME: 208,
  /** 209: a value (or a merged view) fails a schema in enforce mode, or could not be checked in time: nothing was written (Error.v lists why). */
  SCHEMA_VIOLATION: 209,
  /** 300: the system of record cannot be reached; writes are refused. */
  STORE_UNAVAILABLE: 300,
  /** 301: an unexpected failure inside the server. */
  INTERNAL: 301,
  /** 302: the commit of a write was sent to the store of record and its answer never came: it may or may not have been applied. */
  OUTCOME_UNKNOWN: 302,
  /** 303: the other server reads another store of record (another store id, or a copy of this one): it is not a peer. */
  STORE_MISMATCH: 303,
} as const;
export type WireError = (typeof WireError)[keyof typeof WireError];

const wireErrorNames = new Map<number, string>(Object.entries(WireError).map(([k, v]) => [v, k]));

/** The symbolic name of a wire code, or undefined for a code this build does not know. */
export function wireErrorName(code: number): string | undefined {
  return wireErrorNames.get(code);
}

/** Roles a peer declares in its hello. */
export const Role = {
  server: 'server',
  agent: 'agent',
  admin: 'admin',
  peer: 'peer',
} as const;
export type Role = (typeof Role)[keyof typeof Role];
