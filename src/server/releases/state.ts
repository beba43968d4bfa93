import {
  RESERVED_ENV_PREFIX,
  encodeMessage, MAX_LAYER_REVS, SnapshotEncoder, snapshotMessage, type EnvInfo, type KeyChange, type LayerRev, type Release,
} from '../../protocol/index.js';
import { flatten, type ParentMap } from '../model/layers/index.js';
import { chainOfStored } from '../store/changes.js';
import type { EnvState, StoredRelease } from '../store/types.js';
import { buildView, checkVia, marksOf, standsAlone, viewChanges, type LayeredEnv } from './layered.js';
import { ChainBroken } from './chain-broken.js';
import { releaseMessage } from './messages.js';

export { ChainBroken } from './chain-broken.js';

/** Sets (or, with null, removes) one value of a merged view, keeping its byte count. */
function setValue(live: { values: Map<string, string>; bytes: number }, key: string, after: string | null): void {
  const before = live.values.get(key);
  if (before !== undefined) live.bytes -= entryBytes(key, before);
  if (after === null) {
    live.values.delete(key);
  } else {
    live.values.set(key, after);
    live.bytes += entryBytes(key, after);
  }
}

/** Bytes an entry adds to an environment's snapshot. */
export function entryBytes(key: string, json: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(json);
}

/** A release ready to send: the message and its frame, encoded once for every subscriber. */
export interface PublishedRelease {
  message: Release;
  frame: Buffer;
}

interface LiveEnv extends LayeredEnv {
  rev: number;
  /** When `rev` was applied here (ms since the epoch; 0 for what was loaded at start). */
  appliedAt: number;
  /** Chain value at `rev` ('' when not known: history older than chains). */
  chain: string;
  /** Bytes of every key and value of the merged view (UTF-8), as its snapshot will carry them. */
  bytes: number;
  /** The most recent releases, oldest first, for agents that are a little behind. */
  recent: PublishedRelease[];
  recentBytes: number;
  /** Snapshot frame of the current revision, built on first demand. */
  snapshot?: Buffer;
  /** A snapshot being built a slice at a time, and the revision it is of. */
  building?: { rev: number; ready: Promise<Buffer> };
  /** In a cluster worker (which holds no parent lists): the layers its primary last sent for it. */
  layers?: LayerRev[];
}

/** An environment's state as a cluster worker is handed it: its merged view, and its layers' revisions when it has parents. */
export interface ServedEnvState extends EnvState {
  layers?: LayerRev[];
}

/**
 * Environments with more keys than this have their snapshot built a slice
 * of this many entries at a time, yielding to the event loop between slices
 * (50,000 keys at once took 25–45 ms of one process's loop).
 */
export const SNAPSHOT_SLICE = 4096;

export interface StateLimits {
  /** Releases kept in memory per environment for catch-up. */
  recentReleases: number;
  /** Bytes of release frames kept in memory per environment for catch-up. */
  recentBytes: number;
}

/** What an agent holding `rev` of an environment needs to become current. */
export type CatchUp =
  | { kind: 'current' }
  | { kind: 'releases'; frames: Buffer[] }
  | { kind: 'snapshot'; frame: Buffer }
  /** A large snapshot is being built: `ready` gives the frame of revision `rev` (releases after it follow from `recent`). */
  | { kind: 'building'; rev: number; ready: Promise<Buffer> }
  | { kind: 'gone' }
  /** The agent holds a revision this server has not applied yet: it must wait, not be sent back in time. */
  | { kind: 'ahead' };

/**
 * The configuration every agent is served from, held in memory: each live
 * environment's values and revision, plus its recent releases. Reads and
 * pushes keep working from here while the system of record is unreachable.
 */
export class ServerState {
  private readonly envs = new Map<string, LiveEnv>();
  /** The parent lists of the environments that have parents. */
  private readonly parentsOf = new Map<string, string[]>();
  private readonly limits: StateLimits;
  /** Highest revision applied, cluster-wide. */
  head = 0;

