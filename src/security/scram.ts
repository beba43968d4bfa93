import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677), the challenge-response login of
 * people and agents alike. The server keeps a Verifier only: a salt, an
 * iteration count and two derived keys, from which nobody can log in. The
 * costly derivation (PBKDF2) runs on the client; checking a proof is two
 * HMACs and a hash. Both sides sign an AuthMessage that holds both nonces (and,
 * over TLS, the channel's keying material), so a captured exchange cannot be
 * replayed and a relayed one does not verify.
 *
 * Agent tokens use the same exchange with 1 iteration: a token is 256 random
 * bits, so a slow derivation would protect nothing and would cost a
 * reconnect storm of 100,000 agents minutes of CPU.
 */
export interface Verifier {
  /** base64 */
  salt: string;
  iterations: number;
  /** base64 of SHA-256(ClientKey) */
  storedKey: string;
  /** base64 of HMAC(SaltedPassword, "Server Key") */
  serverKey: string;
}

export const SCRAM_MIN_ITERATIONS = 4096;
/** The default for accounts (OWASP's figure for PBKDF2-HMAC-SHA256; about 0.1 s on this machine's cores). */
export const SCRAM_DEFAULT_ITERATIONS = 600_000;
/** Upper bound a client accepts from a server, so a hostile server cannot make it spin. */
export const SCRAM_MAX_ITERATIONS = 10_000_000;
export const NONCE_BYTES = 18;

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64');
}

function saltedPassword(secret: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(secret.normalize('NFKC'), salt, iterations, 32, 'sha256');
}

/** What the server stores for `secret` (a password, or a token's secret). */
export function makeVerifier(secret: string, iterations: number, salt: Buffer = randomBytes(16)): Verifier {
  const salted = saltedPassword(secret, salt, iterations);
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: sha256(hmac(salted, 'Client Key')).toString('base64'),
    serverKey: hmac(salted, 'Server Key').toString('base64'),
  };
}

/** The text both sides sign; every field of the exchange is in it. */
export interface AuthContext {
  role: string;
  user: string;
  clientNonce: string;
  /** clientNonce followed by the server's part. */
  nonce: string;
  salt: string;
  iterations: number;
  /** base64 keying material exported from the TLS session, or '' in plaintext. */
  channelBinding: string;
}

export function authMessage(c: AuthContext): string {
  return ['vitefa-scram-sha-256', c.role, c.user, c.clientNonce, c.nonce, c.salt, String(c.iterations), c.channelBinding]
    .map((part) => `${part.length}:${part}`)
    .join(',');
}

/** The client's side: the proof to send, and the server signature to expect. */
export function clientProof(secret: string, c: AuthContext): { proof: string; expectedSignature: string } {
  const salted = saltedPassword(secret, Buffer.from(c.salt, 'base64'), c.iterations);
  const clientKey = hmac(salted, 'Client Key');
  const message = authMessage(c);
  const signature = hmac(sha256(clientKey), message);
  return {
    proof: xor(clientKey, signature).toString('base64'),
    expectedSignature: hmac(hmac(salted, 'Server Key'), message).toString('base64'),
  };
}

/** The server's side: whether `proof` shows knowledge of the secret behind `verifier`; and if so, the signature to send back. */
export function checkProof(verifier: Verifier, c: AuthContext, proof: string): string | undefined {
  const stored = Buffer.from(verifier.storedKey, 'base64');
  const given = Buffer.from(proof, 'base64');
  if (given.length !== stored.length || stored.length !== 32) return undefined;
  const message = authMessage(c);
  const clientKey = xor(given, hmac(stored, message));
  if (!timingSafeEqual(sha256(clientKey), stored)) return undefined;
  return hmac(Buffer.from(verifier.serverKey, 'base64'), message).toString('base64');
}

/** Compares two signatures in constant time. */
export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a, 'base64');
  const y = Buffer.from(b, 'base64');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/**
 * A stand-in verifier for a name that does not exist, derived from it and a
 * server secret: the server answers an unknown name exactly as a known one
 * (same salt every time, same iteration count), so a login cannot tell
 * whether an account exists. Its keys match no secret.
 */
export function decoyVerifier(name: string, serverSecret: Buffer, iterations: number): Verifier {
  const seed = hmac(serverSecret, `decoy:${name}`);
  return {
    salt: seed.subarray(0, 16).toString('base64'),
    iterations,
    storedKey: sha256(seed).toString('base64'),
    serverKey: hmac(seed, 'none').toString('base64'),
  };
}
