import { ProtocolError, WireError, type StoreCheck } from '../../protocol/index.js';
import { proofMac } from '../store/identity.js';
import type { Store } from '../store/types.js';

/** Foreign servers said at most (per server and reason) while this process runs. */
const FOREIGN_SAID_AT_MOST = 1024;

/**
 * Whether another server reads this server's store: the proof this server
 * gives when it dials a peer port, and the one-time log line of each server
 * found to read another store (on either side).
 */
export class StoreGuard {
  private readonly store: Store;
  private readonly log: (line: string) => void;
  /** Servers of another store, said once each (per address and reason). */
  private readonly said = new Set<string>();

  constructor(store: Store, log: (line: string) => void) {
    this.store = store;
    this.log = log;
  }

  /**
   * The peer port at `addr` asks this server to prove that it reads the
   * same store: the same store id, and the row just written there found in
   * this server's store. Otherwise the other server is not a peer (said
   * once), and the link is refused with STORE_MISMATCH.
   */
  async answer(check: StoreCheck, addr: string): Promise<string> {
    const identity = this.store.identity;
    const ours = await identity.id();
    let why: string | undefined;
    if (check.store !== ours) {
      why = `it reads store ${check.store}; this server reads store ${ours} (${this.store.description})`;
    } else {
      const secret = check.key.length > 64 ? undefined : await identity.answer(check.key);
      if (secret !== undefined) return proofMac(secret, check.key);
      why = `the row it has just written to its store is not in this server's (store ${ours}, ${this.store.description}): both carry store id ${ours}, so one is a copy of the other, not the same database`;
    }
    this.foreign(addr, '', why);
    throw new ProtocolError(WireError.STORE_MISMATCH, why);
  }

  /** A server of another store: said once per server id when known (its source port changes at every attempt), else per address. */
  foreign(addr: string, id: string, why: string): void {
    const key = `${id === '' ? addr : id}\u0000${why}`;
    if (this.said.has(key) || this.said.size >= FOREIGN_SAID_AT_MOST) return;
    this.said.add(key);
    this.log(`peers: refused ${id === '' ? '' : `server ${id} at `}${addr} as a peer: ${why}; it is never gossiped nor listed to agents`);
  }
}
