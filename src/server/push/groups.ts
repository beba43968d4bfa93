import { encodeMessage, MessageType } from '../../protocol/index.js';
import type { Subscription } from './subscriptions.js';

/**
 * Groups of releases (protocol 5): one write to an environment others are
 * built on commits, at one revision, a release of each environment whose
 * view changed, each marked `grp`. An agent holds what it receives from
 * such a release on, and applies it in one transaction at the GroupEnd that
 * follows: every agent following any of them gets its frames of the pass,
 * then a GroupEnd, in one write. Watching admins never get a GroupEnd.
 */

/** The GroupEnd frame, encoded once. */
export const GROUP_END_FRAME = encodeMessage({ t: MessageType.GroupEnd });

/**
 * The bytes of `grp: true` in a Release frame: the key as a msgpack fixstr,
 * then true (the codec writes plain maps, src/protocol/codec.ts).
 */
const GRP_TRUE = Buffer.from([0xa3, 0x67, 0x72, 0x70, 0xc3]);

/** Frames already looked at: the frames of a catch-up are the same Buffers for every agent (ServerState's recent releases). */
const groupedFrames = new WeakMap<Buffer, boolean>();

/**
 * Whether a release frame of a catch-up (which the state hands over encoded)
 * may be marked `grp`, so that a GroupEnd must follow it. It may say so of a
 * frame that is not (a key or value holding those bytes): that only costs a
 * GroupEnd, which does nothing when nothing is held.
 */
export function mayBeGrouped(frame: Buffer): boolean {
  let grouped = groupedFrames.get(frame);
  if (grouped === undefined) groupedFrames.set(frame, (grouped = frame.includes(GRP_TRUE)));
  return grouped;
}

/** One environment's releases of a pass, as every agent following it gets them. */
export interface EnvBatch {
  frame: Buffer;
  /** The releases one by one, for an agent whose catch-up had the first of them (the batch's prev is not what it holds). */
  joined: Buffer;
  /** The number of the batch's first release. */
  first: number;
  /** The number of the batch's last release: agents that subscribed after it was published are skipped. */
  last: number;
  targets: Subscription[];
}

/**
 * A pass with a grouped release in it: each agent following any of its
 * environments gets its frames of them and a GroupEnd as ONE Buffer (agents
 * that get the same frames share it), `slice` agents at a time.
 */
export class GroupedPass {
  private readonly agents: Subscription[] = [];
  private readonly batchesOf = new Map<Subscription, number[]>();
  /** The Buffer of each distinct list of frames: agents following the same environments share one. */
  private readonly joinedFrames = new Map<string, Buffer>();
  private next = 0;

  constructor(private readonly batches: EnvBatch[]) {
    batches.forEach((batch, i) => {
      for (const sub of batch.targets) {
        const of = this.batchesOf.get(sub);
        if (of !== undefined) of.push(i);
        else {
          this.batchesOf.set(sub, [i]);
          this.agents.push(sub);
        }
      }
    });
  }

  get done(): boolean {
    return this.next >= this.agents.length;
  }

  /** Writes to up to `budget` agents (those still `current`, with `send`); returns how many it took. */
  write(budget: number, current: (sub: Subscription) => boolean, send: (sub: Subscription, frame: Buffer) => void): number {
    const end = Math.min(this.agents.length, this.next + budget);
    const taken = end - this.next;
    while (this.next < end) {
      const sub = this.agents[this.next++];
      // Gone or subscribed again since the pass began: its catch-up had these releases.
      if (!current(sub)) continue;
      const frames = this.framesOf(sub, this.batchesOf.get(sub)!);
      if (frames !== undefined) send(sub, frames);
    }
    return taken;
  }

  /** What `sub` gets of the batches `of`, then the GroupEnd; nothing when its catch-up had every one. */
  private framesOf(sub: Subscription, of: number[]): Buffer | undefined {
    let key = '';
    for (const i of of) {
      const batch = this.batches[i];
      // Caught up past a batch: its catch-up had those releases; past its first: the releases one by one.
      if (sub.caughtUpTo >= batch.last) continue;
      key += `${sub.caughtUpTo >= batch.first ? 'j' : 'f'}${i} `;
    }
    if (key === '') return undefined;
    let joined = this.joinedFrames.get(key);
    if (joined === undefined) {
      const frames: Buffer[] = [];
      for (const part of key.trim().split(' ')) {
        const batch = this.batches[Number(part.slice(1))];
        frames.push(part[0] === 'j' ? batch.joined : batch.frame);
      }
      frames.push(GROUP_END_FRAME);
      this.joinedFrames.set(key, (joined = Buffer.concat(frames)));
    }
    return joined;
  }
}
