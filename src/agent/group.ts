/**
 * A group of releases of one revision (protocol 5): from a Release marked
 * `grp` to the next GroupEnd, the agent holds what it receives, then applies
 * it in one transaction of its store. Here: what is held and its bounds, and
 * the revision and chain each environment would be at after the held
 * messages before one, which is what that one is checked against.
 */
import { MessageType, type Release, type Snapshot } from '../protocol/index.js';

/** A message held until its group ends. */
export type HeldMessage = Release | Snapshot;

/** How much one group may hold before the session fails (LIMIT_EXCEEDED) and nothing of it is applied. */
export interface GroupLimits {
  /** Releases and snapshots held. */
  messages: number;
  /** Bytes of their keys and values (UTF-8). */
  bytes: number;
}

export const GROUP_LIMITS: GroupLimits = { messages: 100_000, bytes: 512 * 1024 * 1024 };

/** Bytes of the keys and values a release or snapshot carries. */
export function heldBytes(message: HeldMessage): number {
  let bytes = Buffer.byteLength(message.env);
  const pairs: readonly (readonly [string, string | null])[] = message.t === MessageType.Release ? message.changes : message.entries;
  for (const [key, json] of pairs) bytes += Buffer.byteLength(key) + (json === null ? 0 : Buffer.byteLength(json));
  return bytes;
}

/** The releases and snapshots received since a Release marked `grp`, in order. */
export class HeldGroup {
  readonly messages: HeldMessage[] = [];
  private bytes = 0;

  constructor(private readonly limits: GroupLimits) {}

  /** Holds `message`; past a limit, holds nothing more and says why. */
  add(message: HeldMessage): string | undefined {
    const bytes = heldBytes(message);
    if (this.messages.length + 1 > this.limits.messages) {
      return `a group of releases held more than ${this.limits.messages} releases and snapshots before its end; nothing of it was applied`;
    }
    if (this.bytes + bytes > this.limits.bytes) {
      return `a group of releases held more than ${this.limits.bytes} bytes of changes before its end; nothing of it was applied`;
    }
    this.messages.push(message);
    this.bytes += bytes;
    return undefined;
  }
}

/** What a message is checked against: the revision and chain value held of an environment. */
export interface HeldView {
  revision(env: string): number;
  chain(env: string): string;
}

/** The store as it will be once the messages of a group checked so far are applied: their revisions over the store's. */
export class GroupView implements HeldView {
  private readonly after = new Map<string, { rev: number; chain: string }>();

  constructor(private readonly store: HeldView) {}

  revision(env: string): number {
    return this.after.get(env)?.rev ?? this.store.revision(env);
  }

  chain(env: string): string {
    return this.after.get(env)?.chain ?? this.store.chain(env);
  }

  /** `message` will be applied: what follows it is checked against what it leaves (a drop leaves nothing). */
  taken(message: HeldMessage): void {
    const dropped = message.t === MessageType.Release && message.drop === true;
    this.after.set(message.env, dropped ? { rev: 0, chain: '' } : { rev: message.rev, chain: message.chain ?? '' });
  }
}