  constructor(limits: StateLimits) {
    this.limits = limits;
  }

  /**
   * Every live environment's merged view, for a cluster worker's initial state (a worker only serves agents: its
   * environments stand alone, and keep the revisions of their layers as given).
   */
  export(): ServedEnvState[] {
    return [...this.envs].map(([env, live]) => {
      const layers = this.layerRevs(env);
      return { env, rev: live.rev, values: live.values, chain: live.chain, ...(layers === undefined ? {} : { layers }) };
    });
  }

  /** Loads what a store holds: own entries and parent lists, from which the merged views are built (or a worker's `export`). */
  load(head: number, envs: ServedEnvState[]): void {
    this.envs.clear();
    this.parentsOf.clear();
    this.head = head;
    for (const e of envs) {
      let marks = 0;
      for (const text of e.values.values()) marks += marksOf(text);
      const parents = e.parents ?? [];
      if (parents.length > 0) this.parentsOf.set(e.env, parents);
      this.envs.set(e.env, {
        rev: e.rev, appliedAt: 0, chain: e.chain, values: e.values, own: e.values, parents, marks, bytes: 0, recent: [], recentBytes: 0,
        ...(e.layers === undefined ? {} : { layers: e.layers }),
      });
    }
    for (const [env, live] of this.envs) {
      if (!standsAlone(live)) live.values = buildView(env, this.envs, this.parentsOf);
      for (const [key, json] of live.values) live.bytes += entryBytes(key, json);
    }
  }

  /** An environment's own entries (own texts). */
  own(env: string): ReadonlyMap<string, string> | undefined {
    return this.envs.get(env)?.own;
  }

  /** How many of an environment's own entries hold unset marks. */
  marks(env: string): number | undefined {
    return this.envs.get(env)?.marks;
  }

  /** An environment's parents, lowest first ([] for none). */
  parents(env: string): readonly string[] | undefined {
    return this.envs.get(env)?.parents;
  }

  /** Every parent list held (environments with none are left out). */
  parentMap(): ReadonlyMap<string, readonly string[]> {
    return this.parentsOf;
  }

  /** Whether any environment names `env` as a parent. */
  private hasDependents(env: string): boolean {
    for (const parents of this.parentsOf.values()) if (parents.includes(env)) return true;
    return false;
  }

  /** Bytes of every key and value held. */
  bytes(): number {
    let total = 0;
    for (const live of this.envs.values()) total += live.bytes;
    return total;
  }

  /** Keys and bytes of an environment, for the limits on its growth. */
  size(env: string): { keys: number; bytes: number } | undefined {
    const live = this.envs.get(env);
    return live === undefined ? undefined : { keys: live.values.size, bytes: live.bytes };
  }

  has(env: string): boolean {
    return this.envs.has(env);
  }

  /** The environments clients see: not the servers' own (RESERVED_ENV_PREFIX), which is held here all the same. */
  names(): string[] {
    return [...this.envs.keys()].filter((env) => !env.startsWith(RESERVED_ENV_PREFIX)).sort();
  }

  rev(env: string): number | undefined {
    return this.envs.get(env)?.rev;
  }

  /** When the environment's current revision was applied here (ms since the epoch); undefined when it was loaded at start. */
  appliedAt(env: string): number | undefined {
    const at = this.envs.get(env)?.appliedAt;
    return at === undefined || at === 0 ? undefined : at;
  }

  /** The chain value at the environment's current revision ('' when not known). */
  chain(env: string): string | undefined {
    return this.envs.get(env)?.chain;
  }

  values(env: string): ReadonlyMap<string, string> | undefined {
    return this.envs.get(env)?.values;
  }

  info(): EnvInfo[] {
    return this.names().map((env) => {
      const live = this.envs.get(env)!;
      return live.parents.length === 0 ? { env, rev: live.rev, keys: live.values.size } : { env, rev: live.rev, keys: live.values.size, parents: live.parents };
    });
  }

