import { WireError } from '../../protocol/index.js';
import type { AgentLink } from './subscriptions.js';

/**
 * Admin sessions watching environments (`watch`): each gets every release
 * of the environment as it was committed. A watcher that does not read is
 * cut off with SLOW_CONSUMER, as an agent is.
 */
export class Watchers {
  private readonly byEnv = new Map<string, Set<AgentLink>>();

  constructor(private readonly bufferBytes: number) {}

  watch(link: AgentLink, env: string): void {
    let set = this.byEnv.get(env);
    if (set === undefined) this.byEnv.set(env, (set = new Set()));
    set.add(link);
  }

  /** Stops watching `env`, or everything. */
  unwatch(link: AgentLink, env?: string): void {
    for (const [name, set] of env === undefined ? this.byEnv : [[env, this.byEnv.get(env)] as const]) {
      if (set === undefined) continue;
      set.delete(link);
      if (set.size === 0) this.byEnv.delete(name);
    }
  }

  /** Whether any session watches `env`. */
  watching(env: string): boolean {
    return (this.byEnv.get(env)?.size ?? 0) > 0;
  }

  /** Sends `frame` (releases of `env`) to every session watching it. */
  send(env: string, frame: Buffer): void {
    const watching = this.byEnv.get(env);
    if (watching === undefined) return;
    for (const link of watching) {
      if (link.writableLength > this.bufferBytes) {
        link.fail(WireError.SLOW_CONSUMER, `more than ${this.bufferBytes} bytes waiting to be read`);
        continue;
      }
      link.write(frame);
    }
  }
}
