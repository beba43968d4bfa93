import type { AdminRequest } from '../protocol/index.js';
import type { HostStatus } from './host.js';
import type { EnvState, StoredRelease } from './store/types.js';

/**
 * Messages between the cluster primary (store, hub) and its workers
 * (connections). Sent with Node's 'advanced' IPC serialization, so Buffers and
 * Maps arrive intact. Order on the channel is the order of sending: a worker
 * gets its initial state, then every release after it, in revision order.
 */
export type ToWorker =
  | { k: 'init'; serverId: string; head: number; envs: EnvState[] }
  | { k: 'release'; stored: StoredRelease; frame: Buffer }
  | { k: 'answer'; id: number; ok: true; result: unknown }
  | { k: 'answer'; id: number; ok: false; status: number; message: string }
  | { k: 'status'; id: number; env: string | undefined; max: number }
  | { k: 'stop'; mode: 'graceful' | 'forced' };

export type ToPrimary =
  /** The worker's message handler is in place (ESM workers load asynchronously). */
  | { k: 'ready' }
  | { k: 'listening'; addresses: string[] }
  | { k: 'request'; id: number; req: AdminRequest; author: string }
  | { k: 'status'; id: number; status: HostStatus };
