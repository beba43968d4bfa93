/**
 * Applying what a server sends to the agent's store: each release in order,
 * on the chain held (a gap or a fork asks again instead), each snapshot in
 * one transaction, the releases of a group (from one marked `grp` to the
 * GroupEnd) together in one transaction, and the acknowledgements, coalesced.
 */
import {
  LocalErrorCode, MessageType, VitefaError, WireError,
  type EnvRev, type Release, type Snapshot, type Subscribe,
} from '../protocol/index.js';
import type { ClientConnection } from '../transport/client.js';
import { trace } from '../trace.js';
import { GROUP_LIMITS, GroupView, HeldGroup, type GroupLimits, type HeldMessage, type HeldView } from './group.js';
import { META_LAYERS_PREFIX } from '../reader/layout.js';
import type { LocalStore } from './local-store.js';

/** What applying needs of the store. */
export type ReleaseStore = Pick<LocalStore, 'held' | 'revision' | 'chain' | 'applyRelease' | 'applySnapshot' | 'applyGroup'>;

/** The longest key the store takes: environment, a zero byte and the key, as LMDB's default builds allow. */
const MAX_STORED_KEY_BYTES = 511;

export interface ApplierOptions {
  /** Environments followed; empty means every environment. */
  envs: string[];
  /** Acknowledgements wait about this long (jittered) and go as one Ack per environment. */
  ackDelayMs: number;
  /** What one group of releases may hold (GROUP_LIMITS when absent). */
  groupLimits?: GroupLimits;
  /** How long a group may stay open before it is dropped and asked for again (GROUP_END_WAIT_MS when absent). */
  groupEndWaitMs?: number;
}

export interface ApplierHooks {
  /** The session of now (acks and re-subscriptions go to it), if any. */
  session(): ClientConnection | undefined;
  applied(env: string, rev: number, kind: 'release' | 'snapshot' | 'drop'): void;
  forked(env: string, detail: string): void;
  /** A group of releases whose end did not come: dropped and asked for again (the server did not end it). */
  unended?(detail: string): void;
  /** The store could not be written: the agent stops. */
  fatal(err: Error): void;
}

/**
 * How long a group of releases may stay open: the server sends a group and its end in one write, so
 * one still open after this never gets its end (a server that failed to send it). Its messages are
 * dropped, and the environments asked for again from what the store holds.
 */
export const GROUP_END_WAIT_MS = 10_000;

/** Keeps the store in step with the releases and snapshots one session after another sends. */
export class ReleaseApplier {
  private readonly store: ReleaseStore;
  private readonly options: ApplierOptions;
  private readonly hooks: ApplierHooks;
  /** Environments with a gap, re-subscribed once until something applies. */
  private readonly resyncing = new Set<string>();
  private readonly unacked = new Map<string, number>();
  private ackTimer?: NodeJS.Timeout;
  /** The messages held since a release marked `grp`, until the GroupEnd (or the session's end, which drops them). */
  private group: HeldGroup | undefined;
  private groupTimer?: NodeJS.Timeout;

  constructor(store: ReleaseStore, options: ApplierOptions, hooks: ApplierHooks) {
    this.store = store;
    this.options = options;
    this.hooks = hooks;
  }

  /** The Subscribe a session starts with: from the revisions held (every held one when following all). */
  subscribe(): Subscribe {
    return { t: MessageType.Subscribe, all: this.options.envs.length === 0, envs: this.subscription() };
  }

  /** A new session: gaps and forks may be asked about again. */
  newSession(): void {
    this.resyncing.clear();
    this.dropGroup();
  }

  /**
   * The session ended: what a group held is dropped (none of it was acknowledged; the next session asks from what
   * the store holds).
   */
  sessionEnded(): void {
    this.dropGroup();
  }

  /** No more acknowledgements, nothing more applied. */
  stop(): void {
    clearTimeout(this.ackTimer);
    this.dropGroup();
  }

  private dropGroup(): void {
    clearTimeout(this.groupTimer);
    this.groupTimer = undefined;
    this.group = undefined;
  }

