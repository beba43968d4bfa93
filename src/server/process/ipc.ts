import type { AdminRequest, EnvAgents, PeerServer } from '../../protocol/index.js';
import type { Endpoint } from '../../transport/client.js';
import type { HostStatus } from '../edge/host.js';
import type { ServerLimits } from '../limits.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import type { Caller } from '../access/control.js';
import type { Admission, LoginAttempt, LoginOutcome } from '../access/throttle.js';
import type { AuditRecord, Credentials, EnvState } from '../store/types.js';

/**
 * The messages between the cluster primary (store, hub) and its workers
 * (connections), carried by a Channel (channel.ts) with Node's 'advanced'
 * IPC serialization, so Buffers and Maps arrive intact. Order on the channel
 * is the order of sending: a worker gets its initial state, then every
 * release after it, in revision order.
 */

/** What a worker needs to serve connections; the primary sends it, so every worker runs one configuration. */
export interface WorkerSetup {
  serverId: string;
  listen: Endpoint[];
  peers: string[];
  /** Agent connections this worker holds at most. */
  maxAgents: number;
  /** Workers of this server. */
  processes?: number;
  limits: ServerLimits;
  passwordIterations: number;
  /** The store's secret for decoy logins (the same on every server of the store). */
  decoySecret: Buffer;
  /** Listen with TLS. */
  tls?: ServerTlsMaterial;
  /** Other servers share the store (agents ahead of this server wait for it to catch up). */
  shared: boolean;
}

/** Primary -> worker, one way. */
export type PrimaryNote =
  | { k: 'init'; setup: WorkerSetup; head: number; envs: EnvState[]; credentials: Credentials }
  /** The credentials changed (an account or token added or removed, here or on another server). */
  | { k: 'credentials'; credentials: Credentials }
  /** New certificates (SIGHUP). */
  | { k: 'tls'; material: ServerTlsMaterial }
  /**
   * Releases committed, in order: their frames alone (the worker decodes them; the primary serialises nothing per
   * worker). Those published in one run of the primary's event loop come in one note — a group's releases (grp)
   * all reach the worker's fan-out in one pass, followed by one GroupEnd.
   */
  | { k: 'release'; frames: Buffer[] }
  /** Listen, or stop listening (the primary keeps at least one worker listening, so operators always get in). */
  | { k: 'listen'; on: boolean }
  /** The servers of the cluster, for the agents (and the hello of new sessions). */
  | { k: 'peers'; servers: PeerServer[] }
  /** A read of the store that started at `at` completed (agents ahead of the worker that arrived before it are served). */
  | { k: 'storeRead'; at: number }
  /** Tell this many agents to reconnect elsewhere. */
  | { k: 'move'; count: number; to?: string; within: number; reason: string }
  | { k: 'stop'; mode: 'graceful' | 'forced' };

/** Primary -> worker, answered. */
export type PrimaryRequest =
  | { k: 'status'; env: string | undefined; max: number; agent?: string }
  /** The worker's agents' revisions per environment. */
  | { k: 'revisions'; env: string | undefined; cap: number };

/** Worker -> primary, one way. */
export type WorkerNote =
  /** The worker's message handler is in place (ESM workers load asynchronously). */
  | { k: 'ready' }
  | { k: 'listening'; addresses: string[] }
  /** The worker holds as many agents as it may (or has room again). */
  | { k: 'capacity'; full: boolean }
  /** Logins this worker checked (failures, and admins' successes), for the audit trail. */
  | { k: 'audit'; records: AuditRecord[] }
  /** How many agents the worker holds (sent when it changed, at most once a second). */
  | { k: 'agents'; count: number }
  /** How a login the primary's throttle admitted ended. */
  | { k: 'settle'; ticket: number; outcome: LoginOutcome }
  /** An agent holds a revision the worker has not been sent: the server is behind the cluster. */
  | { k: 'behind'; rev: number };

/** Worker -> primary, answered. */
export type WorkerRequest =
  | { k: 'admin'; req: AdminRequest; caller: Caller }
  /** May this login be checked now? The server's one throttle is the primary's, so its workers do not multiply the rate. */
  | { k: 'login'; attempt: LoginAttempt };

/** The answer to each request kind. */
export interface Replies {
  status: HostStatus;
  revisions: EnvAgents[];
  admin: unknown;
  login: Admission;
}
