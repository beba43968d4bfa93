import { MessageType, type Release } from '../../protocol/index.js';
import { releaseFrom } from '../store/release.js';
import type { StoredRelease } from '../store/types.js';

/**
 * A release and its wire form, both ways: the Release message agents and
 * peers are sent for a stored release, and the stored release a Release
 * message stands for. Every Release message the server sends is built here.
 */

/**
 * The Release message of a stored release (`pchain`: the chain value it follows, when known here;
 * `grp`: one of several releases of its revision, applied together). Its changes are the merged
 * view's (`merged`) when the release has them.
 */
export function releaseMessage(stored: StoredRelease, prev: number, pchain?: string, grp = false): Release {
  const message: Release = {
    t: MessageType.Release,
    env: stored.env,
    rev: stored.rev,
    prev,
    time: stored.time,
    author: stored.author,
    op: stored.op,
    changes: (stored.merged ?? stored.changes).map(([key, , after]) => [key, after]),
  };
  if (stored.drop === true) message.drop = true;
  if (stored.via !== undefined) message.via = stored.via;
  if (grp) message.grp = true;
  if (stored.chain !== undefined && stored.chain !== '') {
    message.chain = stored.chain;
    if (pchain !== undefined) message.pchain = pchain;
  }
  return message;
}

/**
 * A release as the store keeps it, from the Release message sent for it
 * (the values before each change are not sent: they are not needed to apply it).
 */
export function storedOf(release: Release): StoredRelease {
  return releaseFrom(release, release.changes.map(([key, after]) => [key, null, after]));
}
