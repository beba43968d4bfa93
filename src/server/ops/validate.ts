import { CONTROL_CHARACTERS, WireError } from '../../protocol/index.js';
import { jsonFaultText } from '../../json-syntax.js';
import { RequestError, wireAnswer } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import type { Json } from '../model/merge.js';
import { jsonDepth } from '../model/json-depth.js';

type DataLimits = Pick<ServerLimits, 'envNameBytes' | 'keyBytes' | 'valueBytes' | 'valueDepth'>;

const ENV_NAME = /^[A-Za-z0-9][A-Za-z0-9._\-/]*$/;
// Keys are shown to people: none of the characters a terminal acts on (protocol/text.ts); nor U+FFFD,
// what invalid UTF-8 on the wire decodes to, nor U+FFFF.
const CONTROL = new RegExp(`${CONTROL_CHARACTERS.source}|[\\ufffd\\uffff]`);

/** A name as it may appear in an error: quoted, and cut short (errors and log lines must not carry a megabyte). */
export function quoted(text: string, max = 80): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

export function checkEnvName(env: string, limits: DataLimits): string {
  if (Buffer.byteLength(env) > limits.envNameBytes || !ENV_NAME.test(env) || env.includes('//') || env.endsWith('/')) {
    throw new RequestError(
      WireError.INVALID_VALUE,
      `invalid environment name ${quoted(env)}: use letters, digits, '.', '_', '-', '/' (at most ${limits.envNameBytes} bytes)`,
    );
  }
  return env;
}

export function checkKey(key: string, limits: DataLimits): string {
  if (key.length === 0 || Buffer.byteLength(key) > limits.keyBytes || CONTROL.test(key)) {
    throw new RequestError(
      WireError.INVALID_VALUE,
      `invalid key ${quoted(key)}: 1 to ${limits.keyBytes} bytes, no control characters`,
    );
  }
  return key;
}

/** Parses JSON text sent by a client; returns the value and its compact canonical text. */
export function parseValue(text: string, what: string, limits: DataLimits): { value: Json; text: string } {
  if (Buffer.byteLength(text) > limits.valueBytes) {
    throw new RequestError(WireError.INVALID_VALUE, `${what}: value larger than ${limits.valueBytes} bytes`);
  }
  if (jsonDepth(text) > limits.valueDepth) {
    throw new RequestError(WireError.INVALID_VALUE, `${what}: value nested deeper than ${limits.valueDepth} levels`);
  }
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch {
    // By position only, and without the parser's error as a cause: its message quotes the value.
    throw new RequestError(WireError.INVALID_VALUE, `${what}: not valid JSON ${jsonFaultText(text)}`);
  }
  return { value, text: JSON.stringify(value) };
}

/** Checked entries of an apply, or the one error the first bad one gives (as data: it may cross a thread). */
export type PlanResult = { planned: [string, string][] } | { status: WireError; message: string };

/** Checks every key and value of an apply; values come back as the canonical JSON text stored. */
export function planEntries(entries: [string, string][], limits: DataLimits): PlanResult {
  try {
    return { planned: entries.map(([key, value]) => [checkKey(key, limits), parseValue(value, key, limits).text]) };
  } catch (err) {
    const { status, message, fault } = wireAnswer(err, 'internal error while checking the entries');
    if (fault) throw err;
    return { status, message };
  }
}
