import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type { StoreChallenge, StoreIdentity } from './types.js';

/** Rows written for a peer's proof are kept this long, then pruned (a login answers within seconds). */
export const PROOF_KEPT_MS = 5 * 60_000;

/** A new random store id: 16 hex digits. */
export function newStoreId(): string {
  return randomBytes(8).toString('hex');
}

/** The proof that a server found the row `key`: an HMAC of its secret (base64); the secret itself never travels. */
export function proofMac(secret: Buffer, key: string): string {
  return createHmac('sha256', secret).update(`vitefa store proof ${key}`).digest('base64');
}

/** Compares two MACs in constant time. */
export function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
