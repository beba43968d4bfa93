import { WireError } from '../../protocol/index.js';

/** Connections of one port that have not logged in (or said hello) yet: in all, and from one source address. */
export interface PendingLimits {
  total: number;
  perAddress: number;
}

/** How a port names its connections in a refusal: "connections … have not said hello yet", "peer connections … have not logged in yet". */
export interface PendingWords {
  /** The connections counted, in all (e.g. "connections to this server process"). */
  all: string;
  /** The same from one address (e.g. "connections"). */
  one: string;
  /** What they have not done yet (e.g. "said hello"). */
  awaited: string;
}

export interface PendingCounts {
  /** Accepted connections that have not logged in yet. */
  pending: number;
  /** TLS handshakes under way (not accepted yet: they have not logged in either). */
  handshaking: number;
  /** Of the pending connections, those from the source address asked about. */
  fromSource: number;
}

/** Why a new connection from `source` cannot be taken now, if it cannot: a pure decision. */
export function pendingRefusal(counts: PendingCounts, source: string, limits: PendingLimits, words: PendingWords): [WireError, string] | undefined {
  if (counts.pending + counts.handshaking >= limits.total) {
    return [WireError.LIMIT_EXCEEDED, `${counts.pending + counts.handshaking} ${words.all} have not ${words.awaited} yet`];
  }
  if (counts.fromSource >= limits.perAddress) {
    return [WireError.LIMIT_EXCEEDED, `${limits.perAddress} ${words.one} from ${source} have not ${words.awaited} yet`];
  }
  return undefined;
}

/**
 * Admission of one port: the connections not logged in yet are counted from
 * their TCP accept (a TLS handshake under way counts too) until they log in
 * or close, in all and per source address (an IPv6 /64 counts as one), so
 * that one address cannot fill the port and no flood runs the process out
 * of file descriptors.
 */
export class Admission {
  private readonly limits: PendingLimits;
  private readonly words: PendingWords;
  private readonly bySource = new Map<string, number>();
  private pending = 0;
  private handshaking = 0;

  constructor(limits: PendingLimits, words: PendingWords) {
    this.limits = limits;
    this.words = words;
  }

  /** Connections not logged in yet, accepted and in their TLS handshake. */
  get waiting(): { pending: number; handshaking: number } {
    return { pending: this.pending, handshaking: this.handshaking };
  }

  /** Why a connection from `source` is refused now, if it is. */
  refusal(source: string): [WireError, string] | undefined {
    return pendingRefusal({ pending: this.pending, handshaking: this.handshaking, fromSource: this.bySource.get(source) ?? 0 }, source, this.limits, this.words);
  }

  /** Why a TLS handshake cannot start now, if it cannot (its source is counted once it is accepted). */
  handshakeRefusal(): [WireError, string] | undefined {
    return pendingRefusal({ pending: this.pending, handshaking: this.handshaking, fromSource: 0 }, '', this.limits, this.words);
  }

  handshakeStarted(): void {
    this.handshaking++;
  }

  handshakeEnded(): void {
    this.handshaking--;
  }

  /** A connection from `source` is taken: it counts until `leave`. */
  enter(source: string): void {
    this.pending++;
    this.bySource.set(source, (this.bySource.get(source) ?? 0) + 1);
  }

  /** A connection from `source` has logged in, or closed before it did. */
  leave(source: string): void {
    this.pending--;
    const n = (this.bySource.get(source) ?? 1) - 1;
    if (n <= 0) this.bySource.delete(source);
    else this.bySource.set(source, n);
  }
}
