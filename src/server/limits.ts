import { z } from 'zod';
import { DEFAULT_DECODE_LIMITS, MAX_DEPTH_LIMIT } from '../protocol/index.js';
import type { ReceiveLimits } from '../transport/connection.js';

/**
 * Every limit an operator may set, in one place. Each can be set in the
 * server's config file under "limits" (see docs/limits.md, which lists them
 * all with these defaults). Limits on what a connection may send are checked
 * before the work they guard: frame sizes as the header arrives, values and
 * nesting before msgpackr builds a message, and connections before their
 * hello is waited for.
 *
 * A few fixed bounds live beside the code they belong to instead, because
 * they are not a server's to choose:
 * - src/protocol (MAX_ELEMENTS in check.ts, MAX_MEMBERS and the array and id
 *   bounds in checkers.ts): part of the wire contract, the same for every
 *   receiver, agents and admins included;
 * - peers/ (IDLE_TIMEOUT_MS in peer-port.ts; STATUS_TIMEOUT_MS, LINK_PING_MS
 *   and LINK_QUEUE_BYTES in link.ts): timings every server of a cluster must
 *   share, so one server cannot set its own;
 * - process/ (STATUS_IPC_TIMEOUT_MS in pool.ts, LOGIN_IPC_TIMEOUT_MS in
 *   worker.ts, STABLE_WORKER_MS and RESTART_MAX_DELAY_MS in policy.ts): the
 *   primary's own channel to its workers, and the pacing of their restarts;
 * - ops/merge.ts (MAX_DEPTH): a guard of the merge's recursion against a
 *   stack overflow, whatever valueDepth is set to (at its default, valueDepth
 *   refuses deeper values before a merge sees them).
 */
export const LIMIT_DEFAULTS = {
  // Until the login completes (the Welcome): a connection that has not proven who it is.
  /** Time from accept to the end of the login (the client's hello and proof). */
  helloTimeoutMs: 10_000,
  /** Largest frame accepted until the login completes. */
  helloFrameBytes: 4096,
  /** Values in a message until the login completes. */
  helloValues: 64,
  /** Connections one server process holds that have not logged in yet. */
  pendingHellos: 2000,
  /** Of those, from one source address (an IPv6 /64 counts as one address). */
  pendingHellosPerAddress: 100,

  // Logins: each server counts failures once, for all its workers (docs/security.md#failed-logins).
  /** Failed logins of one account name from one source address (an IPv6 /64) before the next must wait. */
  loginPairBurst: 5,
  /** Then one more such attempt every this many ms. */
  loginPairIntervalMs: 60_000,
  /** Failed password logins from one source address, whatever the names, before the next must wait. */
  loginAddressBurst: 20,
  loginAddressIntervalMs: 3_000,
  /** Failed logins of one account name from all addresses before its logins are made to wait (at most loginNameWaitMs). */
  loginNameBurst: 20,
  loginNameIntervalMs: 2_000,
  /** The longest wait failures from other addresses impose on a name: below every client's login deadline (at most 5,000). */
  loginNameWaitMs: 2_000,
  /** Failed token and peer logins from one source address before the next must wait (their secrets cannot be guessed: no name is counted). */
  loginTokenBurst: 200,
  loginTokenIntervalMs: 100,

  // The peer port (other servers of the cluster; its bytes may come from anyone).
  /** Peer connections that have not logged in yet. */
  peerPending: 256,
  /** Of those, from one source address (an IPv6 /64 counts as one address). */
  peerPendingPerAddress: 16,

  // Agents.
  /** Largest frame an agent may send. */
  agentFrameBytes: 1024 * 1024,
  /** Values in one message from an agent. */
  agentValues: 100_000,
  /** Environments one agent may follow by name. */
  subscribedEnvs: 10_000,
  /** Subscribes one session may send in a burst; each asks the server to send what the agent lacks. */
  subscribeBurst: 10,
  /** Subscribes one session may send per minute once its burst is spent. */
  subscribesPerMinute: 30,
  /** Bytes queued for one agent, beyond the catch-up it was sent, when a frame goes out. */
  agentBufferBytes: 8 * 1024 * 1024,
  /** A session silent for this long is closed; for an agent, at least three times the ping interval it was told. */
  idleTimeoutMs: 60_000,
  /** The shortest ping interval agents are told. */
  agentPingMs: 15_000,
  /** The longest ping interval agents are told. */
  agentPingMaxMs: 300_000,
  /**
   * Agents are told to ping every (agents of the server × this) µs, within
   * the two bounds above: a ping costs a server about 20 µs, so all of them
   * together stay near 1.5% of one core whatever the fleet.
   */
  agentPingUsPerAgent: 1_500,
  /** A session with output waiting that takes none of it for this long is a slow consumer. */
  stallTimeoutMs: 15_000,
  /** Environments that do not exist (yet) one agent may follow by name. */
  absentEnvsPerAgent: 16,
  /** Sockets a fan-out writes before the event loop serves anything else (admins' answers, acknowledgements). */
  fanoutSlice: 256,

  // Admins.
  /** Largest frame an admin may send. */
  adminFrameBytes: 64 * 1024 * 1024,
  /** Values in one message from an admin. */
  adminValues: DEFAULT_DECODE_LIMITS.maxElements,
  /** Admin requests in flight on one connection before reading pauses. */
  adminInFlight: 32,
  /** Admin connections each server process accepts beyond its agent limit, so operators always get in. */
  adminReserve: 64,
  /**
   * Bytes of keys and values in one answer of list, history or diff: a page
   * that would hold more ends early and says where to continue. Every answer's
   * size is bounded by what this server allows, never by what others wrote.
   */
  answerBytes: 4 * 1024 * 1024,
  /** Values longer than this (bytes of JSON text) are shown in history and diff by their size and hash unless asked for (--values). */
  historyValueBytes: 4096,
  /** Reads of list, history and diff worked out at once by the process that commits; others wait their turn. */
  readsAtOnce: 4,
  /** Of those, for one account: one account's reads never take every turn, and never hold up anyone's writes. */
  readsPerAccount: 2,
  /** Reads waiting for their turn; beyond, a read is refused at once with LIMIT_EXCEEDED (try again). */
  readsWaiting: 64,

  /** Nesting of any message (the message map is level 1). */
  messageDepth: DEFAULT_DECODE_LIMITS.maxDepth,
  /** Replies (pongs, answers) queued unread for one session above which the server stops reading it until they drain. */
  replyBufferBytes: 1024 * 1024,

  // The data.
  envNameBytes: 128,
  keyBytes: 256,
  /**
   * JSON text of one value. Every agent holds every value of what it follows and each change is
   * pushed to all of them at once: a value is configuration, not a payload (docs/limits.md#values).
   */
  valueBytes: 256 * 1024,
  /** Keys and values of one release (the JSON text of each changed key's value after it), of the written environment's view and of each view it changes. */
  releaseBytes: 32 * 1024 * 1024,
  /**
   * A write that makes a key's value more than this many times larger than it was, and larger than
   * 64 KiB, is refused unless it says --allow-growth (a generated value gone wrong, not a change).
   */
  growthFactor: 10,
  /** Nesting of a JSON value (arrays and objects). */
  valueDepth: 256,
  keysPerRelease: 1_000_000,
  /** An apply of at least this many keys has them checked on a thread of its own, off the event loop of every other write. */
  bulkInPoolFrom: 10_000,
  keysPerEnv: 1_000_000,
  /** Keys and values of one environment, in bytes: its snapshot must fit an agent's frame. */
  envBytes: 128 * 1024 * 1024,

  // Schemas (docs/schemas.md).
  /** Schemas kept, in all. */
  schemas: 1024,
  /** Schemas whose environment pattern matches one environment. */
  schemasPerEnv: 64,
  /** The longest a check may run on the schema thread (patterns, uniqueItems, references): then the write is refused, "validation timed out". */
  schemaCheckMs: 2000,

  // Server memory.
  /** Releases kept in memory per environment for agents that are a little behind. */
  recentReleases: 1000,
  /** Bytes of those releases' frames per environment. */
  recentBytes: 16 * 1024 * 1024,

  // The store of record.
  /**
   * How long a write may take, from its arrival to its answer, waiting on the
   * database included; then it is answered as not applied (the transaction is
   * abandoned before its COMMIT) or, if the COMMIT itself went unanswered, as
   * OUTCOME_UNKNOWN. Well under the admin's 30 s, so the server's answer comes first.
   */
  writeTimeoutMs: 20_000,

  // The cluster's internal channel.
  /** Bytes sent to one worker and not yet taken by it; past this the worker is restarted. */
  workerQueueBytes: 512 * 1024 * 1024,
  /** Requests a worker may have waiting on the primary. */
  workerRequests: 4096,
  /** How long a worker waits for the primary to answer an admin request (the store bounds each statement well within it). */
  workerRequestTimeoutMs: 70_000,

  /** Lines a second for refusals and internal errors in the log (more are counted, not written). */
  logLinesPerSecond: 5,
};

