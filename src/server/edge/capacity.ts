import { ProtocolError, WireError } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import type { ServerLimits } from '../limits.js';

/**
 * Whether a process holding `agents` becomes full (true), has room again
 * (false), or neither: full at the agent limit, with room again below 95%
 * of it, so that a full process does not flap.
 */
export function capacityChange(full: boolean, agents: number, maxAgents: number): boolean | undefined {
  if (!full && agents >= maxAgents) return true;
  if (full && agents < maxAgents * 0.95) return false;
  return undefined;
}

/**
 * The ping interval agents are told: (agents of the whole server ×
 * agentPingUsPerAgent), within agentPingMs and agentPingMaxMs. A worker
 * counts its own agents times the number of processes (the primary keeps
 * them even).
 */
export function agentPingInterval(agents: number, processes: number, limits: Pick<ServerLimits, 'agentPingUsPerAgent' | 'agentPingMs' | 'agentPingMaxMs'>): number {
  const wanted = Math.round((agents * processes * limits.agentPingUsPerAgent) / 1000);
  return Math.min(limits.agentPingMaxMs, Math.max(limits.agentPingMs, wanted));
}

/**
 * The logged-in sessions of one process, by role: agents up to `maxAgents`,
 * admins up to their reserve beyond them (so that a process full of agents
 * still lets an operator in). Tells `onCapacity` when it fills up with
 * agents and when it has room again.
 */
export class Capacity {
  private readonly maxAgents: number;
  private readonly adminReserve: number;
  private readonly onCapacity: ((full: boolean) => void) | undefined;
  private isFull = false;
  /** Set by a stopping host: no more capacity changes are reported. */
  stopped = false;
  agents = 0;
  admins = 0;

  constructor(maxAgents: number, adminReserve: number, onCapacity?: (full: boolean) => void) {
    this.maxAgents = maxAgents;
    this.adminReserve = adminReserve;
    this.onCapacity = onCapacity;
  }

  /** Takes a session into `role`; throws ProtocolError(SERVER_FULL) when there is no room for it. */
  admit(role: 'agent' | 'admin'): void {
    if (role === 'agent' && this.agents >= this.maxAgents) {
      throw new ProtocolError(WireError.SERVER_FULL, `this server process holds its limit of ${this.maxAgents} agents`);
    }
    if (role === 'admin' && this.admins >= this.adminReserve) {
      throw new ProtocolError(WireError.SERVER_FULL, `this server process holds its limit of ${this.adminReserve} admin sessions`);
    }
    if (role === 'agent') this.agents++;
    else this.admins++;
    this.check();
  }

  /** A session of `role` ended. */
  release(role: 'agent' | 'admin'): void {
    if (role === 'agent') this.agents--;
    else this.admins--;
    this.check();
  }

  private check(): void {
    if (this.onCapacity === undefined || this.stopped) return;
    const change = capacityChange(this.isFull, this.agents, this.maxAgents);
    if (change === undefined) return;
    this.isFull = change;
    try {
      this.onCapacity(change);
    } catch (err) {
      reportFault('reporting capacity', err);
    }
  }
}