  /** A release: applied now, or held while a group of releases is open (one marked `grp` opens it). */
  release(release: Release): void {
    if (!this.follows(release.env)) return;
    if (this.group !== undefined || release.grp === true) {
      this.hold(release);
      return;
    }
    const verdict = this.check(release, this.store);
    if (verdict === 'resync') this.hooks.session()?.send(this.subscribe());
    if (verdict !== 'apply' || !this.guard(() => this.store.applyRelease(release))) return;
    this.applied(release);
  }

  /** A snapshot: applied now, or held while a group of releases is open. */
  snapshot(snapshot: Snapshot): void {
    if (!this.follows(snapshot.env)) return;
    if (this.group !== undefined) {
      this.hold(snapshot);
      return;
    }
    if (!this.checkSnapshot(snapshot, this.store) || !this.guard(() => this.store.applySnapshot(snapshot))) return;
    this.applied(snapshot);
  }

  /**
   * The end of a group: everything held goes into the store in ONE transaction, each message checked as when
   * applied alone, but against what the held messages before it leave. One that fails its check is left out as it
   * would be alone (a gap or a fork asks again, once the others are applied); a key the store cannot hold ends the
   * session and nothing of the group is applied. Nothing held: nothing to do.
   */
  groupEnd(): void {
    const group = this.group;
    this.dropGroup();
    if (group === undefined) return;
    const view = new GroupView(this.store);
    const taken: HeldMessage[] = [];
    let resync = false;
    for (const message of group.messages) {
      if (message.t === MessageType.Release) {
        const verdict = this.check(message, view);
        if (verdict === 'bad') return;
        if (verdict === 'resync') resync = true;
        if (verdict !== 'apply') continue;
      } else if (!this.checkSnapshot(message, view)) {
        return;
      }
      view.taken(message);
      taken.push(message);
    }
    if (taken.length > 0) {
      if (!this.guard(() => this.store.applyGroup(taken))) return;
      trace('agent', `applied a group of ${taken.length} of ${group.messages.length} held`);
      for (const message of taken) this.applied(message);
    }
    // Asked from what the store holds now, the group applied.
    if (resync) this.hooks.session()?.send(this.subscribe());
  }

  /** Holds `message` until the group's end; past the limits the session fails and nothing held is applied. */
  private hold(message: HeldMessage): void {
    if (this.group === undefined) {
      const group = (this.group = new HeldGroup(this.options.groupLimits ?? GROUP_LIMITS));
      this.groupTimer = setTimeout(() => {
        if (this.group !== group) return;
        this.dropGroup();
        this.hooks.unended?.(`a group of ${group.messages.length} releases was not ended by the server within ${this.options.groupEndWaitMs ?? GROUP_END_WAIT_MS} ms: nothing of it was applied; asking again from what the store holds`);
        this.hooks.session()?.send(this.subscribe());
      }, this.options.groupEndWaitMs ?? GROUP_END_WAIT_MS);
      this.groupTimer.unref();
    }
    const refused = this.group.add(message);
    if (refused === undefined) return;
    this.dropGroup();
    this.hooks.session()?.fail(WireError.LIMIT_EXCEEDED, refused);
  }

  /**
   * Whether `release` is applied on what `view` holds: `skip` (already applied, or a gap or fork already asked
   * about), `resync` (a gap or a fork: to be asked about once), `bad` (the session has failed), or `apply`.
   */
  private check(release: Release, view: HeldView): 'apply' | 'skip' | 'resync' | 'bad' {
    const held = view.revision(release.env);
    if (release.rev <= held || (release.drop === true && held === 0)) return 'skip'; // already applied, or nothing to drop
    const chain = view.chain(release.env);
    // Holding a chain, a release that says nothing of what it follows is not taken either: applied, it would end the
    // chain held, and every later release would be taken unchecked.
    if (release.prev === held && chain !== '' && (release.pchain ?? '') !== chain) {
      // It follows another history than the one held: a fork (a copy of the store went on writing). Nothing of it
      // is applied; asking again with the chain held makes the server send a snapshot of its own history.
      if (this.resyncing.has(release.env)) return 'skip';
      this.resyncing.add(release.env);
      this.hooks.forked(release.env, `release ${release.env}@${release.rev} follows chain ${release.pchain ?? '(none)'} at revision ${held}, but this store holds chain ${chain} there: not applied, asking for a snapshot`);
      return 'resync';
    }
    if (release.prev !== held) {
      // A gap: never apply out of order. Ask once for what is missing, from what is held.
      if (this.resyncing.has(release.env)) return 'skip';
      this.resyncing.add(release.env);
      trace('agent', `gap in ${release.env}: hold ${held}, release ${release.rev} follows ${release.prev}`);
      return 'resync';
    }
    return this.storable(release.env, release.changes, release.layers !== undefined) ? 'apply' : 'bad';
  }

