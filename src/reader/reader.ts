import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import {
  assertDataFormatV1, DB_CHAINS, DB_META, DB_OPTIONS, DB_REVISIONS, DB_VALUES, DEFAULT_AGENT_STORE, envRange, layersKey, NOTIFY_FILE, valueKey,
} from './layout.js';

type Bin = Database<Buffer, string>;

export interface WaitOptions {
  /** Give up after this long and resolve with the revision held then. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Revision checks while waiting, as a fallback to the file-change hint. */
  pollMs?: number;
}

/** One layer behind an environment's view, and the revision of it the view was made from. */
export interface LayerRevision {
  env: string;
  rev: number;
}

/** Parsed values of one environment, valid for the revision they were read at. */
interface EnvCache {
  rev: number;
  values: Map<string, unknown>;
}

/**
 * Reads configuration from the agent's local store: no network, no locks
 * (LMDB snapshot reads on a memory map). Reads made in one synchronous run of
 * JavaScript see one snapshot; the next turn of the event loop sees the
 * latest release the agent committed, completely or not at all.
 *
 * `get` keeps the values it parsed, per environment, for as long as the
 * environment's revision stays the same (checked once per turn of the event
 * loop): a repeated read is a map lookup. The values it returns are frozen,
 * because they are shared.
 */
export class ConfigReader {
  readonly dir: string;
  private readonly root: RootDatabase;
  private readonly values: Bin;
  private readonly revisions: Bin;
  private chains: Bin | undefined;
  private meta: Bin | undefined;
  private readonly cache = new Map<string, EnvCache>();
  /** Environments whose cache was checked against the revision in this turn of the event loop. */
  private readonly checked = new Set<string>();
  private checkReset?: NodeJS.Timeout;

  private constructor(dir: string, root: RootDatabase) {
    this.dir = dir;
    this.root = root;
    this.values = root.openDB({ name: DB_VALUES, ...DB_OPTIONS }) as unknown as Bin;
    this.revisions = root.openDB({ name: DB_REVISIONS, ...DB_OPTIONS }) as unknown as Bin;
  }

  /** Opens the store an agent writes (default ./data/agent). */
  static open(dir: string = DEFAULT_AGENT_STORE): ConfigReader {
    const resolved = path.resolve(dir);
    if (!fs.existsSync(path.join(resolved, 'data.mdb'))) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `no agent store at ${resolved} (start an agent with --store ${dir})`);
    }
    assertDataFormatV1();
    try {
      return new ConfigReader(resolved, open({ path: resolved, readOnly: true, maxDbs: 4, ...DB_OPTIONS }));
    } catch (cause) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `cannot open agent store ${resolved}: ${(cause as Error).message}`, { cause });
    }
  }

  /** The value of `key` in `env`, parsed (and frozen); undefined when absent. */
  get(env: string, key: string): unknown {
    const cached = this.envCache(env);
    let value = cached.values.get(key);
    if (value === undefined && !cached.values.has(key)) {
      const text = this.getText(env, key);
      value = text === undefined ? undefined : deepFreeze(JSON.parse(text));
      cached.values.set(key, value);
    }
    return value;
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
    for (const { key, value } of this.values.getRange({ start, end })) {
      // defineProperty: a key named "__proto__" is a key like any other, never the prototype.
      Object.defineProperty(out, key.slice(start.length), {
        value: JSON.parse(Buffer.from(value).toString('utf8')), enumerable: true, writable: true, configurable: true,
      });
    }
    return out;
  }

  /** The revision of `env` held by the agent; 0 when the environment is not held. */
  revision(env: string): number {
    const raw = this.revisions.getBinaryFast(env);
    return raw === undefined ? 0 : Number(raw.toString('latin1'));
  }

  /**
   * The chain value of the release of `env` held (docs/protocol.md#chain):
   * '' when not known (an agent older than chains wrote the store).
   */
  chain(env: string): string {
    if (this.chains === undefined) {
      try {
        this.chains = this.root.openDB({ name: DB_CHAINS, ...DB_OPTIONS }) as unknown as Bin;
      } catch {
        return '';
      }
    }
    const raw = this.chains.getBinaryFast(env);
    return raw === undefined ? '' : raw.toString('latin1');
  }

  /**
   * The layers behind `env`'s view as the agent holds it (docs/layers.md): each with its revision,
   * lowest first, `env` itself last at the revision it is held at. [] for an environment built on
   * nothing, one not held, or a store an agent older than layers wrote. Read in the same snapshot
   * as the revision and values read in the same synchronous run.
   */
  layers(env: string): LayerRevision[] {
    if (this.meta === undefined) {
      try {
        this.meta = this.root.openDB({ name: DB_META, ...DB_OPTIONS }) as unknown as Bin;
      } catch {
        return [];
      }
    }
    const raw = this.meta.getBinaryFast(layersKey(env));
    return raw === undefined ? [] : layerList(raw.toString('utf8'));
  }

  /** Environments held, sorted. */
  envs(): string[] {
    return [...this.revisions.getKeys()];
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
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the signal's abort reason is passed on as it is, whatever it is (as Node's own APIs do)
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
    clearTimeout(this.checkReset);
    await this.root.close();
  }

  /**
   * The parsed-value cache of `env`, emptied when the revision moved. The
   * check runs once per turn of the event loop: lmdb-js renews its read
   * snapshot from a timer, and the check is forgotten from a timer set after
   * it, so the cache never serves what the snapshot would not.
   */
  private envCache(env: string): EnvCache {
    let cached = this.cache.get(env);
    if (cached !== undefined && this.checked.has(env)) return cached;
    const rev = this.revision(env);
    if (cached === undefined || cached.rev !== rev) {
      cached = { rev, values: new Map() };
      this.cache.set(env, cached);
    }
    this.checked.add(env);
    if (this.checkReset === undefined) {
      this.checkReset = setTimeout(() => {
        this.checkReset = undefined;
        this.checked.clear();
      }, 0);
      this.checkReset.unref();
    }
    return cached;
  }
}

/** A kept list of layers, read as untrusted input: anything but an array of [name, revision] pairs reads as none. */
function layerList(text: string): LayerRevision[] {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const out: LayerRevision[] = [];
  for (const pair of list as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2) return [];
    const [env, rev] = pair as unknown[];
    if (typeof env !== 'string' || typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 0) return [];
    out.push({ env, rev });
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
