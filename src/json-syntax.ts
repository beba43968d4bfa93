/**
 * Where JSON text is not valid, said by position and what was expected
 * there, never by quoting the text: a value may be a password, and the
 * messages of JSON.parse quote the text around the fault ("Sup3r-S3cr"...),
 * which would carry it into errors, logs and the audit.
 */

/** The first fault of JSON text: its offset (in UTF-16 units, from 0) and what was expected there. */
export interface JsonFault {
  at: number;
  expected: string;
}

/** The containers a value may be inside: `{` and `[`, by their character codes. */
const OBJECT = 0x7b;
const ARRAY = 0x5b;

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
/** After a backslash in a string: " \ / b f n r t (u is checked on its own). */
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

/**
 * The first fault of `text` as JSON (RFC 8259, the grammar JSON.parse
 * accepts), or undefined when it is valid. Iterative, so any nesting costs
 * only its length.
 */
export function jsonFault(text: string): JsonFault | undefined {
  const n = text.length;
  let i = 0;
  const open: number[] = [];
  const at = (expected: string): JsonFault => ({ at: i, expected });
  const skipSpace = (): void => {
    while (i < n && isSpace(text.charCodeAt(i))) i++;
  };
  const string = (): JsonFault | undefined => {
    i++; // the opening quote
    for (;;) {
      if (i >= n) return at('the closing " of a string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return undefined;
      }
      if (c < 0x20) return at('a control character escaped (\\n, \\t, \\u…) inside a string');
      if (c === 0x5c) {
        i++;
        const e = text.charCodeAt(i);
        if (e === 0x75) {
          for (let k = 1; k <= 4; k++) {
            if (!isHex(text.charCodeAt(i + k))) {
              i += k;
              return at('4 hexadecimal digits after \\u');
            }
          }
          i += 5;
        } else if (ESCAPES.has(e)) {
          i++;
        } else {
          return at('an escape: \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\u');
        }
        continue;
      }
      i++;
    }
  };
  const digits = (): boolean => {
    const from = i;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    return i > from;
  };
  const number = (): JsonFault | undefined => {
    if (text.charCodeAt(i) === 0x2d) i++;
    if (text.charCodeAt(i) === 0x30) i++;
    else if (!digits()) return at('a digit');
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!digits()) return at('a digit after the decimal point');
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const sign = text.charCodeAt(i);
      if (sign === 0x2b || sign === 0x2d) i++;
      if (!digits()) return at('a digit in the exponent');
    }
    return undefined;
  };
  /** A property name and its colon; `i` is then at the property's value. */
  const member = (): JsonFault | undefined => {
    skipSpace();
    if (text.charCodeAt(i) !== 0x22) return at('a property name in double quotes');
    const fault = string();
    if (fault !== undefined) return fault;
    skipSpace();
    if (text.charCodeAt(i) !== 0x3a) return at("':' after a property name");
    i++;
    return undefined;
  };

  for (;;) {
    // A value starts here.
    skipSpace();
    if (i >= n) return at('a value');
    const c = text.charCodeAt(i);
    let fault: JsonFault | undefined;
    if (c === OBJECT || c === ARRAY) {
      i++;
      skipSpace();
      if (text.charCodeAt(i) === (c === OBJECT ? 0x7d : 0x5d)) {
        i++; // empty: a value is complete
      } else {
        open.push(c);
        if (c === OBJECT) fault = member();
        if (fault !== undefined) return fault;
        continue;
      }
    } else if (c === 0x22) {
      fault = string();
    } else if (c === 0x2d || isDigit(c)) {
      fault = number();
    } else {
      const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
      if (word === undefined) return at('a value');
      i += word.length;
    }
    if (fault !== undefined) return fault;
    // A value is complete: close what it completes, then find where the next one starts.
    for (;;) {
      skipSpace();
      const top = open[open.length - 1];
      if (top === undefined) return i < n ? at('the end of the text (one value only)') : undefined;
      const close = top === OBJECT ? 0x7d : 0x5d;
      const d = text.charCodeAt(i);
      if (d === close) {
        i++;
        open.pop();
        continue;
      }
      if (d !== 0x2c) return at(top === OBJECT ? "',' or '}'" : "',' or ']'");
      i++;
      if (top === OBJECT) {
        fault = member();
        if (fault !== undefined) return fault;
      }
      break;
    }
  }
}

/** Where `text` is not valid JSON, for an error message: "at character 7 (expected ...)", or by line and column for text of several lines. */
export function jsonFaultText(text: string): string {
  const fault = jsonFault(text);
  if (fault === undefined) return '(at no position this parser finds)';
  if (!text.includes('\n')) return `at character ${fault.at + 1} (expected ${fault.expected})`;
  let line = 1;
  let start = 0;
  for (let k = text.indexOf('\n'); k !== -1 && k < fault.at; k = text.indexOf('\n', k + 1)) {
    line++;
    start = k + 1;
  }
  return `at line ${line}, column ${fault.at - start + 1} (expected ${fault.expected})`;
}
