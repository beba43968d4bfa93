import { DETECTOR_DEFAULTS, type DetectorSettings } from './membership.js';

export interface PeerSettings {
  /** Gossip to every peer this often; it is also the heartbeat. */
  gossipMs: number;
  /** Write this server's row and read everyone's this often. */
  registryMs: number;
  /** At start, wait this long at most to hear from the servers that look alive before serving agents. */
  joinTimeoutMs: number;
  /** Agents one server moves to a less loaded one per second, at most (rebalancing is gradual, never a storm). */
  rebalancePerSecond: number;
  /** A draining server waits this long at most for its agents to leave. */
  drainTimeoutMs: number;
  /** Moved agents reconnect within this (each after a random part of it). */
  moveWithinMs: number;
  detector: DetectorSettings;
}

export const PEER_DEFAULTS: PeerSettings = {
  gossipMs: 1_000,
  registryMs: 5_000,
  joinTimeoutMs: 3_000,
  rebalancePerSecond: 64,
  drainTimeoutMs: 10_000,
  moveWithinMs: 2_000,
  detector: DETECTOR_DEFAULTS,
};

/** The defaults with `partial` over them (the detector's fields one by one). */
export function peerSettings(partial: Partial<PeerSettings> | undefined): PeerSettings {
  return { ...PEER_DEFAULTS, ...partial, detector: { ...PEER_DEFAULTS.detector, ...partial?.detector } };
}
