import { WireError } from '../../protocol/index.js';
import { RequestError } from '../errors.js';

/**
 * Turns for the reads that cost in proportion to the data (list, history,
 * diff): at most `atOnce` worked out together, at most `perAccount` of them
 * for one account, at most `waiting` in line (first come, first served,
 * skipping an account at its share). Writes never wait here: one account
 * reading in a loop slows only reads, and only its own share of them.
 */
export class ReadGate {
  private running = 0;
  private readonly byAccount = new Map<string, number>();
  private readonly line: { account: string; go: () => void }[] = [];

  constructor(private readonly atOnce: number, private readonly perAccount: number, private readonly waiting: number) {}

  /** Runs `read` in its turn. */
  async run<T>(account: string, read: () => Promise<T>): Promise<T> {
    if (this.free(account)) {
      this.take(account);
    } else {
      if (this.line.length >= this.waiting) {
        throw new RequestError(WireError.LIMIT_EXCEEDED, `${this.line.length} large reads are waiting on this server; try again shortly`);
      }
      // Its turn is taken for it (by next()) before it resumes.
      await new Promise<void>((go) => this.line.push({ account, go }));
    }
    try {
      return await read();
    } finally {
      this.running--;
      const left = this.byAccount.get(account)! - 1;
      if (left === 0) this.byAccount.delete(account);
      else this.byAccount.set(account, left);
      this.next();
    }
  }

  /** Reads being worked out, and waiting. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.line.length };
  }

  private free(account: string): boolean {
    return this.running < this.atOnce && (this.byAccount.get(account) ?? 0) < this.perAccount;
  }

  private take(account: string): void {
    this.running++;
    this.byAccount.set(account, (this.byAccount.get(account) ?? 0) + 1);
  }

  private next(): void {
    const i = this.line.findIndex((w) => this.free(w.account));
    if (i < 0) return;
    const [turn] = this.line.splice(i, 1);
    // Counted as running before it resumes, so two reads finishing at once cannot let more through than there is room.
    this.take(turn.account);
    turn.go();
  }
}
