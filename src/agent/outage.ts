/**
 * When an agent says that it reaches no server. Tracing shows every failed
 * connect, but an operator without VITEFA_TRACE must still learn that a host
 * has lost the cluster, and without a line per attempt (an attempt every few
 * seconds for hours) burying everything else.
 */

export interface OutageSettings {
  /** Time without a session before the first line (a quick failover says nothing). */
  firstAfterMs: number;
  /** At most one line per this long after that, across outages. */
  everyMs: number;
}

export const OUTAGE_DEFAULTS: OutageSettings = {
  firstAfterMs: 5_000,
  everyMs: 60_000,
};

/** Addresses named in one line; the others are counted. */
export const OUTAGE_NAMED = 16;
/** Addresses remembered per outage (an agent knows at most a few hundred servers). */
const TRIED_MAX = 1024;

/** What one line says. */
export interface OutageReport {
  /** Time without a session so far. */
  forMs: number;
  /** Every address tried in this outage, in the order first tried (at most OUTAGE_NAMED). */
  tried: string[];
  /** Addresses tried beyond those named. */
  more: number;
  /** The last attempt's error; undefined while the first attempt has not failed yet. */
  lastError: string | undefined;
}

/**
 * The rule, with an injected clock: an outage begins when the agent has no
 * session (at start, or when one ends) and lasts until the next session.
 * The first report is due firstAfterMs into it; then one every everyMs at
 * most, counted from the last report even across outages (a server that
 * keeps dropping its agents gives two lines a minute, not two per drop).
 * The agent says it is back only after an outage it has reported.
 */
export class Outage {
  private readonly settings: OutageSettings;
  private readonly now: () => number;
  /** Start of the outage under way; undefined while a session is up. */
  private since: number | undefined;
  private readonly tried = new Set<string>();
  private lastError: string | undefined;
  /** Whether this outage has been reported. */
  private reported = false;
  private lastReportAt = -Infinity;

  constructor(settings: OutageSettings = OUTAGE_DEFAULTS, now: () => number = Date.now) {
    this.settings = settings;
    this.now = now;
  }

  get active(): boolean {
    return this.since !== undefined;
  }

  /** No session from now on (the agent starts, or its session ended); an outage under way goes on. */
  begin(): void {
    if (this.since !== undefined) return;
    this.since = this.now();
    this.tried.clear();
    this.lastError = undefined;
    this.reported = false;
  }

  /** An attempt to connect to `address` begins. */
  trying(address: string): void {
    this.begin();
    if (this.tried.size < TRIED_MAX) this.tried.add(address);
  }

  /** The attempt under way failed. */
  failed(error: string): void {
    this.begin();
    this.lastError = error;
  }

  /** Time until a report may be due; undefined while a session is up. */
  nextInMs(): number | undefined {
    if (this.since === undefined) return undefined;
    const at = Math.max(this.since + this.settings.firstAfterMs, this.lastReportAt + this.settings.everyMs);
    return Math.max(0, at - this.now());
  }

  /** The report due now, if one is (it counts as made). */
  due(): OutageReport | undefined {
    if (this.nextInMs() !== 0) return undefined;
    const now = this.now();
    this.reported = true;
    this.lastReportAt = now;
    const tried = [...this.tried];
    return { forMs: now - this.since!, tried: tried.slice(0, OUTAGE_NAMED), more: Math.max(0, tried.length - OUTAGE_NAMED), lastError: this.lastError };
  }

  /** A session is up: the outage's length when it was reported (so the agent says it is back), else undefined. */
  end(): number | undefined {
    if (this.since === undefined) return undefined;
    const length = this.now() - this.since;
    const told = this.reported;
    this.since = undefined;
    this.reported = false;
    return told ? length : undefined;
  }
}
