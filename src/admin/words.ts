import { LocalErrorCode, VitefaError } from '../protocol/index.js';

/**
 * Splits a REPL line into words the way a user expects to type JSON:
 * whitespace separates words, except inside balanced {…} or […] and inside
 * double quotes (kept, so `"2"` stays the JSON string "2"); single quotes
 * group a word and are removed.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let depth = 0;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === '"') {
      word += c;
      if (c === '\\' && i + 1 < line.length) word += line[++i];
      else if (c === '"') quote = undefined;
      continue;
    }
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
      continue;
    }
    if (/\s/.test(c) && depth === 0) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '"') quote = '"';
    else if (c === "'") {
      quote = "'";
      continue;
    } else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && depth > 0) depth--;
    word += c;
  }
  if (quote !== undefined) throw new VitefaError(LocalErrorCode.USAGE, `unterminated ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

/**
 * True while `text` leaves a `{`, `[` or quote open: the REPL then reads
 * another line and joins them, so a JSON value can spread over several lines.
 */
export function isIncomplete(text: string): boolean {
  let depth = 0;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === '"') {
      if (c === '\\') i++;
      else if (c === '"') quote = undefined;
    } else if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '{' || c === '[') {
      depth++;
    } else if ((c === '}' || c === ']') && depth > 0) {
      depth--;
    }
  }
  return depth > 0 || quote !== undefined;
}