  /**
   * Applies a committed release and returns what it publishes, encoded: the
   * release, and one release of each environment built on it whose merged
   * view it changes (all at its revision, sent as a group). Nothing when it
   * was already applied (it came back from the poll). A release whose chain
   * value does not follow the environment's is ChainBroken, and nothing is
   * applied. Only a release whose content arrived whole is hashed again
   * (`sent` given: a cluster worker is handed the Release its primary checked
   * and published, merged, with its frame; then the link to what it holds is
   * checked, and its `layers` are kept for its snapshots).
   */
  apply(stored: StoredRelease, sent?: { message: Release; frame: Buffer }): PublishedRelease[] {
    if (sent !== undefined) {
      const published = this.applyMerged(stored, sent);
      return published === undefined ? [] : [published];
    }
    if (stored.via !== undefined) {
      checkVia(this.envs.get(stored.env), stored, this.head);
      return [];
    }
    const live = this.envs.get(stored.env);
    if (live !== undefined && stored.rev <= live.rev) return [];
    if (live === undefined && stored.op !== 'env.add') return [];
    const views = stored.drop === true ? new Map<string, KeyChange[]>() : viewChanges(stored, this.envs, this.parentsOf, this.hasDependents(stored.env));
    const merged = stored.drop === true ? stored.changes : views.get(stored.env) ?? [];
    const held = live?.chain ?? '';
    if (stored.chain !== undefined && stored.chain !== '' && (held !== '' || live === undefined)) {
      const expected = chainOfStored(held, { ...stored, merged });
      if (expected !== stored.chain) throw new ChainBroken(stored.env, stored.rev, held, expected, stored.chain);
    }
    const group: StoredRelease[] = [];
    const committedGroup = stored.group === undefined ? undefined : new Map(stored.group.map((r) => [r.env, r]));
    for (const [env, changes] of views) {
      if (env === stored.env || changes.length === 0) continue;
      const dependent = this.envs.get(env);
      if (dependent === undefined) continue;
      // Committed here, its chain value was worked out under the store's lock from the same revision this state holds.
      const committed = committedGroup?.get(env);
      if (committed !== undefined && committed.prev === dependent.rev) {
        group.push({ ...committed, merged: changes });
        continue;
      }
      const release: StoredRelease = {
        env, rev: stored.rev, prev: dependent.rev, time: stored.time, author: stored.author, op: stored.op, via: stored.env, changes: [], merged: changes,
      };
      release.chain = chainOfStored(dependent.chain, release);
      if (committed !== undefined && committed.chain !== undefined && committed.chain !== release.chain) {
        throw new ChainBroken(env, stored.rev, dependent.chain, release.chain, committed.chain,
          `the release ${env}@${stored.rev} through ${stored.env} was committed with chain value ${committed.chain}, but this server's layers give ${release.chain}`);
      }
      group.push(release);
    }
    const together = group.length > 0;
    // The layers behind each view once the whole group is applied: its parent lists, and the revision of every environment it moves.
    const parentsAfter = stored.parents === undefined ? this.parentsOf : withParentList(this.parentsOf, stored.env, stored.parents);
    const moved = { rev: stored.rev, envs: new Set([stored.env, ...group.map((r) => r.env)]) };
    const out: PublishedRelease[] = [];
    const first = this.applyOne({ ...stored, merged }, live, held !== '' || live === undefined ? held : undefined, together, this.layerRevs(stored.env, parentsAfter, moved));
    out.push(first);
    for (const release of group) {
      const dependent = this.envs.get(release.env)!;
      out.push(this.applyOne(release, dependent, dependent.chain !== '' ? dependent.chain : undefined, true, this.layerRevs(release.env, parentsAfter, moved)));
    }
    return out;
  }

