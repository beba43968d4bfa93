import { RESERVED_ENV_PREFIX, WireError } from '../../protocol/index.js';
import { errorText } from '../../error-text.js';
import { backoffDelay } from '../../transport/backoff.js';
import { RequestError } from '../errors.js';
import { Mutex } from '../store/mutex.js';
import type { Store, StoredRelease } from '../store/types.js';
import { ChainBroken, type PublishedRelease, type ServerState } from './state.js';

export type ReleaseListener = (release: PublishedRelease, stored: StoredRelease) => void;
/** Told of every release this server commits, before it is applied here (to tell the other servers at once). */
export type CommitListener = (stored: StoredRelease) => void;

const PULL_BATCH = 1000;
/** Releases held for the revisions before them, at most. */
const MAX_WAITING = 10_000;
/** The wait before opening an unreachable store again: from OPEN_RETRY_MIN_MS, doubling, at most OPEN_RETRY_MAX_MS. */
const OPEN_RETRY_MIN_MS = 250;
const OPEN_RETRY_MAX_MS = 5000;

/**
 * The store's committed releases as this server applies them, strictly in
 * revision order: it opens the store (waiting for an unreachable one),
 * loads the state, keeps the cursor (every revision up to it is applied),
 * takes releases committed here and learned from other servers, fetches
 * the ones before them from the store, polls the store as a safety net, and
 * hands each applied release to its listeners (the fan-out to agents).
 * A release that does not follow this server's history stops it for good.
 */
export class ReleaseLog {
  private readonly store: Store;
  private readonly state: ServerState;
  private readonly listeners = new Set<ReleaseListener>();
  private readonly commitListeners = new Set<CommitListener>();
  private cursor = 0;
  /** Releases this server committed that wait for earlier revisions from other servers. */
  private readonly waiting = new Map<number, StoredRelease>();
  private readonly pulling = new Mutex();
  private queuedPull: Promise<void> | undefined;
  private poller?: NodeJS.Timeout;
  private closed = false;
  /** Set when a release did not follow this server's history: nothing more is applied or written. */
  private broken: ChainBroken | undefined;
  private readonly brokenListeners = new Set<(err: ChainBroken) => void>();

  constructor(store: Store, state: ServerState) {
    this.store = store;
    this.state = state;
  }

