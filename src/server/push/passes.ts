import { encodeMessage } from '../../protocol/index.js';
import { releaseMessage } from '../releases/messages.js';
import type { PublishedRelease } from '../releases/state.js';
import type { AgentWriter } from './agent-writer.js';
import { GroupedPass, type EnvBatch } from './groups.js';
import type { Subscriptions } from './subscriptions.js';
import type { Watchers } from './watchers.js';

/** Sockets written per slice of a fan-out (about 2–5 ms of work on this hardware). */
export const FANOUT_SLICE = 256;

/** One environment's releases of a pass, being written to the agents that followed it when the pass began. */
interface Batch extends EnvBatch {
  next: number;
}

/**
 * The push of published releases, in passes: a pass takes every release
 * queued, joins the frames of each environment into one Buffer, and writes
 * it to every agent following it, `slice` sockets at a time, yielding to
 * the event loop between slices — an admin's answer, an acknowledgement, a
 * new session never wait for the whole fan-out. Releases published during a
 * pass go out together in the next one: a burst costs one write per agent
 * per pass, not one per release. Passes never overlap, so every agent gets
 * its releases in order. A pass holding a release of a group (`grp`) is
 * written agent by agent instead: each gets its frames of the pass and a
 * GroupEnd in one write (groups.ts).
 */
export class Passes {
  private readonly queued = new Map<string, { releases: PublishedRelease[]; first: number; last: number }>();
  /** Releases published so far (each is applied to the state before it is published). */
  private count = 0;
  /** The pass being written, batch by batch; releases published meanwhile wait in `queued` for the next one. */
  private pass: Batch[] = [];
  /** The pass being written, when it holds a grouped release: agent by agent. */
  private grouped: GroupedPass | undefined;
  private stepScheduled = false;

  constructor(
    private readonly subs: Subscriptions,
    private readonly watchers: Watchers,
    private readonly writer: AgentWriter,
    private readonly slice: number,
    /** Called whenever the passes have caught up with everything published. */
    private readonly idle: () => void,
  ) {}

  /** Releases published so far: a subscription taken now has every one of them in its catch-up. */
  get published(): number {
    return this.count;
  }

  /** Whether a pass is being written or releases wait for one. */
  get busy(): boolean {
    return this.pass.length > 0 || this.grouped !== undefined || this.queued.size > 0;
  }

  publish(release: PublishedRelease): void {
    const env = release.message.env;
    const n = ++this.count;
    const queued = this.queued.get(env);
    if (queued === undefined) this.queued.set(env, { releases: [release], first: n, last: n });
    else {
      queued.releases.push(release);
      queued.last = n;
    }
    this.schedule();
  }

  /** Writes everything queued and the pass in progress now, in one go. */
  flush(): void {
    this.step(Number.POSITIVE_INFINITY);
  }

  private schedule(): void {
    if (this.stepScheduled) return;
    this.stepScheduled = true;
    setImmediate(() => {
      this.stepScheduled = false;
      this.step(this.slice);
    });
  }

  /** Writes up to `budget` sockets of the pass in progress, beginning the next pass when one ends. */
  private step(budget: number): void {
    try {
      while (budget > 0) {
        if (this.grouped !== undefined) {
          budget -= this.grouped.write(budget, (sub) => this.subs.current(sub), (sub, frame) => this.writer.send(sub, frame));
          if (this.grouped.done) this.grouped = undefined;
          continue;
        }
        const batch = this.pass[0];
        if (batch === undefined) {
          if (this.queued.size === 0) break;
          this.beginPass();
          continue;
        }
        const end = Math.min(batch.targets.length, batch.next + budget);
        budget -= end - batch.next;
        while (batch.next < end) {
          const sub = batch.targets[batch.next++];
          // Gone or subscribed again since the pass began, or caught up past it: its catch-up had these releases.
          if (!this.subs.current(sub) || sub.caughtUpTo >= batch.last) continue;
          this.writer.send(sub, sub.caughtUpTo >= batch.first ? batch.joined : batch.frame);
        }
        if (batch.next >= batch.targets.length) this.pass.shift();
      }
    } finally {
      if (this.busy) this.schedule();
      else this.idle();
    }
  }

  /** Takes every queued release into a new pass: the agents to write are those following each environment now. */
  private beginPass(): void {
    const queued = [...this.queued];
    this.queued.clear();
    let grouped = false;
    for (const [env, { releases, first, last: n }] of queued) {
      const joined = releases.length === 1 ? releases[0].frame : Buffer.concat(releases.map((r) => r.frame));
      const last = releases[releases.length - 1].message;
      const frame = releases.length > 1 && releases.every((r) => r.message.drop !== true) ? mergedFrame(releases) : joined;
      this.pass.push({ frame, joined, first, last: n, targets: this.subs.followers(env), next: 0 });
      if (!grouped) grouped = releases.some((r) => r.message.grp === true);
      // Admins watching get every release as it was committed — without the layers it came through (names a watcher
      // may not read): encoded again only when there is something to leave out, and only when someone watches.
      if (this.watchers.watching(env)) this.watchers.send(env, releases.some(namesLayers) ? Buffer.concat(releases.map(withoutLayers)) : joined);
      // Agents following it by name go on following it: if it is created again, they get it from revision 0.
      if (releases.some((r) => r.message.drop === true)) this.subs.dropped(env, last.drop === true);
    }
    if (grouped) {
      this.grouped = new GroupedPass(this.pass);
      this.pass = [];
    }
  }
}

function namesLayers(release: PublishedRelease): boolean {
  return release.message.via !== undefined || release.message.layers !== undefined || release.message.grp === true;
}

/** A release as watchers get it: no `via`, `layers` or `grp` (a watcher never gets a GroupEnd). */
function withoutLayers(release: PublishedRelease): Buffer {
  if (!namesLayers(release)) return release.frame;
  const { via: _via, layers: _layers, grp: _grp, ...rest } = release.message;
  return encodeMessage(rest);
}

/**
 * Several releases of one environment, in order, as one release from the
 * first's `prev` to the last's `rev` carrying each key's final value (op
 * `batch`): an agent holding `prev` applies it as it would the releases one
 * by one, and a burst of a hundred costs it one message, not a hundred.
 * The batch follows what its first release follows and ends where its last one does;
 * it is of a group if any of them is, names no `via` (it may mix writes), and the layers of its last.
 */
function mergedFrame(releases: PublishedRelease[]): Buffer {
  const first = releases[0].message;
  const last = releases[releases.length - 1].message;
  const changes = new Map<string, string | null>();
  for (const r of releases) for (const [key, after] of r.message.changes) changes.set(key, after);
  const authors = new Set(releases.map((r) => r.message.author));
  const author = authors.size === 1 ? last.author : [...authors].slice(0, 8).join(', ').slice(0, 1024);
  const message = releaseMessage({
    env: last.env, rev: last.rev, prev: first.prev, time: last.time, author, op: 'batch',
    changes: [...changes].map(([key, after]) => [key, null, after]),
    ...(last.chain === undefined ? {} : { chain: last.chain }),
  }, first.prev, first.pchain);
  if (releases.some((r) => r.message.grp === true)) message.grp = true;
  if (last.layers !== undefined) message.layers = last.layers;
  return encodeMessage(message);
}
