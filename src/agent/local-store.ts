import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { LocalErrorCode, MessageType, VitefaError, type EnvRev, type LayerRev, type Release, type Snapshot } from '../protocol/index.js';
import {
  assertDataFormatV1, DB_CHAINS, DB_META, DB_OPTIONS, DB_REVISIONS, DB_VALUES, envRange, LAYOUT_FORMAT, layersKey, META_LAYERS_PREFIX, NOTIFY_FILE, valueKey,
} from '../reader/layout.js';
import { endpointText, parseEndpoint } from '../transport/client.js';

export interface LocalStoreOptions {
  /** Initial LMDB map size in bytes; the store grows it when full. */
  mapSize: number;
  /** Told how many reader slots of dead processes a write cleared. */
  staleReaders?: (cleared: number) => void;
}

/**
 * How often, at most, a write first clears the reader slots of processes that
 * died while reading (SIGKILL, a crash). Each such slot pins the release its
 * reader was reading: LMDB cannot reuse a page freed after it, so every later
 * write would grow the file. LMDB clears them only when an environment is
 * opened; a long-running agent does it itself.
 */
export const READER_CHECK_MS = 1000;

type Bin = Database<Buffer, string>;

/**
 * The `meta` key of the servers the cluster announced, kept so that a
 * restart whose --servers are all gone still finds the cluster: a JSON
 * array of "HOST:PORT" strings. Only the agent reads it; readers of the
 * layout ignore it (LAYOUT_FORMAT is unchanged).
 */
export const META_SERVERS = 'servers';
/** Servers remembered, and read back, at most. */
export const MAX_REMEMBERED_SERVERS = 256;
/** A remembered list larger than this is not parsed at all. */
const MAX_SERVERS_BYTES = 64 * 1024;

/**
 * The agent's side of the local store: applies each release or snapshot in
 * ONE LMDB write transaction together with the environment's revision, so a
 * reader sees a release completely or not at all (and a group of releases of
 * one revision, all of them or none). Entries are never evicted:
 * when the map is full it is grown, and if that fails the agent stops.
 */
export class LocalStore {
  readonly dir: string;
  private readonly root: RootDatabase;
  private readonly values: Bin;
  private readonly revisions: Bin;
  /** The chain value held per environment (absent: not known, e.g. history older than chains). */
  private readonly chains: Bin;
  private readonly meta: Bin;
  /** The commit hint file, kept open: rewriting it in place is a few µs (reopening it costs a flush). */
  private readonly notifyFd: number;
  private readonly staleReaders: ((cleared: number) => void) | undefined;
  private lastReaderCheck = 0;
  /** Environments with a `layers/<env>` key in `meta`: only their releases without layers have one to remove. */
  private readonly layered = new Set<string>();

  private constructor(dir: string, root: RootDatabase, staleReaders: ((cleared: number) => void) | undefined) {
    this.dir = dir;
    this.root = root;
    this.staleReaders = staleReaders;
    this.values = root.openDB({ name: DB_VALUES, ...DB_OPTIONS }) as unknown as Bin;
    this.revisions = root.openDB({ name: DB_REVISIONS, ...DB_OPTIONS }) as unknown as Bin;
    this.chains = root.openDB({ name: DB_CHAINS, ...DB_OPTIONS }) as unknown as Bin;
    this.meta = root.openDB({ name: DB_META, ...DB_OPTIONS }) as unknown as Bin;
    this.notifyFd = fs.openSync(path.join(dir, NOTIFY_FILE), 'w');
    // '0' follows '/': every key of the prefix, and nothing else.
    for (const key of this.meta.getKeys({ start: META_LAYERS_PREFIX, end: `${META_LAYERS_PREFIX.slice(0, -1)}0` })) {
      this.layered.add(key.slice(META_LAYERS_PREFIX.length));
    }
  }

