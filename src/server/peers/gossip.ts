import { encodeMessage, MessageType, type Gossip, type Release } from '../../protocol/index.js';
import { errorText } from '../../error-text.js';
import type { RateLimitedLog } from '../../log.js';
import { trace } from '../../trace.js';
import type { Hub } from '../ops/hub.js';
import { releaseMessage, storedOf } from '../releases/messages.js';
import type { StoredRelease } from '../store/types.js';
import type { PeerLink } from './link.js';
import type { PeerLinks } from './links.js';
import type { Membership } from './membership.js';

/**
 * What the servers tell each other, and what this one does with it:
 * membership and applied revisions in every gossip (each environment sent
 * again only when it changed since the last gossip on that link), each
 * release this server commits at once, and catching up when another
 * server has applied more than this one.
 */
export class PeerGossip {
  private readonly membership: Membership;
  private readonly hub: Hub;
  private readonly links: PeerLinks;
  private readonly warn: RateLimitedLog;
  /** What each peer said it applied, per environment (from its own gossip). */
  private readonly vectors = new Map<string, Map<string, number>>();
  private catchingUp = false;

  constructor(membership: Membership, hub: Hub, links: PeerLinks, warn: RateLimitedLog) {
    this.membership = membership;
    this.hub = hub;
    this.links = links;
    this.warn = warn;
  }

  /** Gossips to every link that is up (or to `only`): the members, and the environments changed since the last gossip on it. */
  send(only?: PeerLink): void {
    const members = this.membership.entries();
    const envs = this.hub.state.info();
    for (const link of only === undefined ? this.links.up() : [only]) {
      if (!link.up) continue;
      const sent = link.sentEnvs;
      const changed: [string, number][] = [];
      const now = new Map<string, number>();
      for (const e of envs) {
        now.set(e.env, e.rev);
        if (sent?.get(e.env) !== e.rev) changed.push([e.env, e.rev]);
      }
      const gone = sent === undefined ? [] : [...sent.keys()].filter((env) => !now.has(env));
      const message: Gossip = { t: MessageType.Gossip, members, envs: changed, ...(gone.length > 0 ? { gone } : {}) };
      link.send(message);
      link.sentEnvs = now;
    }
  }

  /** A gossip from the server `from`. */
  receive(from: string, message: Gossip): void {
    const { conflict } = this.membership.merge(message.members);
    if (conflict !== undefined) {
      this.warn.log(`peers: another process registered this server's id ${conflict.id} with a newer generation (${conflict.gen}, this one ${this.membership.self.gen}) at ${conflict.peer}: two servers are configured with one id`);
    }
    let vector = this.vectors.get(from);
    if (vector === undefined) this.vectors.set(from, (vector = new Map<string, number>()));
    for (const [env, rev] of message.envs) vector.set(env, rev);
    for (const env of message.gone ?? []) vector.delete(env);
    this.catchUp();
  }

  /** A release another server committed, told at once. */
  notice(from: string, release: Release): void {
    const stored = storedOf(release);
    trace('peers', `notice ${release.env}@${release.rev} from ${from}`);
    this.hub.learned(stored).catch((err: unknown) => this.warn.log(`peers: the release ${release.env}@${release.rev} from ${from} waits for the store: ${errorText(err)}`));
  }

  /** A release this server committed: every peer hears of it now, not at the next gossip. */
  tell(stored: StoredRelease): void {
    // A write through layers is told by its revision alone: the others read it from the store, own entries and all
    // (a Release carries merged values, from which a server cannot rebuild own entries).
    if (stored.merged !== undefined || (stored.group?.length ?? 0) > 0) {
      this.hintHead(stored.rev);
      return;
    }
    // With its chain value: the receiver checks the whole release against what it holds.
    const frame = encodeMessage(releaseMessage(stored, stored.prev));
    for (const link of this.links.up()) link.write(frame);
  }

  /** Once the release of `rev` is applied here: a gossip at once, whose head makes every peer read the store. */
  private hintHead(rev: number): void {
    setImmediate(() => {
      if (this.hub.applied < rev) return; // not applied yet: the next round's gossip carries it
      this.membership.update({ head: this.hub.applied });
      this.send();
    });
  }

  /** The highest revision any server (this one included) says it has applied. */
  head(): number {
    return Math.max(this.hub.applied, ...this.membership.others().filter((v) => v.entry.state !== 'left').map((v) => v.entry.head));
  }

  /** Reads the store when another server has applied more than this one (one read at a time). */
  catchUp(): void {
    if (this.catchingUp) return;
    const head = this.head();
    if (head <= this.hub.applied) return;
    this.catchingUp = true;
    this.hub.catchUp(head).catch((err: unknown) => {
      this.warn.log(`peers: another server has applied revision ${head}, this one ${this.hub.applied}, and the store cannot be read: ${errorText(err)}`);
    }).finally(() => {
      this.catchingUp = false;
    });
  }
}