  /**
   * Opens the store and loads the state. An unreachable database is waited
   * for (retrying with backoff); any other failure is thrown.
   */
  async open(log: (line: string) => void = () => undefined): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.open();
        await this.load();
        return;
      } catch (err) {
        if (!(err instanceof RequestError && err.status === WireError.STORE_UNAVAILABLE) || this.closed) throw err;
        const delay = backoffDelay(attempt, OPEN_RETRY_MIN_MS, OPEN_RETRY_MAX_MS, 'none');
        log(`${err.message}; retrying in ${delay} ms`);
        await this.store.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The safety net that picks up releases committed through other servers, every `intervalMs`. */
  startPolling(intervalMs: number, log: (line: string) => void = () => undefined): void {
    let down = false;
    const tick = (): void => {
      this.poller = setTimeout(() => {
        this.pull().then(
          () => {
            if (down) log(`store ${this.store.description} is reachable again`);
            down = false;
          },
          (err: unknown) => {
            if (!down) log(`${errorText(err)}; serving agents from memory until it returns`);
            down = true;
          },
        ).finally(() => {
          if (!this.closed) tick();
        });
      }, intervalMs);
      this.poller.unref();
    };
    tick();
  }

  /** Stops polling and waits for the store read under way (the store itself is closed by its owner). */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.poller);
    await this.pulling.run(() => Promise.resolve());
  }

  private async load(): Promise<void> {
    // Head first: anything committed while the state loads is pulled again (and skipped if already loaded).
    const head = await this.store.head();
    const envs = await this.store.loadAll();
    this.state.load(head, envs);
    this.cursor = head;
  }

  onRelease(listener: ReleaseListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** Every release up to this revision has been applied and published (revisions are contiguous). */
  get applied(): number {
    return this.cursor;
  }

  /**
   * Publishes a release this server committed. Releases go out strictly in
   * revision order: when another server committed revisions in between, they
   * are fetched from the store first, so no agent ever gets a release whose
   * predecessor it has not seen.
   */
  async committed(release: StoredRelease): Promise<void> {
    if (release.rev <= this.cursor && this.broken === undefined) {
      // The store allocated a revision this server has already applied: its revision counter went back (a database
      // restored under the running server). What this server holds is not the store's history any more.
      this.breakOff(new ChainBroken(release.env, release.rev, this.state.chain(release.env) ?? '', '(a later revision)', release.chain ?? '',
        `the store committed ${release.env}@${release.rev}, a revision this server had already applied (up to ${this.cursor}): the store's history went back under it`));
      return;
    }
    for (const listener of this.commitListeners) listener(release);
    await this.learned(release);
  }

  /**
   * A release committed through another server, as it told this one: applied
   * at once when it is the next revision, else once the ones before it have
   * been fetched from the store.
   */
  async learned(release: StoredRelease): Promise<void> {
    if (release.rev <= this.cursor) return;
    if (release.rev === this.cursor + 1 && this.waiting.size === 0) {
      this.apply(release);
      return;
    }
    // Held only while the ones before them are fetched; past the bound the store is the only source.
    if (this.waiting.size < MAX_WAITING) this.waiting.set(release.rev, release);
    await this.pull();
  }

  /** Another server has applied up to `head`: fetch what this one lacks. */
  async catchUp(head: number): Promise<void> {
    if (head > this.cursor && !this.closed) await this.pull();
  }

  /**
   * Fetches and publishes releases committed by other servers after the
   * cursor. Serialised; safe to call from a timer and after commits alike.
   */
  pull(): Promise<void> {
    // One read waiting behind the running one is enough: it sees everything the others would.
    if (this.queuedPull !== undefined) return this.queuedPull;
    const queued = this.pulling.run(async () => {
      this.queuedPull = undefined;
      await this.readStore();
    });
    this.queuedPull = queued;
    return queued;
  }

  private async readStore(): Promise<void> {
    for (;;) {
      if (this.broken !== undefined) return;
      while (this.waiting.has(this.cursor + 1)) {
        const next = this.waiting.get(this.cursor + 1)!;
        this.waiting.delete(next.rev);
        this.apply(next);
      }
      const batch = await this.store.releasesSince(this.cursor, PULL_BATCH);
      for (const release of batch) {
        // A release through a layer follows its layer's, at the same revision: this server made it then; it must agree.
        if (release.via !== undefined && release.rev === this.cursor) {
          this.apply(release);
          continue;
        }
        if (release.rev <= this.cursor) continue; // applied meanwhile (a notice from a peer)
        if (release.rev !== this.cursor + 1) break; // pruned or not yet visible: stop at the first hole
        this.waiting.delete(release.rev);
        this.apply(release);
      }
      if (batch.filter((r) => r.via === undefined).length < PULL_BATCH) break;
    }
  }

  private apply(stored: StoredRelease): void {
    if (this.broken !== undefined) return;
    let published: PublishedRelease[];
    try {
      published = this.state.apply(stored);
    } catch (err) {
      if (!(err instanceof ChainBroken)) throw err;
      this.breakOff(err);
      return;
    }
    this.cursor = Math.max(this.cursor, stored.rev);
    // The servers' own environments (the schemas) are for servers: never handed to the fan-out to agents, watchers or workers.
    if (stored.env.startsWith(RESERVED_ENV_PREFIX)) return;
    for (const release of published) for (const listener of this.listeners) listener(release, stored);
  }

  /**
   * This server's history and the store's disagree (the database was restored under it, or a peer is not what it
   * claimed): it serves nothing more from a state it cannot trust.
   */
  private breakOff(err: ChainBroken): void {
    if (this.broken !== undefined) return;
    this.broken = err;
    this.waiting.clear();
    for (const listener of this.brokenListeners) listener(err);
  }

  /** Told once when a release does not follow this server's history (the process should stop serving). */
  onBroken(listener: (err: ChainBroken) => void): void {
    this.brokenListeners.add(listener);
  }

  /** Why this server stopped applying releases, when it did. */
  get brokenChain(): ChainBroken | undefined {
    return this.broken;
  }
}