  static open(dir: string, options: LocalStoreOptions): LocalStore {
    const resolved = path.resolve(dir);
    assertDataFormatV1();
    let root: RootDatabase;
    try {
      fs.mkdirSync(resolved, { recursive: true });
      root = open({ path: resolved, maxDbs: 4, mapSize: options.mapSize, ...DB_OPTIONS });
    } catch (cause) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `cannot open agent store ${resolved}: ${(cause as Error).message}`, { cause });
    }
    const store = new LocalStore(resolved, root, options.staleReaders);
    const meta = root.openDB({ name: DB_META, ...DB_OPTIONS }) as unknown as Bin;
    const format = meta.get('format');
    if (format === undefined) {
      meta.putSync('format', Buffer.from(String(LAYOUT_FORMAT)));
    } else if (Number(format.toString()) !== LAYOUT_FORMAT) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `agent store ${resolved} has layout format ${format.toString()}, this build writes ${LAYOUT_FORMAT}`);
    }
    return store;
  }

  /** Every environment held, with its revision and chain value (when known). */
  held(): EnvRev[] {
    const out: EnvRev[] = [];
    for (const { key, value } of this.revisions.getRange()) {
      const held: EnvRev = { env: key, rev: Number(Buffer.from(value).toString()) };
      const chain = this.chain(key);
      if (chain !== '') held.chain = chain;
      out.push(held);
    }
    return out;
  }

  /** The chain value of what is held of `env`; '' when not known. */
  chain(env: string): string {
    const raw = this.chains.get(env);
    return raw === undefined ? '' : Buffer.from(raw).toString();
  }

  revision(env: string): number {
    const raw = this.revisions.get(env);
    return raw === undefined ? 0 : Number(raw.toString());
  }

  applyRelease(release: Release): void {
    this.write(() => this.putRelease(release));
  }

  applySnapshot(snapshot: Snapshot): void {
    this.write(() => this.putSnapshot(snapshot));
  }

  /**
   * Applies releases and snapshots, in order, in ONE write transaction (the
   * releases of one revision in several environments): a reader sees all of
   * them, or none. Each is written as applyRelease or applySnapshot would.
   */
  applyGroup(messages: readonly (Release | Snapshot)[]): void {
    this.write(() => {
      for (const message of messages) {
        if (message.t === MessageType.Snapshot) this.putSnapshot(message);
        else this.putRelease(message);
      }
    });
  }

  private putRelease(release: Release): void {
    if (release.drop === true) {
      this.clearEnv(release.env);
      void this.revisions.remove(release.env);
      void this.chains.remove(release.env);
      this.putLayers(release.env, undefined);
      return;
    }
    for (const [key, json] of release.changes) {
      if (json === null) void this.values.remove(valueKey(release.env, key));
      else void this.values.put(valueKey(release.env, key), Buffer.from(json));
    }
    void this.revisions.put(release.env, Buffer.from(String(release.rev)));
    this.putChain(release.env, release.chain);
    this.putLayers(release.env, release.layers);
  }

  private putSnapshot(snapshot: Snapshot): void {
    this.clearEnv(snapshot.env);
    for (const [key, json] of snapshot.entries) void this.values.put(valueKey(snapshot.env, key), Buffer.from(json));
    void this.revisions.put(snapshot.env, Buffer.from(String(snapshot.rev)));
    this.putChain(snapshot.env, snapshot.chain);
    this.putLayers(snapshot.env, snapshot.layers);
  }

  private putChain(env: string, chain: string | undefined): void {
    if (chain === undefined || chain === '') void this.chains.remove(env);
    else void this.chains.put(env, Buffer.from(chain));
  }

  /**
   * Keeps the layers behind `env`'s view (`meta` key `layers/<env>`, a JSON array of [env, rev]) in the
   * transaction of its release or snapshot; none (a plain environment, a drop) removes what was kept.
   */
  private putLayers(env: string, layers: LayerRev[] | undefined): void {
    if (layers === undefined) {
      if (!this.layered.delete(env)) return;
      void this.meta.remove(layersKey(env));
      return;
    }
    void this.meta.put(layersKey(env), Buffer.from(JSON.stringify(layers)));
    this.layered.add(env);
  }

  /** The layers behind `env`'s view as kept ([] when none), each with its revision, lowest first. */
  layers(env: string): LayerRev[] {
    const raw = this.meta.get(layersKey(env));
    return raw === undefined ? [] : (JSON.parse(Buffer.from(raw).toString('utf8')) as LayerRev[]);
  }

  /** The servers remembered from an earlier run: read as untrusted input, bounded, bad entries left out. */
  rememberedServers(): string[] {
    const raw = this.meta.get(META_SERVERS);
    return raw === undefined ? [] : parseServerList(raw);
  }

  /**
   * Keeps `addrs` (the servers the cluster announced) as the remembered
   * set, in a write transaction of its own; writes only when the set
   * changed. True when it wrote.
   */
  rememberServers(addrs: string[]): boolean {
    const next = serverSet(addrs);
    const text = JSON.stringify(next);
    // The same set in another order is not worth a write.
    if (JSON.stringify([...next].sort()) === JSON.stringify([...this.rememberedServers()].sort())) return false;
    try {
      // A block, not an arrow returning put's promise: a callback returning a promise keeps lmdb-js's transaction open.
      this.root.transactionSync(() => {
        void this.meta.put(META_SERVERS, Buffer.from(text));
      });
    } catch (cause) {
      throw new VitefaError(LocalErrorCode.STORE_OPEN, `cannot write agent store ${this.dir}: ${(cause as Error).message}`, { cause });
    }
    return true;
  }

  async close(): Promise<void> {
    fs.closeSync(this.notifyFd);
    await this.root.close();
  }

  private clearEnv(env: string): void {
    const { start, end } = envRange(env);
    for (const key of this.values.getKeys({ start, end })) void this.values.remove(key);
  }

  private write(body: () => void): void {
    const now = Date.now();
    if (now - this.lastReaderCheck >= READER_CHECK_MS) {
      this.lastReaderCheck = now;
      let cleared = 0;
      try {
        cleared = this.root.readerCheck();
      } catch {
        // Only housekeeping: the write goes on, the next one looks again.
      }
      if (cleared > 0) this.staleReaders?.(cleared);
    }
    try {
      this.root.transactionSync(body);
    } catch (cause) {
      const full = /MDB_MAP_FULL|map full/i.test((cause as Error).message);
      throw new VitefaError(
        full ? LocalErrorCode.STORE_FULL : LocalErrorCode.STORE_OPEN,
        full
          ? `agent store ${this.dir} is full and could not grow; nothing was dropped, the agent stops (raise --map-size)`
          : `cannot write agent store ${this.dir}: ${(cause as Error).message}`,
        { cause },
      );
    }
    // A hint for readers waiting on a change (inotify sees the write); they still confirm with the revision.
    const stamp = Buffer.from(String(Date.now()).padStart(16, '0'));
    fs.writeSync(this.notifyFd, stamp, 0, stamp.length, 0);
  }
}