  /** Whether `snapshot` can be applied (a snapshot of another history than the one held is said, and taken). */
  private checkSnapshot(snapshot: Snapshot, view: HeldView): boolean {
    const held = view.revision(snapshot.env);
    const chain = view.chain(snapshot.env);
    if (held >= snapshot.rev && chain !== '' && snapshot.chain !== undefined && snapshot.chain !== chain) {
      this.hooks.forked(snapshot.env, `snapshot ${snapshot.env}@${snapshot.rev} (chain ${snapshot.chain}) replaces revision ${held} (chain ${chain}) held here, of another history: taking the server's`);
    }
    return this.storable(snapshot.env, snapshot.entries, snapshot.layers !== undefined);
  }

  /** `message` is in the store: acknowledged (coalesced), and said. */
  private applied(message: HeldMessage): void {
    this.resyncing.delete(message.env);
    this.acknowledge(message.env, message.rev);
    if (message.t === MessageType.Snapshot) {
      trace('agent', `applied snapshot ${message.env}@${message.rev} (${message.entries.length} keys)`);
      this.hooks.applied(message.env, message.rev, 'snapshot');
      return;
    }
    const kind = message.drop === true ? 'drop' : 'release';
    trace('agent', `applied ${kind} ${message.env}@${message.rev} after ${message.prev} (${message.changes.length} changes)`);
    this.hooks.applied(message.env, message.rev, kind);
  }

  /** Revisions held for the environments followed (every held one when following all). */
  private subscription(): EnvRev[] {
    const held = this.store.held();
    if (this.options.envs.length === 0) return held;
    const byEnv = new Map(held.map((h) => [h.env, h]));
    return this.options.envs.map((env) => byEnv.get(env) ?? { env, rev: 0 });
  }

  private acknowledge(env: string, rev: number): void {
    this.unacked.set(env, rev);
    if (this.ackTimer !== undefined) return;
    // Jittered, so the agents of one release do not all answer in the same instant.
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      for (const [e, r] of this.unacked) {
        const chain = this.store.chain(e);
        this.hooks.session()?.send({ t: MessageType.Ack, env: e, rev: r, ...(chain === '' ? {} : { chain }) });
      }
      this.unacked.clear();
    }, this.options.ackDelayMs * (0.5 + Math.random()));
  }

  /**
   * Whether every key can be kept as the store's layout needs (an LMDB key of at most 511 bytes, which every reader
   * can read), the `meta` key of its layers too when it has them; else the session ends and nothing of it is
   * applied: no server of ours sends such a key.
   */
  private storable(env: string, changes: readonly (readonly [string, unknown])[], layered: boolean): boolean {
    const envBytes = Buffer.byteLength(env);
    let bad = envBytes === 0 || envBytes > MAX_STORED_KEY_BYTES - (layered ? META_LAYERS_PREFIX.length : 0);
    for (let i = 0; !bad && i < changes.length; i++) bad = envBytes + 1 + Buffer.byteLength(changes[i][0]) > MAX_STORED_KEY_BYTES;
    if (bad) this.hooks.session()?.fail(WireError.MALFORMED, `the server sent a name or key the store cannot hold in ${JSON.stringify(env.slice(0, 64))}; nothing of it was applied`);
    return !bad;
  }

  private follows(env: string): boolean {
    return this.options.envs.length === 0 || this.options.envs.includes(env);
  }

  /** A store that cannot be written stops the agent: it never acknowledges what it did not keep. */
  private guard(write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      this.hooks.fatal(err instanceof Error ? err : new VitefaError(LocalErrorCode.STORE_FAILED, String(err)));
      return false;
    }
  }
}
