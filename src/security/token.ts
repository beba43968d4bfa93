import { randomBytes } from 'node:crypto';

/**
 * Agent tokens: `vta_<id>_<secret>`. The id (12 hex digits) is how the
 * server finds the token's verifier, and it travels in the hello; the secret
 * (256 random bits) never leaves the agent's host: the agent proves it holds
 * it with SCRAM (1 iteration), so a token cannot be read off the wire, and a
 * captured login cannot be replayed.
 */
export interface TokenParts {
  id: string;
  secret: string;
}

export const TOKEN_ITERATIONS = 1;
const TOKEN_PATTERN = /^vta_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export function newToken(): TokenParts & { text: string } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, text: `vta_${id}_${secret}` };
}

/** The parts of a token, or undefined when `text` is not one. */
export function parseToken(text: string): TokenParts | undefined {
  const m = TOKEN_PATTERN.exec(text.trim());
  return m === null ? undefined : { id: m[1], secret: m[2] };
}
