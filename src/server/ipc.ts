import type { AdminRequest } from '../protocol/index.js';
import type { Endpoint } from '../transport/client.js';
import type { HostStatus } from './host.js';
import type { ServerLimits } from './limits.js';
import type { ServerTlsMaterial } from './tls.js';
import type { Caller } from './access/control.js';
import type { AuditRecord, Credentials, EnvState, StoredRelease } from './store/types.js';

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
  limits: ServerLimits;
  passwordIterations: number;
  /** The store's secret for decoy logins (the same on every server of the store). */
  decoySecret: Buffer;
  /** Listen with TLS. */
  tls?: ServerTlsMaterial;
}

/** Primary -> worker, one way. */
export type PrimaryNote =
  | { k: 'init'; setup: WorkerSetup; head: number; envs: EnvState[]; credentials: Credentials }
  /** The credentials changed (an account or token added or removed, here or on another server). */
  | { k: 'credentials'; credentials: Credentials }
  /** New certificates (SIGHUP). */
  | { k: 'tls'; material: ServerTlsMaterial }
  | { k: 'release'; stored: StoredRelease; frame: Buffer }
  /** Listen, or stop listening (the primary keeps at least one worker listening, so operators always get in). */
  | { k: 'listen'; on: boolean }
  | { k: 'stop'; mode: 'graceful' | 'forced' };

/** Primary -> worker, answered. */
export type PrimaryRequest = { k: 'status'; env: string | undefined; max: number };

/** Worker -> primary, one way. */
export type WorkerNote =
  /** The worker's message handler is in place (ESM workers load asynchronously). */
  | { k: 'ready' }
  | { k: 'listening'; addresses: string[] }
  /** The worker holds as many agents as it may (or has room again). */
  | { k: 'capacity'; full: boolean }
  /** Logins this worker checked (failures, and admins' successes), for the audit trail. */
  | { k: 'audit'; records: AuditRecord[] };

/** Worker -> primary, answered. */
export type WorkerRequest = { k: 'admin'; req: AdminRequest; caller: Caller };

/** The answer to each request kind. */
export interface Replies {
  status: HostStatus;
  admin: unknown;
}
