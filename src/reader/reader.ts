import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { assertDataFormatV1 } from '../agent/local-store.js';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import {
  DB_REVISIONS, DB_VALUES, DEFAULT_AGENT_STORE, envKey, envRange, keyOf, NOTIFY_FILE, valueKey,
} from './layout.js';

type Bin = Database<Buffer, Buffer>;

export interface WaitOptions {
  /** Give up after this long and resolve with the revision held then. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Revision checks while waiting, as a fallback to the file-change hint. */
  pollMs?: number;
}

/**
 * Reads configuration from the agent's local store: no network, no locks
 * (LMDB snapshot reads on a memory map). Each call sees the latest release
 * committed by the agent, completely or not at all.
 */
export class ConfigReader {
  readonly dir: string;
  private readonly root: RootDatabase;
  private readonly values: Bin;
  private readonly revisions: Bin;

  private constructor(dir: string, root: RootDatabase) {
    this.dir = dir;
    this.root = root;
    const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
    this.values = root.openDB({ name: DB_VALUES, ...binary }) as unknown as Bin;
    this.revisions = root.openDB({ name: DB_REVISIONS, ...binary }) as unknown as Bin;
  }

  /** Opens the store an agent writes (default ./data/agent). */
  static open(dir: string = DEFAULT_AGENT_STORE): ConfigReader {
    const resolved = path.resolve(dir);
    if (!fs.existsSync(path.join(resolved, 'data.mdb'))) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `no agent store at ${resolved} (start an agent with --store ${dir})`);
    }
    assertDataFormatV1();
    try {
      return new ConfigReader(resolved, open({ path: resolved, readOnly: true, maxDbs: 4, keyEncoding: 'binary', encoding: 'binary' }));
    } catch (cause) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `cannot open agent store ${resolved}: ${(cause as Error).message}`, { cause });
    }
  }

  /** The value of `key` in `env`, parsed; undefined when absent. */
  get(env: string, key: string): unknown {
    const text = this.getText(env, key);
    return text === undefined ? undefined : JSON.parse(text);
  }

  /** The JSON text of `key` in `env`, exactly as stored; undefined when absent. */
  getText(env: string, key: string): string | undefined {
    const raw = this.values.getBinaryFast(valueKey(env, key));
    return raw === undefined ? undefined : raw.toString('utf8');
  }

  /** Every key of `env` with its parsed value, read in one snapshot. */
  list(env: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const { start, end } = envRange(env);
    const prefix = start.length;
    for (const { key, value } of this.values.getRange({ start, end })) {
      out[keyOf(key, prefix)] = JSON.parse(Buffer.from(value).toString('utf8'));
    }
    return out;
  }

  /** The revision of `env` held by the agent; 0 when the environment is not held. */
  revision(env: string): number {
    const raw = this.revisions.getBinaryFast(envKey(env));
    return raw === undefined ? 0 : Number(raw.toString('latin1'));
  }

  /** Environments held, sorted. */
  envs(): string[] {
    return [...this.revisions.getKeys()].map((k) => Buffer.from(k).toString('utf8'));
  }

  /**
   * Resolves with the new revision once `env` moves past `since`, or with the
   * current one on timeout. Wakes on the agent's commit hint and confirms
   * with the revision (a cheap read), polling as a fallback.
   */
  waitForChange(env: string, since: number, options: WaitOptions = {}): Promise<number> {
    const current = this.revision(env);
    if (current !== since) return Promise.resolve(current);
    return new Promise((resolve, reject) => {
      let watcher: fs.FSWatcher | undefined;
      const finish = (err?: unknown): void => {
        clearInterval(poll);
        clearTimeout(timer);
        watcher?.close();
        options.signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(err);
        else resolve(this.revision(env));
      };
      const check = (): void => {
        if (this.revision(env) !== since) finish();
      };
      const onAbort = (): void => finish(options.signal?.reason ?? new Error('aborted'));
      const poll = setInterval(check, options.pollMs ?? 50);
      const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => finish(), options.timeoutMs);
      try {
        watcher = fs.watch(path.join(this.dir, NOTIFY_FILE), check);
        watcher.on('error', () => undefined);
      } catch {
        // No hint file yet (nothing committed): polling covers it.
      }
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}
