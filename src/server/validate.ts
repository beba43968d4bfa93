import { WireError } from '../protocol/index.js';
import { RequestError } from './errors.js';
import type { Json } from './merge.js';

/** Limits on what the server accepts; documented in docs/limits.md. */
export const Limits = {
  envNameBytes: 128,
  keyBytes: 256,
  valueBytes: 1024 * 1024,
  keysPerRelease: 1_000_000,
} as const;

const ENV_NAME = /^[A-Za-z0-9][A-Za-z0-9._\-/]*$/;
// eslint-disable-next-line no-control-regex
// U+FFFD too: it is what invalid UTF-8 on the wire decodes to.
const CONTROL = /[\u0000-\u001f\u007f\ufffd\uffff]/;

export function checkEnvName(env: string): string {
  if (Buffer.byteLength(env) > Limits.envNameBytes || !ENV_NAME.test(env) || env.includes('//') || env.endsWith('/')) {
    throw new RequestError(
      WireError.INVALID_VALUE,
      `invalid environment name ${JSON.stringify(env)}: use letters, digits, '.', '_', '-', '/' (at most ${Limits.envNameBytes} bytes)`,
    );
  }
  return env;
}

export function checkKey(key: string): string {
  if (key.length === 0 || Buffer.byteLength(key) > Limits.keyBytes || CONTROL.test(key)) {
    throw new RequestError(
      WireError.INVALID_VALUE,
      `invalid key ${JSON.stringify(key)}: 1 to ${Limits.keyBytes} bytes, no control characters`,
    );
  }
  return key;
}

/** Parses JSON text sent by a client; returns the value and its compact canonical text. */
export function parseValue(text: string, what: string): { value: Json; text: string } {
  if (Buffer.byteLength(text) > Limits.valueBytes) {
    throw new RequestError(WireError.INVALID_VALUE, `${what}: value larger than ${Limits.valueBytes} bytes`);
  }
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch (cause) {
    throw new RequestError(WireError.INVALID_VALUE, `${what}: not valid JSON (${(cause as Error).message})`, { cause });
  }
  return { value, text: JSON.stringify(value) };
}
