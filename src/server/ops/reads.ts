import {
  WireError,
  type AdminRequest, type BigValue, type EnvInfo, type HistoryRelease, type KeyChange, type LocalStatus, type ResultOf, type StatusResult,
} from '../../protocol/index.js';
import { envNotFound, keyNotFound, RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import { hasMarks, ownDisplay } from '../model/layers/index.js';
import { invert, netValues, pageOf, type LeftOut } from '../releases/history.js';
import type { ServerState } from '../releases/state.js';
import type { ChangeRef, Store, StoredRelease } from '../store/types.js';
import { LayerReads, NO_ACCESS } from './layer-reads.js';

/** What the hub reports about the processes and the connected agents for `status`. */
export interface StatusSource {
  /** With `agent`: the agents of that id too, on whichever server holds them. */
  status(env: string | undefined, agent?: string): Promise<Omit<StatusResult, 'envs'>>;
  /** This server alone (what the cluster's `status` gathers from each server). */
  local(env: string | undefined, agent?: string): Promise<LocalStatus>;
}

export const DEFAULT_HISTORY_LIMIT = 50;

type ReadOf<K extends AdminRequest['op']> = Extract<AdminRequest, { op: K }>;

/**
 * The configuration's reads: environments and values from the state in
 * memory, history and diffs from the store, each answer a page of at most
 * answerBytes (large values by size and hash unless asked for, as far as the
 * page's bytes go), and the status the processes report.
 */
export class ConfigReads {
  private statusSource?: StatusSource;
  readonly layers: LayerReads;

  constructor(private readonly store: Store, private readonly state: ServerState, private readonly limits: ServerLimits) {
    this.layers = new LayerReads(store, state, limits);
  }

  setStatusSource(source: StatusSource): void {
    this.statusSource = source;
  }

  envList(): ResultOf['env.list'] {
    return { envs: this.state.info() };
  }

  /** The merged value; with `own` the environment's own entry, with `explain` where each leaf comes from (layer-reads.ts). */
  get(req: ReadOf<'get'>, reads: (env: string) => boolean = () => true): ResultOf['get'] | Promise<ResultOf['get']> {
    if (req.explain === true) return this.layers.explain(req, reads);
    if (req.own === true) return this.layers.own(req);
    const value = this.liveValues(req.env).get(req.key);
    if (value === undefined) throw keyNotFound(req.env, req.key);
    return { env: req.env, rev: this.state.rev(req.env)!, key: req.key, value };
  }

  /** A page of an environment's keys and values, in key order, of at most answerBytes. */
  list(req: ReadOf<'list'>): ResultOf['list'] {
    const { env, after } = req;
    const prefix = req.prefix ?? '';
    const values = req.own === true ? this.layers.ownEntries(env) : this.liveValues(env);
    const keys = [...values.keys()].filter((k) => k.startsWith(prefix) && (after === undefined || k > after)).sort();
    const entries: [string, string][] = [];
    let used = 0;
    for (const key of keys) {
      const value = req.own === true ? ownDisplay(values.get(key)!) : values.get(key)!;
      const bytes = Buffer.byteLength(key) + Buffer.byteLength(value);
      if (entries.length > 0 && used + bytes > this.limits.answerBytes) {
        return { env, rev: this.state.rev(env)!, entries, next: entries[entries.length - 1][0] };
      }
      used += bytes;
      entries.push([key, value]);
    }
    return { env, rev: this.state.rev(env)!, entries };
  }

  /** A page of history: large values by size and hash (whole with `values`, as far as the page's bytes go). */
  async history(req: ReadOf<'history'>, reads: (env: string) => boolean = () => true): Promise<ResultOf['history']> {
    const page = await this.store.historyPage(req.env, {
      ...(req.key === undefined ? {} : { key: req.key }),
      ...(req.before === undefined ? {} : { before: req.before }),
      limit: Math.min(req.limit ?? DEFAULT_HISTORY_LIMIT, 10_000),
      elideAbove: this.limits.historyValueBytes,
      maxBytes: this.limits.answerBytes,
      ...(req.own === true ? { own: true } : {}),
    });
    // A release through a layer the caller may not read shows that the view changed then, and nothing of that layer:
    // not its name, author or changes (they are that layer's own, not this view's); with a key asked for, not at all.
    const releases = page.releases
      .filter((r) => r.via === undefined || reads(r.via) || req.key === undefined)
      .map((r) => shownTo(toHistory(r), reads));
    if (req.values === true) {
      let used = releases.reduce((n, r) => n + changeBytes(r.changes, r.big), 0);
      const wanted: { release: HistoryRelease; entry: BigValue; ref: ChangeRef }[] = [];
      for (const release of releases) {
        for (const entry of release.big ?? []) {
          if (used + entry[2] > this.limits.answerBytes) continue;
          used += entry[2];
          wanted.push({ release, entry, ref: { rev: release.rev, key: release.changes[entry[0]][0], side: entry[1] } });
        }
      }
      const values = await this.store.changeValues(req.env, wanted.map((w) => w.ref));
      wanted.forEach(({ release, entry }, i) => {
        if (values[i] === null || values[i] === undefined) return;
        release.changes[entry[0]][entry[1]] = values[i];
        release.big = release.big!.filter((b) => b !== entry);
        if (release.big.length === 0) delete release.big;
      });
    }
    return { env: req.env, releases, ...(page.next === undefined ? {} : { next: page.next }) };
  }

  /** A page of the net changes between two revisions, by key, large values as in history. */
  async diff(req: ReadOf<'diff'>): Promise<ResultOf['diff']> {
    const current = this.state.rev(req.env);
    if (current === undefined) throw envNotFound(req.env);
    const to = req.to ?? current;
    const [low, high] = req.from <= to ? [req.from, to] : [to, req.from];
    // A layered view is compared as merged, rebuilt from its layers' own entries at each revision; another, from its
    // releases, large values never read whole to work this out: compared by size and hash.
    const net = this.layers.layered(req.env)
      ? await this.layers.diff(req.env, low, high)
      : await netValues(await this.store.releasesBetween(req.env, low, high, this.limits.historyValueBytes));
    const page = pageOf(net, req.after, this.limits.answerBytes);
    if (req.values === true) {
      let used = changeBytes(page.changes, page.big);
      const wanted: { index: number; left: LeftOut }[] = [];
      page.left.forEach((lefts, index) => {
        for (const left of lefts ?? []) {
          if (used + left.bytes > this.limits.answerBytes) continue;
          used += left.bytes;
          wanted.push({ index, left });
        }
      });
      const values = await this.store.changeValues(req.env, wanted.map((w) => w.left.ref));
      wanted.forEach(({ index, left }, i) => {
        if (values[i] === null || values[i] === undefined) return;
        // The net change's before is its first release's before, its after the last one's after.
        const side = left.ref.side;
        page.changes[index][side] = values[i];
        page.big = page.big.filter(([c, s]) => !(c === index && s === side));
      });
    }
    const forward = req.from <= to;
    const changes = forward ? page.changes : invert(page.changes);
    const big: BigValue[] = forward ? page.big : page.big.map(([c, side, bytes, sha]) => [c, side === 1 ? 2 : 1, bytes, sha]);
    return { env: req.env, from: req.from, to, changes, ...(big.length === 0 ? {} : { big }), ...(page.next === undefined ? {} : { next: page.next }) };
  }

  async status(req: ReadOf<'status'>): Promise<ResultOf['status']> {
    if (req.env !== undefined && !this.state.has(req.env)) throw envNotFound(req.env);
    const envs: EnvInfo[] = this.state.info().filter((e) => req.env === undefined || e.env === req.env);
    return { ...(await this.source().status(req.env, req.agent)), envs };
  }

  localStatus(req: ReadOf<'status.local'>): Promise<ResultOf['status.local']> {
    if (req.env !== undefined && !this.state.has(req.env)) throw envNotFound(req.env);
    return this.source().local(req.env, req.agent);
  }

  private source(): StatusSource {
    if (this.statusSource === undefined) throw new RequestError(WireError.INTERNAL, 'status is not available');
    return this.statusSource;
  }

  private liveValues(env: string): ReadonlyMap<string, string> {
    const values = this.state.values(env);
    if (values === undefined) throw envNotFound(env);
    return values;
  }
}

function toHistory(r: StoredRelease): HistoryRelease {
  // Own entries that hold unset marks are shown as `{"unset": …, "value": …}` (own.ts), never in their stored form.
  const shown = (text: string | null): string | null => (text !== null && hasMarks(text) ? ownDisplay(text) : text);
  const changes = r.changes.some(([, before, after]) => (before !== null && hasMarks(before)) || (after !== null && hasMarks(after)))
    ? r.changes.map(([key, before, after]): KeyChange => [key, shown(before), shown(after)])
    : r.changes;
  const out: HistoryRelease = { rev: r.rev, prev: r.prev, time: r.time, author: r.author, op: r.op, changes };
  if (r.via !== undefined) out.via = r.via;
  if (r.parents !== undefined) out.parents = r.parents;
  if (r.big !== undefined && r.big.length > 0) out.big = r.big;
  if (r.more !== undefined) out.more = r.more;
  return out;
}

/** A history entry as a caller who reads only some layers may see it (NO_ACCESS for the rest). */
function shownTo(r: HistoryRelease, reads: (env: string) => boolean): HistoryRelease {
  let out = r;
  if (r.via !== undefined && !reads(r.via)) {
    out = { rev: r.rev, prev: r.prev, time: r.time, author: NO_ACCESS, op: r.op, via: NO_ACCESS, changes: [] };
  }
  if (out.parents !== undefined && !out.parents.every(reads)) out = { ...out, parents: out.parents.map((p) => (reads(p) ? p : NO_ACCESS)) };
  return out;
}

/** Bytes of keys and values an answer's changes carry (a value left out counts a little). */
function changeBytes(changes: KeyChange[], big: BigValue[] | undefined): number {
  let n = 40 * (big?.length ?? 0);
  for (const [key, before, after] of changes) n += Buffer.byteLength(key) + (before === null ? 0 : Buffer.byteLength(before)) + (after === null ? 0 : Buffer.byteLength(after));
  return n;
}
