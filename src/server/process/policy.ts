import { backoffDelay } from '../../transport/backoff.js';

/**
 * The worker pool's decisions, pure: which workers listen, and how long a
 * crashed worker's replacement waits. No sockets, no processes; the clock
 * and the random source are injected.
 */

/** A worker as the listening rule sees it. */
export interface ListenerView {
  /** Holds as many agents as it may. */
  full: boolean;
  /** Told to listen (or, until it first listened, listening by default). */
  listening: boolean;
  /** Confirmed listening since it was last told to. */
  bound: boolean;
}

/** Tell `worker` to listen (`on`) or to stop listening. */
export interface ListenCommand<W> {
  worker: W;
  on: boolean;
}

/**
 * Workers with room listen; a full one stops, so that it does not win
 * accepts it would have to refuse — unless no worker with room is
 * listening, in which case a full one keeps listening (the one already
 * listening, if any): admins always get in, and agents get SERVER_FULL and
 * try again or another server. A worker is told to stop only once another
 * has confirmed it listens, so the shared socket is never left without a
 * worker (Node closes it when its last worker leaves).
 *
 * `live`: the workers that have started and are connected, in the order
 * they were forked. Returns the commands to send, starts before stops.
 */
export function decideListeners<W extends ListenerView>(live: readonly W[]): ListenCommand<W>[] {
  const keep = live.some((w) => !w.full) ? undefined : (live.find((w) => w.listening) ?? live[0]);
  const wanted = (w: W): boolean => !w.full || w === keep;
  const out: ListenCommand<W>[] = [];
  for (const worker of live) {
    if (wanted(worker) && !worker.listening) out.push({ worker, on: true });
  }
  for (const worker of live) {
    if (wanted(worker) || !worker.listening) continue;
    if (live.some((other) => other !== worker && other.bound && wanted(other))) out.push({ worker, on: false });
  }
  return out;
}

/** A worker restarted after one that lived less than this counts as a crash loop: the delay grows. */
export const STABLE_WORKER_MS = 60_000;
export const RESTART_MIN_DELAY_MS = 250;
export const RESTART_MAX_DELAY_MS = 30_000;

/**
 * How soon a worker that exited is replaced: at once after one that lived
 * STABLE_WORKER_MS, else after a delay that doubles while replacements
 * keep dying young (250 ms, 500 ms, ... 30 s, each between half and all of it).
 */
export class RestartPacing {
  private quickExits = 0;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(now: () => number = Date.now, random: () => number = Math.random) {
    this.now = now;
    this.random = random;
  }

  /** A worker started at `startedAt` exited now: the delay before its replacement is forked. */
  exited(startedAt: number): number {
    this.quickExits = this.now() - startedAt < STABLE_WORKER_MS ? this.quickExits + 1 : 0;
    if (this.quickExits === 0) return 0;
    return backoffDelay(this.quickExits - 1, RESTART_MIN_DELAY_MS, RESTART_MAX_DELAY_MS, 'half', this.random);
  }
}