export type ServerLimits = { [K in keyof typeof LIMIT_DEFAULTS]: number };

/** The "limits" object of the config file: any subset, each a positive whole number; unknown names are refused. */
export const LimitsSchema = z.strictObject(
  Object.fromEntries(Object.keys(LIMIT_DEFAULTS).map((k) => [k, z.number().int().positive().optional()])) as {
    [K in keyof ServerLimits]: z.ZodOptional<z.ZodNumber>;
  },
);

export function resolveLimits(overrides: Partial<ServerLimits> = {}): ServerLimits {
  const limits: ServerLimits = { ...LIMIT_DEFAULTS };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) limits[k as keyof ServerLimits] = v;
  limits.messageDepth = Math.min(limits.messageDepth, MAX_DEPTH_LIMIT);
  // A name's wait must end within the shortest login deadline of a client (an agent's 5 s).
  limits.loginNameWaitMs = Math.min(limits.loginNameWaitMs, 5_000);
  return limits;
}

/** What a connection may send in each phase of its session. */
export function receiveLimits(limits: ServerLimits, phase: 'hello' | 'agent' | 'admin'): ReceiveLimits {
  const maxDepth = limits.messageDepth;
  const replyBufferBytes = limits.replyBufferBytes;
  switch (phase) {
    case 'hello':
      return { maxFrameBytes: limits.helloFrameBytes, maxElements: limits.helloValues, maxDepth, replyBufferBytes };
    case 'agent':
      return { maxFrameBytes: limits.agentFrameBytes, maxElements: limits.agentValues, maxDepth, replyBufferBytes };
    case 'admin':
      return { maxFrameBytes: limits.adminFrameBytes, maxElements: limits.adminValues, maxDepth, replyBufferBytes };
    default: {
      const unknown: never = phase;
      throw new Error(`unknown phase ${String(unknown)}`);
    }
  }
}
