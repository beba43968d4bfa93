import { createHash } from 'node:crypto';
import type { Release } from './messages.js';

/**
 * The chain of an environment's releases, git's idea applied to the release
 * stream: every release's chain value is a hash over the chain value of the
 * release before it and this release's own content. Two stores that ever
 * committed different releases (a restored copy that went on writing) give
 * different chain values from there on, and every receiver holding one can
 * tell that a release of the other does not follow it.
 *
 * The content hashed is what every receiver of a Release sees, in a fixed
 * order, each field length-prefixed: environment, revision, previous
 * revision, time, author, operation, whether it drops the environment, the
 * environment it came through (`via`, only when set), and each change's key
 * and new value (or its absence). The values before each
 * change are not part of it: they are not sent to agents.
 */

/** The chain value before an environment's first release (its creation). */
export const CHAIN_GENESIS = '';

/** Hex digits of a chain value: 64 bits, enough to tell streams apart (it is not a signature). */
export const CHAIN_HEX = 16;
/** What a chain value on the wire must look like. */
export const CHAIN_PATTERN = /^[0-9a-f]{16}$/;

/** What of a release its chain value covers besides its changes. */
export type ChainedContent = Pick<Release, 'env' | 'rev' | 'prev' | 'time' | 'author' | 'op' | 'drop' | 'via'>;

/** The chain value of a release following `previous`, with changes given as [key, new JSON text or null]. */
export function chainOf(previous: string, release: ChainedContent, changes: Iterable<readonly [string, string | null]>): string {
  const hash = createHash('sha256');
  // The bytes are gathered in a buffer and hashed a chunk at a time: a release of 10,000 changes would
  // otherwise be 50,000 calls into the hash.
  // One scratch buffer for every call (the hash is worked out in one go, nothing else runs meanwhile).
  let buf = scratch;
  let used = 0;
  const flush = (): void => {
    if (used > 0) hash.update(buf.subarray(0, used));
    used = 0;
  };
  const room = (bytes: number): void => {
    if (used + bytes <= buf.length) return;
    flush();
    if (bytes > buf.length) buf = Buffer.allocUnsafe(bytes);
  };
  const field = (text: string): void => {
    const bytes = Buffer.byteLength(text);
    room(4 + bytes);
    buf.writeUInt32BE(bytes, used);
    used += 4;
    used += buf.write(text, used, 'utf8');
  };
  const flag = (byte: number): void => {
    room(1);
    buf[used++] = byte;
  };
  field('vitefa-chain-1');
  field(previous);
  field(release.env);
  field(String(release.rev));
  field(String(release.prev));
  field(String(release.time));
  field(release.author);
  field(release.op);
  field(release.drop === true ? 'drop' : '');
  // Only releases made through a layer name one: the chain values of all others are as before.
  if (release.via !== undefined) field(`via:${release.via}`);
  for (const [key, after] of changes) {
    field(key);
    if (after === null) flag(0);
    else {
      flag(1);
      field(after);
    }
  }
  flush();
  return hash.digest('hex').slice(0, CHAIN_HEX);
}

/** Bytes gathered before they are hashed. */
const CHUNK = 64 * 1024;
const scratch = Buffer.allocUnsafe(CHUNK);