  /**
   * Release.layers and Snapshot.layers of `env` (docs/protocol.md): its layers in merge order, each at the
   * revision held here (`moved`: those a release being applied moves to its revision), at most MAX_LAYER_REVS,
   * the highest kept. Undefined for an environment built on nothing — in a cluster worker, which holds no parent
   * lists, the layers its primary last sent.
   */
  private layerRevs(env: string, parentsOf: ParentMap = this.parentsOf, moved?: { rev: number; envs: ReadonlySet<string> }): LayerRev[] | undefined {
    if ((parentsOf.get(env)?.length ?? 0) === 0) return parentsOf === this.parentsOf ? this.envs.get(env)?.layers : undefined;
    return flatten(env, parentsOf).slice(-MAX_LAYER_REVS).map((layer) => [layer, moved?.envs.has(layer) === true ? moved.rev : this.envs.get(layer)?.rev ?? 0]);
  }

  /** A worker's release, merged already by its primary: applied as it is, and published as the primary sent it (`grp` and all). */
  private applyMerged(stored: StoredRelease, sent: { message: Release; frame: Buffer }): PublishedRelease | undefined {
    const { message, frame } = sent;
    const { pchain, layers } = message;
    const live = this.envs.get(stored.env);
    if (live !== undefined && stored.rev <= live.rev) return undefined;
    if (live === undefined && stored.op !== 'env.add') return undefined;
    const held = live?.chain ?? '';
    if (stored.chain !== undefined && stored.chain !== '' && held !== '' && pchain !== undefined && pchain !== held) {
      throw new ChainBroken(stored.env, stored.rev, held, pchain, stored.chain);
    }
    return this.applyOne(stored, live, undefined, false, layers, { message, frame });
  }

  /** Applies one release's merged changes (and its own entries and parents) to `live`, and encodes it (with `layers`, Release.layers). */
  private applyOne(
    stored: StoredRelease, current: LiveEnv | undefined, pchain: string | undefined, grp: boolean, layers: LayerRev[] | undefined, encoded?: PublishedRelease,
  ): PublishedRelease {
    const published = encoded ?? this.encode(stored, current?.rev ?? 0, pchain, grp, layers);
    this.head = Math.max(this.head, stored.rev);
    if (stored.drop === true) {
      this.envs.delete(stored.env);
      this.parentsOf.delete(stored.env);
      return published;
    }
    let live = current;
    if (live === undefined) {
      const values = new Map<string, string>();
      live = { rev: 0, appliedAt: 0, chain: '', values, own: values, parents: [], marks: 0, bytes: 0, recent: [], recentBytes: 0 };
      this.envs.set(stored.env, live);
    }
    if (stored.via === undefined && encoded === undefined) this.applyOwn(stored, live);
    if (encoded !== undefined) {
      // A worker's release is the message its primary sent: its [key, value] pairs, as sent.
      for (const [key, after] of encoded.message.changes) setValue(live, key, after);
    } else {
      for (const [key, , after] of stored.merged ?? stored.changes) setValue(live, key, after);
    }
    // Standing alone again, its view is its own entries: one Map again.
    if (live.own !== live.values && standsAlone(live)) live.own = live.values;
    live.rev = stored.rev;
    live.appliedAt = Date.now();
    live.chain = stored.chain ?? '';
    // A worker keeps what its primary sent; elsewhere the parent lists give them.
    if (encoded !== undefined) live.layers = layers;
    live.snapshot = undefined;
    live.recent.push(published);
    live.recentBytes += published.frame.length;
    while (
      live.recent.length > 1 &&
      (live.recent.length > this.limits.recentReleases || live.recentBytes > this.limits.recentBytes)
    ) {
      live.recentBytes -= live.recent.shift()!.frame.length;
    }
    return published;
  }

  /** A release's own changes and parent list, kept beside the merged view (the same Map while the environment stands alone). */
  private applyOwn(stored: StoredRelease, live: LiveEnv): void {
    if (stored.parents !== undefined) {
      live.parents = stored.parents;
      if (stored.parents.length === 0) this.parentsOf.delete(stored.env);
      else this.parentsOf.set(stored.env, stored.parents);
    }
    for (const [, before, after] of stored.changes) live.marks += marksOf(after) - marksOf(before);
    if (live.own === live.values && standsAlone(live)) return; // the merged changes are these: applied once, below
    if (live.own === live.values) live.own = new Map(live.values);
    for (const [key, , after] of stored.changes) {
      if (after === null) live.own.delete(key);
      else live.own.set(key, after);
    }
  }

