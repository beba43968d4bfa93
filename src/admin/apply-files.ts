import fs from 'node:fs';
import path from 'node:path';
import { jsonFaultText } from '../json-syntax.js';
import { LocalErrorCode, VitefaError, type Entry } from '../protocol/index.js';

/**
 * What `apply` reads at most, before reading it: bytes of one FILE, or of
 * every file of a DIR together (the largest frame a client takes; a server
 * takes 64 MiB from an admin unless configured otherwise, so more could
 * never be sent), and files in a DIR (a server's keysPerRelease).
 */
export const APPLY_MAX_BYTES = 256 * 1024 * 1024;
export const APPLY_MAX_FILES = 1_000_000;
/** Names shown in one error, at most (the count says how many more). */
const NAMES_SHOWN = 10;

const badFile = (message: string): VitefaError => new VitefaError(LocalErrorCode.BAD_FILE, message);
const cannot = (what: string, err: unknown): VitefaError => badFile(`cannot read ${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)} MiB`;
}

/** Some names, then how many more. */
function names(list: string[]): string {
  const shown = list.slice(0, NAMES_SHOWN).map((n) => JSON.stringify(n)).join(', ');
  return list.length > NAMES_SHOWN ? `${shown} and ${list.length - NAMES_SHOWN} more` : shown;
}

/** A file's text, refused past `max` bytes (checked before reading it, and again after). */
function readBounded(file: string, max: number, tooBig: string): string {
  let text: string;
  try {
    if (fs.statSync(file).size > max) throw badFile(tooBig);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof VitefaError) throw err;
    throw cannot(file, err);
  }
  if (Buffer.byteLength(text) > max) throw badFile(tooBig);
  return text;
}

/** Reads an apply file: a JSON object of key -> value. */
export function readApplyFile(file: string): Entry[] {
  const text = readBounded(file, APPLY_MAX_BYTES, `${file} is larger than ${mib(APPLY_MAX_BYTES)}, the most apply reads`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badFile(`${file} is not valid JSON ${jsonFaultText(text)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badFile(`${file} must hold a JSON object of key -> value`);
  }
  return Object.entries(parsed).map(([k, v]) => [k, JSON.stringify(v)]);
}

/**
 * Reads the JSON Schema of `schema set`: its text as read (the server
 * canonicalises it), once it parses as JSON. At most APPLY_MAX_BYTES, the
 * largest frame a client takes.
 */
export function readSchemaFile(file: string): string {
  const text = readBounded(file, APPLY_MAX_BYTES, `${file} is larger than ${mib(APPLY_MAX_BYTES)}, the most schema set reads`);
  try {
    JSON.parse(text);
  } catch {
    throw badFile(`${file} is not valid JSON ${jsonFaultText(text)}`);
  }
  return text;
}

/**
 * Reads an apply folder: one file per key, KEY.json holding the key's JSON
 * value. Anything else in it — a file not ending in .json, a subfolder —
 * is refused, naming them, before any file is read; so is an empty folder.
 * Entries come sorted by key.
 */
export function readApplyDir(dir: string): Entry[] {
  const files: string[] = [];
  const others: string[] = [];
  const folders: string[] = [];
  let handle: fs.Dir;
  try {
    handle = fs.opendirSync(dir);
  } catch (err) {
    throw cannot(dir, err);
  }
  try {
    // Counted as they are listed: a folder of millions of names is refused without holding them all.
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      if (files.length + others.length + folders.length >= APPLY_MAX_FILES) {
        throw badFile(`${dir} holds more than ${APPLY_MAX_FILES} files: apply writes at most ${APPLY_MAX_FILES} keys in one release`);
      }
      const kind = entry.isSymbolicLink() ? statKind(path.join(dir, entry.name)) : entry.isDirectory() ? 'folder' : 'file';
      if (kind === 'folder') folders.push(entry.name);
      else if (entry.name.endsWith('.json')) files.push(entry.name);
      else others.push(entry.name);
    }
  } catch (err) {
    if (err instanceof VitefaError) throw err;
    throw cannot(dir, err);
  } finally {
    handle.closeSync();
  }
  if (folders.length > 0) throw badFile(`${dir} holds subfolders, which apply does not read: ${names(folders.sort())} (one KEY.json file per key, nothing else)`);
  if (others.length > 0) throw badFile(`${dir} holds files not ending in .json: ${names(others.sort())} (one KEY.json file per key, nothing else)`);
  if (files.length === 0) throw badFile(`${dir} holds no KEY.json file: nothing to apply`);
  if (files.includes('.json')) throw badFile(`${dir} holds a file named .json, which names no key (one KEY.json file per key)`);
  files.sort();
  const tooBig = `the files of ${dir} are larger than ${mib(APPLY_MAX_BYTES)} together, the most apply reads`;
  let total = 0;
  for (const name of files) {
    const file = path.join(dir, name);
    try {
      total += fs.statSync(file).size;
    } catch (err) {
      throw cannot(file, err);
    }
    if (total > APPLY_MAX_BYTES) throw badFile(tooBig);
  }
  let left = APPLY_MAX_BYTES;
  return files.map((name): Entry => {
    const file = path.join(dir, name);
    const text = readBounded(file, left, tooBig);
    left -= Buffer.byteLength(text);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw badFile(`${file} is not valid JSON ${jsonFaultText(text)}`);
    }
    // As a FILE's values are sent: the same value gives the same text, whichever way it was applied.
    return [name.slice(0, -'.json'.length), JSON.stringify(value)];
  });
}

/** What a symbolic link in an apply folder leads to (a broken one is a file, refused when read). */
function statKind(file: string): 'folder' | 'file' {
  try {
    return fs.statSync(file).isDirectory() ? 'folder' : 'file';
  } catch {
    return 'file';
  }
}

/** FILE (a JSON object of key -> value) or DIR (one KEY.json per key), as `apply` takes either. */
export function readApply(target: string): Entry[] {
  let folder: boolean;
  try {
    folder = fs.statSync(target).isDirectory();
  } catch (err) {
    throw cannot(target, err);
  }
  return folder ? readApplyDir(target) : readApplyFile(target);
}
