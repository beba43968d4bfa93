/**
 * Applying what a server sends to the agent's store: each release in order,
 * on the chain held (a gap or a fork asks again instead), each snapshot in
 * one transaction, and the acknowledgements, coalesced.
 */
import {
  LocalErrorCode, MessageType, VitefaError, WireError,
  type EnvRev, type Release, type Snapshot, type Subscribe,
} from '../protocol/index.js';
import type { ClientConnection } from '../transport/client.js';
import { trace } from '../trace.js';
import type { LocalStore } from './local-store.js';

/** What applying needs of the store. */
export type ReleaseStore = Pick<LocalStore, 'held' | 'revision' | 'chain' | 'applyRelease' | 'applySnapshot'>;

/** The longest key the store takes: environment, a zero byte and the key, as LMDB's default builds allow. */
const MAX_STORED_KEY_BYTES = 511;

export interface ApplierOptions {
  /** Environments followed; empty means every environment. */
  envs: string[];
  /** Acknowledgements wait about this long (jittered) and go as one Ack per environment. */
  ackDelayMs: number;
}

export interface ApplierHooks {
  /** The session of now (acks and re-subscriptions go to it), if any. */
  session(): ClientConnection | undefined;
  applied(env: string, rev: number, kind: 'release' | 'snapshot' | 'drop'): void;
  forked(env: string, detail: string): void;
  /** The store could not be written: the agent stops. */
  fatal(err: Error): void;
}

/** Keeps the store in step with the releases and snapshots one session after another sends. */
export class ReleaseApplier {
  private readonly store: ReleaseStore;
  private readonly options: ApplierOptions;
  private readonly hooks: ApplierHooks;
  /** Environments with a gap, re-subscribed once until something applies. */
  private readonly resyncing = new Set<string>();
  private readonly unacked = new Map<string, number>();
  private ackTimer?: NodeJS.Timeout;

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
  }

  /** No more acknowledgements. */
  stop(): void {
    clearTimeout(this.ackTimer);
  }

  release(release: Release): void {
    if (!this.follows(release.env)) return;
    const held = this.store.revision(release.env);
    if (release.rev <= held || (release.drop === true && held === 0)) return; // already applied, or nothing to drop
    const chain = this.store.chain(release.env);
    // Holding a chain, a release that says nothing of what it follows is not taken either: applied, it would end the
    // chain held, and every later release would be taken unchecked.
    if (release.prev === held && chain !== '' && (release.pchain ?? '') !== chain) {
      // It follows another history than the one held: a fork (a copy of the store went on writing). Nothing of it
      // is applied; asking again with the chain held makes the server send a snapshot of its own history.
      if (!this.resyncing.has(release.env)) {
        this.resyncing.add(release.env);
        this.hooks.forked(release.env, `release ${release.env}@${release.rev} follows chain ${release.pchain ?? '(none)'} at revision ${held}, but this store holds chain ${chain} there: not applied, asking for a snapshot`);
        this.hooks.session()?.send(this.subscribe());
      }
      return;
    }
    if (release.prev !== held) {
      // A gap: never apply out of order. Ask once for what is missing, from what is held.
      if (!this.resyncing.has(release.env)) {
        this.resyncing.add(release.env);
        trace('agent', `gap in ${release.env}: hold ${held}, release ${release.rev} follows ${release.prev}`);
        this.hooks.session()?.send(this.subscribe());
      }
      return;
    }
    if (!this.storable(release.env, release.changes)) return;
    if (!this.guard(() => this.store.applyRelease(release))) return;
    this.resyncing.delete(release.env);
    this.acknowledge(release.env, release.rev);
    const kind = release.drop === true ? 'drop' : 'release';
    trace('agent', `applied ${kind} ${release.env}@${release.rev} after ${release.prev} (${release.changes.length} changes)`);
    this.hooks.applied(release.env, release.rev, kind);
  }

  snapshot(snapshot: Snapshot): void {
    if (!this.follows(snapshot.env)) return;
    const held = this.store.revision(snapshot.env);
    const chain = this.store.chain(snapshot.env);
    if (held >= snapshot.rev && chain !== '' && snapshot.chain !== undefined && snapshot.chain !== chain) {
      this.hooks.forked(snapshot.env, `snapshot ${snapshot.env}@${snapshot.rev} (chain ${snapshot.chain}) replaces revision ${held} (chain ${chain}) held here, of another history: taking the server's`);
    }
    if (!this.storable(snapshot.env, snapshot.entries)) return;
    if (!this.guard(() => this.store.applySnapshot(snapshot))) return;
    this.resyncing.delete(snapshot.env);
    this.acknowledge(snapshot.env, snapshot.rev);
    trace('agent', `applied snapshot ${snapshot.env}@${snapshot.rev} (${snapshot.entries.length} keys)`);
    this.hooks.applied(snapshot.env, snapshot.rev, 'snapshot');
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
   * can read); else the session ends and nothing of it is applied: no server of ours sends such a key.
   */
  private storable(env: string, changes: readonly (readonly [string, unknown])[]): boolean {
    const envBytes = Buffer.byteLength(env);
    let bad = envBytes === 0 || envBytes > MAX_STORED_KEY_BYTES;
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
