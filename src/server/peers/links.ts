import type { StoreCheck } from '../../protocol/index.js';
import type { ReceiveLimits } from '../../transport/connection.js';
import { trace } from '../../trace.js';
import { PeerLink } from './link.js';

export interface PeerLinksOptions {
  serverId: string;
  limits: ReceiveLimits;
  /** Dial with TLS (the servers serve TLS); asked at each new link. */
  tls: () => boolean;
  /** Answers a peer port's proof that this server reads the same store. */
  storeCheck: (check: StoreCheck, addr: string) => Promise<string>;
  /** A link logged in to another server (not this one, not one already linked). */
  up: (link: PeerLink) => void;
}

/**
 * This server's links to the others, one per server: dialled from
 * addresses (seeds, the registry, gossip), dropped when an address turns out
 * to be this server itself or a server already linked under another address,
 * and closed when no one speaks of an address any more.
 */
export class PeerLinks {
  private readonly options: PeerLinksOptions;
  private readonly links = new Map<string, PeerLink>();
  /** Addresses that turned out to be this server itself. */
  private readonly selfAddrs = new Set<string>();
  /** Addresses that turned out to be a server already linked under another address. */
  private readonly aliases = new Map<string, string>();
  /** The cluster's secret (base64), the credential of the peer login: set before the first link. */
  secret = '';
  private frozen = false;

  constructor(options: PeerLinksOptions) {
    this.options = options;
  }

  /** `addr` is this server's own peer port. */
  addSelf(addr: string): void {
    this.selfAddrs.add(addr);
  }

  /** Links to `addr` unless it is this server, already linked, or known as another address of a linked server. */
  link(addr: string): void {
    if (addr === '' || this.selfAddrs.has(addr) || this.links.has(addr) || this.frozen) return;
    const alias = this.aliases.get(addr);
    if (alias !== undefined && [...this.links.values()].some((l) => l.id === alias)) return;
    const link = new PeerLink(addr, {
      serverId: this.options.serverId,
      secret: this.secret,
      ...(this.options.tls() ? { tls: { rejectUnauthorized: false } } : {}),
      limits: this.options.limits,
      connectTimeoutMs: 5_000,
      storeCheck: this.options.storeCheck,
    }, {
      up: (l, id) => this.linkUp(l, id),
      down: () => undefined,
    });
    this.links.set(addr, link);
    link.start();
  }

  private linkUp(link: PeerLink, id: string): void {
    if (id === this.options.serverId) {
      // This server's own port, under another name.
      this.drop(link);
      this.selfAddrs.add(link.addr);
      return;
    }
    for (const other of this.links.values()) {
      if (other !== link && other.id === id && other.up) {
        // One link per server: the one already up stays.
        this.drop(link);
        this.aliases.set(link.addr, id);
        return;
      }
    }
    this.options.up(link);
  }

  private drop(link: PeerLink): void {
    link.stop();
    this.links.delete(link.addr);
  }

  /** Links logged in now. */
  up(): PeerLink[] {
    return [...this.links.values()].filter((l) => l.up);
  }

  /** Links logged in now, by the id of the server behind each. */
  byId(): Map<string, PeerLink> {
    const out = new Map<string, PeerLink>();
    for (const link of this.links.values()) if (link.up && link.id !== undefined) out.set(link.id, link);
    return out;
  }

  /** Closes the links to addresses not in `wanted` (a server moved to another port, or gone for good). */
  prune(wanted: ReadonlySet<string>): void {
    for (const [addr, link] of this.links) {
      if (wanted.has(addr)) continue;
      trace('peers', `link to ${addr} closed: no server is known there any more`);
      this.drop(link);
    }
  }

  /** No new link from now on (the server is stopping). */
  freeze(): void {
    this.frozen = true;
  }

  /** Stops every link. */
  stop(): void {
    this.frozen = true;
    for (const link of this.links.values()) link.stop();
  }
}
