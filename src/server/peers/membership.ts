import type { MemberEntry, MemberState } from '../../protocol/index.js';

/** How this server judges the others, from what it hears (directly or through another server). */
export type Health = 'alive' | 'suspect' | 'dead';

export interface MemberView {
  entry: MemberEntry;
  /** Local time the entry last grew (a newer version arrived, from it or about it). */
  heardAt: number;
  health: Health;
}

export interface DetectorSettings {
  /** Silence after which a server is suspect. */
  suspectAfterMs: number;
  /** Silence after which it is dead. */
  deadAfterMs: number;
  /** A dead or stopped server is forgotten after this long (the registry still knows it). */
  forgetAfterMs: number;
}

export const DETECTOR_DEFAULTS: DetectorSettings = {
  suspectAfterMs: 5_000,
  deadAfterMs: 15_000,
  forgetAfterMs: 3_600_000,
};

export interface HealthChange {
  id: string;
  from: Health;
  to: Health;
  silentMs: number;
}

/** (gen, ver) order: a newer generation always wins, then the higher version. */
export function newer(a: Pick<MemberEntry, 'gen' | 'ver'>, b: Pick<MemberEntry, 'gen' | 'ver'>): boolean {
  return a.gen > b.gen || (a.gen === b.gen && a.ver > b.ver);
}

/**
 * The cluster as one server knows it, Scuttlebutt-style: every server owns
 * its entry and is the only one that changes it (its version grows with each
 * change and with its heartbeat, once a second); the others pass it on, and
 * merging keeps the newest (generation, version) of each. An entry of an
 * older generation never overrides a newer one, and nobody's word about this
 * server overrides its own.
 *
 * Failure detection: a server is suspect when its entry has not grown for
 * suspectAfterMs, dead after deadAfterMs. Entries arrive through every
 * server that hears it, so a server one peer cannot reach but another can
 * stays alive (its heartbeat comes round through the other). Both times grow
 * with this process's own event-loop delay (`lagMs`): a server that was busy
 * itself does not blame the others for its silence.
 */
export class Membership {
  readonly self: MemberEntry;
  private readonly views = new Map<string, MemberView>();
  /**
   * Entries forgotten, kept as (generation, version) so that the copy some
   * server still passes on is not taken for news: only a newer entry (the
   * server came back) brings it back. Kept for 24 × forgetAfterMs.
   */
  private readonly tombstones = new Map<string, { gen: number; ver: number; at: number }>();
  private readonly settings: DetectorSettings;
  private readonly now: () => number;

  constructor(self: Omit<MemberEntry, 'ver'>, settings: DetectorSettings = DETECTOR_DEFAULTS, now: () => number = Date.now) {
    this.self = { ...self, ver: 1 };
    this.settings = settings;
    this.now = now;
  }

  /** Changes this server's own entry; true when something changed (the version grew). */
  update(patch: Partial<Pick<MemberEntry, 'addrs' | 'state' | 'agents' | 'head'>>): boolean {
    let changed = false;
    for (const [k, v] of Object.entries(patch) as [keyof typeof patch, unknown][]) {
      if (v === undefined) continue;
      const before = this.self[k];
      if (Array.isArray(v) ? JSON.stringify(v) !== JSON.stringify(before) : v !== before) {
        (this.self as unknown as Record<string, unknown>)[k] = v;
        changed = true;
      }
    }
    if (changed) this.self.ver++;
    return changed;
  }

  /** The heartbeat: the own version grows, so every server sees this one is alive. */
  beat(): void {
    this.self.ver++;
  }

  /**
   * Takes entries from a gossip. Returns the ids whose entry changed, and a
   * conflict when another process claims this server's id with a newer
   * generation (two servers configured with one id).
   */
  merge(entries: MemberEntry[]): { changed: string[]; conflict?: MemberEntry } {
    const changed: string[] = [];
    let conflict: MemberEntry | undefined;
    const now = this.now();
    for (const e of entries) {
      if (e.id === this.self.id) {
        if (e.gen > this.self.gen) conflict = e;
        continue;
      }
      const known = this.views.get(e.id);
      if (known !== undefined && !newer(e, known.entry)) continue;
      const buried = this.tombstones.get(e.id);
      if (buried !== undefined) {
        if (!newer(e, buried)) continue;
        this.tombstones.delete(e.id);
      }
      const entry: MemberEntry = { ...e, addrs: [...e.addrs] };
      // The health stays as judged until the next judge(), which reports the way back to alive.
      this.views.set(e.id, { entry, heardAt: now, health: known?.health ?? 'alive' });
      changed.push(e.id);
    }
    return conflict === undefined ? { changed } : { changed, conflict };
  }

  /**
   * Re-judges every server. `lagMs`: how late this process's own timers
   * have run lately; the silence allowed grows by twice that.
   */
  judge(lagMs: number): HealthChange[] {
    const now = this.now();
    const slack = 2 * Math.max(0, lagMs);
    const out: HealthChange[] = [];
    for (const [id, view] of this.views) {
      const silent = now - view.heardAt;
      if (view.entry.state === 'left') {
        if (silent > this.settings.forgetAfterMs) this.forget(id, view, now);
        continue;
      }
      const health: Health = silent > this.settings.deadAfterMs + slack ? 'dead' : silent > this.settings.suspectAfterMs + slack ? 'suspect' : 'alive';
      if (health !== view.health) {
        out.push({ id, from: view.health, to: health, silentMs: silent });
        view.health = health;
      }
      if (health === 'dead' && silent > this.settings.forgetAfterMs) this.forget(id, view, now);
    }
    for (const [id, t] of this.tombstones) if (now - t.at > 24 * this.settings.forgetAfterMs) this.tombstones.delete(id);
    return out;
  }

  private forget(id: string, view: MemberView, now: number): void {
    this.views.delete(id);
    this.tombstones.set(id, { gen: view.entry.gen, ver: view.entry.ver, at: now });
  }

  /**
   * Every entry to gossip: this server's first, then the others' — not those
   * this server judges dead (a dead server's last entry is not passed round
   * for ever), nor forgotten ones.
   */
  entries(): MemberEntry[] {
    return [this.self, ...[...this.views.values()].filter((v) => v.health !== 'dead').map((v) => v.entry)];
  }

  view(id: string): MemberView | undefined {
    return this.views.get(id);
  }

  /** The others, as this server sees them. */
  others(): MemberView[] {
    return [...this.views.values()];
  }

  /** What status and agents see of a server: its own state, unless this server judges it suspect or dead. */
  static shownState(view: MemberView): string {
    if (view.entry.state === 'left') return 'left';
    if (view.health !== 'alive') return view.health;
    return view.entry.state;
  }

  /** Servers an agent may be sent to: heard from lately and not leaving. */
  candidates(): MemberEntry[] {
    return [this.self, ...this.others().filter((v) => v.health === 'alive' && v.entry.state === 'alive').map((v) => v.entry)]
      .filter((e) => e.state === 'alive');
  }
}

export type { MemberEntry, MemberState };
