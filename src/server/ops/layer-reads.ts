import { WireError, type AdminRequest, type ExplainLeaf, type ResultOf } from '../../protocol/index.js';
import { envNotFound, keyNotFound, RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import {
  changedKeys, dependentsOf, explain, flatten, mergedView, ownDisplay, ownLayer,
} from '../model/layers/index.js';
import { rollbackChanges, type NetChange } from '../releases/history.js';
import type { ServerState } from '../releases/state.js';
import type { Store } from '../store/types.js';

type ReadOf<K extends AdminRequest['op']> = Extract<AdminRequest, { op: K }>;

/** Shown instead of an environment the caller may not read: its name and values stay hidden. */
export const NO_ACCESS = '(no access)';
/** Characters of a key's own texts across its layers that `get --explain` walks, at most. */
export const EXPLAIN_MAX_BYTES = 64 * 1024;

/** The layer of an explained path where nothing is left: an unset hid all there was. */
export const HIDDEN = '(unset)';

/** What an environment's layers were at a revision: each layer's own entries, and the merged view they give. */
export interface ViewAt {
  order: string[];
  own: Map<string, Map<string, string>>;
  values: Map<string, string>;
}

/**
 * The reads of layered environments: own entries, provenance (`get --explain`), the layers of an
 * environment (`env show`), and merged views as they were at a revision (diff, rollback), rebuilt
 * from each layer's own entries and history.
 */
export class LayerReads {
  constructor(private readonly store: Store, private readonly state: ServerState, private readonly limits: ServerLimits) {}

  /** The environment's own entry of the key, as shown (a value, or `{"unset": …, "value": …}`). */
  own(req: ReadOf<'get'>): ResultOf['get'] {
    const own = this.state.own(req.env);
    if (own === undefined) throw envNotFound(req.env);
    const text = own.get(req.key);
    if (text === undefined) throw new RequestError(WireError.KEY_NOT_FOUND, `${req.env} has no entry of its own for ${req.key}`);
    return { env: req.env, rev: this.state.rev(req.env)!, key: req.key, value: ownDisplay(text) };
  }

  /** A page of own entries, as `list` pages the merged view. */
  ownEntries(env: string): ReadonlyMap<string, string> {
    const own = this.state.own(env);
    if (own === undefined) throw envNotFound(env);
    return own;
  }

  /**
   * Every leaf of the merged value with the layer that set it, that layer's last own change of the
   * key (revision, author) and the layers whose unset hid something there. A layer the caller may
   * not read is shown as NO_ACCESS, with nothing of it.
   */
  async explain(req: ReadOf<'get'>, reads: (env: string) => boolean): Promise<ResultOf['get']> {
    const values = this.state.values(req.env);
    if (values === undefined) throw envNotFound(req.env);
    const value = values.get(req.key);
    const order = flatten(req.env, this.state.parentMap());
    const holding = order.filter((name) => this.state.own(name)?.has(req.key) === true);
    // A key no view shows is not found, as for get — unless every layer holding it is the caller's to read (then
    // where it was hidden is shown): whether a layer it may not read holds a key is not the caller's to learn.
    if (value === undefined && (holding.length === 0 || !holding.every(reads))) throw keyNotFound(req.env, req.key);
    // Provenance costs a walk of every layer's value: bounded, so that no read costs more than a few of its answers.
    let bytes = 0;
    for (const name of holding) bytes += this.state.own(name)!.get(req.key)!.length;
    if (bytes > EXPLAIN_MAX_BYTES) {
      throw new RequestError(WireError.LIMIT_EXCEEDED, `${req.key} is too large to explain: its layers' values take more than ${EXPLAIN_MAX_BYTES} bytes in all (get --own on each layer shows what it gives)`);
    }
    const layers = order.map((name) => ownLayer(name, this.state.own(name)));
    const explained = explain(req.key, layers);
    const shown = (name: string): string => (reads(name) ? name : NO_ACCESS);
    const lastChange = new Map<string, Promise<{ rev: number; author: string } | undefined>>();
    const changeOf = (name: string): Promise<{ rev: number; author: string } | undefined> => {
      let found = lastChange.get(name);
      if (found === undefined) {
        found = this.store.historyPage(name, { key: req.key, limit: 1, own: true, elideAbove: 0, maxBytes: 1 })
          .then((page) => (page.releases[0] === undefined ? undefined : { rev: page.releases[0].rev, author: page.releases[0].author }));
        lastChange.set(name, found);
      }
      return found;
    };
    const leaves: ExplainLeaf[] = [];
    let used = Buffer.byteLength(value ?? '');
    let more = 0;
    for (const leaf of explained.leaves) {
      // Each leaf names its path: a value of many leaves would make an answer many times its size.
      const bytes = 48 + JSON.stringify(leaf.path).length * 3;
      if (used + bytes > this.limits.answerBytes) {
        more++;
        continue;
      }
      used += bytes;
      const out: ExplainLeaf = { path: leaf.path, layer: shown(leaf.layer) };
      if (reads(leaf.layer)) {
        const change = await changeOf(leaf.layer);
        if (change !== undefined) {
          out.rev = change.rev;
          out.author = change.author;
        }
      }
      // Only unsets of layers the caller reads are named: one of another layer would tell what that layer hid.
      const hidden = leaf.hiddenBy.filter(reads);
      if (hidden.length > 0) out.hidden = hidden;
      leaves.push(out);
    }
    // Where an unset hid all there was (no leaf is left at, above or under its path): an entry of its own.
    const related = (a: readonly (string | number)[], b: readonly (string | number)[]): boolean => {
      const n = Math.min(a.length, b.length);
      for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
      return true;
    };
    for (const hiding of explained.hidings) {
      // The marks of a layer the caller may not read stay unshown: their paths tell of what it hid.
      if (!reads(hiding.layer)) continue;
      if (explained.leaves.some((l) => l.hiddenBy.includes(hiding.layer) && related(l.path, hiding.path))) continue;
      if (leaves.some((l) => l.layer === HIDDEN && JSON.stringify(l.path) === JSON.stringify(hiding.path))) continue;
      leaves.push({ path: hiding.path, layer: HIDDEN, hidden: [hiding.layer] });
    }
    return { env: req.env, rev: this.state.rev(req.env)!, key: req.key, value: value ?? 'null', explain: leaves, ...(more > 0 ? { explainMore: more } : {}) };
  }

  /** Its parents, its merge order and everything built on it; environments the caller may not read shown as NO_ACCESS. */
  show(req: ReadOf<'env.show'>, reads: (env: string) => boolean): ResultOf['env.show'] {
    const parents = this.state.parents(req.env);
    if (parents === undefined) throw envNotFound(req.env);
    const map = this.state.parentMap();
    const shown = (name: string): string => (reads(name) ? name : NO_ACCESS);
    // Dependents the caller may not read are one entry, however many: their number is not the caller's to know.
    const dependents = dependentsOf(req.env, map);
    const readable = dependents.filter(reads);
    return {
      env: req.env, rev: this.state.rev(req.env)!, parents: parents.map(shown),
      order: flatten(req.env, map).map(shown), dependents: readable.length < dependents.length ? [...readable, NO_ACCESS] : readable,
    };
  }

  /** Whether the environment's view is built from layers now (its diff and rollback then compare merged views). */
  layered(env: string): boolean {
    return (this.state.parents(env) ?? []).length > 0 || [...(this.state.own(env)?.values() ?? [])].some((t) => t.startsWith('!'));
  }

  /** An environment's parent list as it was at `rev` (its own releases after it undone). */
  async parentsAt(env: string, rev: number): Promise<string[]> {
    const current = this.state.rev(env);
    const now = [...(this.state.parents(env) ?? [])];
    if (current === undefined || rev >= current) return now;
    const after = await this.store.releasesBetween(env, rev, current, 0);
    if (!after.some((r) => r.parents !== undefined)) return now;
    // Changed since: the list the last change at or before `rev` left, or none.
    const before = await this.store.releasesBetween(env, 0, rev, 0);
    let list: string[] = [];
    for (const r of before) if (r.parents !== undefined) list = r.parents;
    return list;
  }

  /** The merged view of `env` at `rev`: each layer's own entries then, merged in the order of then. */
  async viewAt(env: string, rev: number): Promise<ViewAt> {
    const map = new Map<string, readonly string[]>();
    const own = new Map<string, Map<string, string>>();
    const pending = [env];
    for (let i = 0; i < pending.length && i < 1000; i++) {
      const name = pending[i];
      if (own.has(name)) continue;
      own.set(name, await this.ownAt(name, rev));
      const parents = this.state.has(name) ? await this.parentsAt(name, rev) : [];
      if (parents.length > 0) map.set(name, parents);
      pending.push(...parents);
    }
    const order = flatten(env, map);
    return { order, own, values: mergedView(order.map((name) => ownLayer(name, own.get(name)))) };
  }

  /** The net changes between the merged views of two revisions, by key. */
  async diff(env: string, low: number, high: number): Promise<NetChange[]> {
    const [from, to] = [await this.viewAt(env, low), await this.viewAt(env, high)];
    return changedKeys(from.values, to.values).map((key) => ({ key, before: from.values.get(key) ?? null, after: to.values.get(key) ?? null }));
  }

  /** After a rollback to `rev`: each key whose merged value still differs from then, with the layer whose entry makes it differ. */
  async stillDiffering(env: string, rev: number): Promise<{ key: string; layer: string }[]> {
    const then = await this.viewAt(env, rev);
    const now = this.state.values(env) ?? new Map<string, string>();
    const order = flatten(env, this.state.parentMap());
    const out: { key: string; layer: string }[] = [];
    for (const key of changedKeys(then.values, now)) {
      const cause = [...new Set([...order].reverse())].find((name) => (this.state.own(name)?.get(key) ?? null) !== (then.own.get(name)?.get(key) ?? null));
      out.push({ key, layer: cause ?? (order.join(',') === then.order.join(',') ? env : 'the merge order') });
      if (out.length >= 1000) break;
    }
    return out;
  }

  /** Own entries of `env` as they were at `rev` (empty when it did not exist then). */
  private async ownAt(env: string, rev: number): Promise<Map<string, string>> {
    const current = this.state.rev(env);
    const own = new Map(this.state.own(env) ?? []);
    if (current === undefined || rev >= current) return own;
    const undo = await rollbackChanges(await this.store.releasesBetween(env, rev, current));
    for (const [key, text] of undo) {
      if (text === null) own.delete(key);
      else own.set(key, text);
    }
    return own;
  }
}
