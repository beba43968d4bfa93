import { encodeMessage, WireError } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { releaseMessage } from '../releases/messages.js';
import type { ServerState } from '../releases/state.js';
import type { AheadWaits } from './ahead.js';
import { GROUP_END_FRAME, mayBeGrouped } from './groups.js';
import type { AgentLink, Subscription, Subscriptions } from './subscriptions.js';

/**
 * What goes to one agent's socket, and in what order: its catch-up (the
 * releases after what it holds, or a snapshot — a large one built a slice
 * at a time while what is meant for the agent meanwhile is held behind it),
 * then the frames of each fan-out pass. An agent with more than
 * `bufferBytes` queued beyond its catch-up is cut off with SLOW_CONSUMER.
 */
export class AgentWriter {
  /** Agents disconnected for being slow, for status and the harness. */
  slowDisconnects = 0;

  constructor(
    private readonly state: ServerState,
    private readonly subs: Subscriptions,
    private readonly ahead: AheadWaits,
    private readonly bufferBytes: number,
    /** Other servers share the store: an agent may hold a revision this server has not applied yet. */
    private readonly shared: boolean,
  ) {}

  /**
   * Sends `sub` what it needs to hold the current revision of `env`, from `rev` (`backwards`: this server's state is
   * the truth). True when it wrote a release that may be of a group: the caller writes a GroupEnd once its catch-up
   * is written (GROUP_END_FRAME).
   */
  catchUp(sub: Subscription, env: string, rev: number, backwards = !this.shared, chain?: string): boolean {
    const link = sub.link;
    const need = this.state.catchUp(env, rev, backwards, chain);
    switch (need.kind) {
      case 'current':
        return false;
      case 'releases': {
        let grouped = false;
        for (const frame of need.frames) {
          link.write(frame);
          if (!grouped) grouped = mayBeGrouped(frame);
        }
        return grouped;
      }
      case 'snapshot':
        link.write(need.frame);
        return false;
      case 'building': {
        // Written when built; whatever is meant for this agent meanwhile waits behind it.
        sub.hold ??= { frames: [], bytes: 0, waiting: 0 };
        sub.hold.waiting++;
        need.ready.then(
          (frame) => this.built(sub, env, need.rev, frame),
          (err: unknown) => {
            reportFault('building a snapshot', err);
            if (this.subs.current(sub)) link.fail(WireError.INTERNAL, 'the snapshot could not be built');
          },
        );
        // Nothing of it is held by a group: it goes alone, with the releases after it (built).
        return false;
      }
      case 'gone':
        // The agent holds an environment that no longer exists: tell it to drop it.
        if (rev > 0) link.write(dropFrame(env, rev, this.state.head, Date.now()));
        return false;
      case 'ahead':
        // Nothing older than what it holds: it is served once this server has caught up.
        return this.ahead.add(sub, env, rev, Date.now()) ? false : this.catchUp(sub, env, rev, true);
      default: {
        const unknown: never = need;
        throw new Error(`unknown catch-up ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** Writes a frame of a fan-out pass to `sub`: after its held snapshots, or now if it keeps up. */
  send(sub: Subscription, frame: Buffer): void {
    const link = sub.link;
    if (sub.hold !== undefined) {
      sub.hold.frames.push(frame);
      sub.hold.bytes += frame.length;
      if (sub.hold.bytes > this.bufferBytes) this.slow(link);
      return;
    }
    // The link sends in order: of what is queued, the catch-up's unsent part comes first.
    const flushed = link.bytesWritten - link.writableLength;
    const catchUpQueued = Math.max(0, sub.catchUpEnd - flushed);
    if (link.writableLength - catchUpQueued > this.bufferBytes) {
      this.slow(link);
      return;
    }
    link.write(frame);
  }

  slow(link: AgentLink): void {
    this.slowDisconnects++;
    link.fail(WireError.SLOW_CONSUMER, `more than ${this.bufferBytes} bytes waiting to be read`);
  }

  /** A snapshot `sub` waited for is built: it goes out, then the releases after it, then what was held. */
  private built(sub: Subscription, env: string, rev: number, frame: Buffer): void {
    const link = sub.link;
    const hold = sub.hold;
    if (!this.subs.current(sub) || hold === undefined) return;
    link.write(frame);
    // From the snapshot's revision to now (perhaps another build, if the state moved far meanwhile).
    if (this.catchUp(sub, env, rev, true)) link.write(GROUP_END_FRAME);
    if (--hold.waiting > 0) return;
    sub.hold = undefined;
    for (const held of hold.frames) link.write(held);
    sub.catchUpEnd = link.bytesWritten;
  }
}

/** Tells an agent holding `held` of an environment that no longer exists to drop it. */
function dropFrame(env: string, held: number, head: number, now: number): Buffer {
  return encodeMessage(releaseMessage({
    env, rev: Math.max(head, held + 1), prev: held, time: now, author: 'server', op: 'env.del', changes: [], drop: true,
  }, held));
}