/**
 * A remembered server list as stored: at most MAX_SERVERS_BYTES of JSON, an
 * array whose first MAX_REMEMBERED_SERVERS entries are kept when they are
 * HOST:PORT strings; anything else reads as nothing remembered.
 */
export function parseServerList(raw: Uint8Array): string[] {
  if (raw.length > MAX_SERVERS_BYTES) return [];
  let list: unknown;
  try {
    list = JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  return serverSet(list.slice(0, MAX_REMEMBERED_SERVERS).filter((a): a is string => typeof a === 'string'));
}

/** HOST:PORT strings, each checked and written the one way, sorted, without repeats, at most MAX_REMEMBERED_SERVERS. */
function serverSet(addrs: string[]): string[] {
  const out = new Set<string>();
  let bytes = 2;
  for (const addr of addrs) {
    // What is written must read back (parseServerList reads at most 64 KiB), and hold no control character.
    if (addr.length > 300 || hasControl(addr)) continue;
    if (bytes + addr.length * 3 + 3 > 60_000) break;
    bytes += Buffer.byteLength(addr) + 3;
    try {
      out.add(endpointText(parseEndpoint(addr)));
    } catch {
      // Not HOST:PORT: left out.
    }
  }
  // In the order given (the newest first): past the bound, the oldest are forgotten.
  return [...out].slice(0, MAX_REMEMBERED_SERVERS);
}

/** Whether `text` holds a C0 or C1 control character, or DEL. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}