  private encode(stored: StoredRelease, prev: number, pchain: string | undefined, grp: boolean, layers: LayerRev[] | undefined): PublishedRelease {
    const message = releaseMessage(stored, prev, pchain, grp);
    // Only an environment with layers: a plain release's bytes are as they were.
    if (layers !== undefined) message.layers = layers;
    return { message, frame: encodeMessage(message) };
  }

  /**
   * What an agent holding `held` of `env` must receive, in order. Revisions
   * are cluster-wide: one above everything applied here was committed
   * through another server, and the agent is `ahead` — unless `backwards`
   * (this server's state is the truth: a store no other server shares, or
   * one it has caught up with), when it gets this server's state.
   */
  catchUp(env: string, held: number, backwards = false, chain?: string): CatchUp {
    const live = this.envs.get(env);
    if (held > this.head && !backwards) return { kind: 'ahead' };
    if (live === undefined) return { kind: 'gone' };
    // The agent says which chain it holds: another one than this server's at that revision is a fork, healed by a snapshot.
    const known = chain !== undefined && chain !== '';
    if (held === live.rev && (!known || live.chain === '' || live.chain === chain)) return { kind: 'current' };
    if (held < live.rev) {
      const start = live.recent.findIndex((r) => r.message.prev === held);
      const follows = start >= 0 && (!known || live.recent[start].message.pchain === undefined || live.recent[start].message.pchain === chain);
      if (follows) return { kind: 'releases', frames: live.recent.slice(start).map((r) => r.frame) };
    }
    if (live.snapshot === undefined && live.values.size > SNAPSHOT_SLICE) {
      const building = this.build(env, live);
      return { kind: 'building', rev: building.rev, ready: building.ready };
    }
    return { kind: 'snapshot', frame: this.snapshotFrame(env, live) };
  }

  /** Builds the snapshot of `live` as it is now, a slice per turn of the event loop; one build per revision. */
  private build(env: string, live: LiveEnv): { rev: number; ready: Promise<Buffer> } {
    if (live.building !== undefined && live.building.rev === live.rev) return live.building;
    const rev = live.rev;
    const entries = [...live.values];
    const encoder = new SnapshotEncoder(env, rev, live.chain, this.layerRevs(env));
    const ready = new Promise<Buffer>((resolve, reject) => {
      let next = 0;
      const slice = (): void => {
        try {
          encoder.add(entries.slice(next, next + SNAPSHOT_SLICE));
          next += SNAPSHOT_SLICE;
          if (next < entries.length) {
            setImmediate(slice);
            return;
          }
          const frame = encoder.frame();
          if (this.envs.get(env) === live && live.rev === rev) live.snapshot = frame;
          if (live.building?.ready === ready) live.building = undefined;
          resolve(frame);
        } catch (err) {
          if (live.building?.ready === ready) live.building = undefined;
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what the encoder threw is passed on unchanged
          reject(err);
        }
      };
      setImmediate(slice);
    });
    live.building = { rev, ready };
    return live.building;
  }

  private snapshotFrame(env: string, live: LiveEnv): Buffer {
    live.snapshot ??= encodeMessage(snapshotMessage(env, live.rev, [...live.values], live.chain, this.layerRevs(env)));
    return live.snapshot;
  }
}

/** `parentsOf` with `env`'s list replaced by `parents` (none: removed), for the layers a parent list change leaves. */
function withParentList(parentsOf: ParentMap, env: string, parents: readonly string[]): ParentMap {
  const out = new Map(parentsOf);
  if (parents.length === 0) out.delete(env);
  else out.set(env, parents);
  return out;
}
