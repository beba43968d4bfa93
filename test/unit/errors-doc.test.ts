/**
 * Keeps docs/errors.md (and the tables of docs/protocol.md) in step with the
 * code: adding a wire code, a local code or a message type without
 * documenting it fails here.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ADMIN_OPS, FrameDecoder, LocalErrorCode, MessageType, WireError, decodeBody,
} from '../../src/protocol/index.js';

const docsDir = fileURLToPath(new URL('../../docs/', import.meta.url));
const errorsDoc = readFileSync(`${docsDir}errors.md`, 'utf8');
const protocolDoc = readFileSync(`${docsDir}protocol.md`, 'utf8');

/** The lines of the `## heading` section (up to the next `## `), trimmed. */
function section(doc: string, heading: string): string[] {
  const lines = doc.split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === `## ${heading}`);
  assert.notEqual(start, -1, `section "## ${heading}" is missing`);
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^## /.test(line)) break;
    out.push(line.trim());
  }
  return out;
}

/** Cells of the body rows of the tables in a section (header and separator rows excluded). */
function tableRows(lines: string[]): string[][] {
  const isSeparator = (cells: string[]) => cells.every((c) => /^:?-+:?$/.test(c));
  const out: string[][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!(line.startsWith('|') && line.endsWith('|'))) continue;
    const cells = line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/^`([^`]*)`$/, '$1'));
    if (isSeparator(cells)) continue;
    const next = lines[i + 1] ?? '';
    if (next.startsWith('|') && isSeparator(next.slice(1, -1).split('|').map((c) => c.trim()))) continue; // header
    out.push(cells);
  }
  return out;
}

function duplicates(items: string[]): string[] {
  return items.filter((item, i) => items.indexOf(item) !== i);
}

describe('docs/errors.md', () => {
  const wireRows = tableRows(section(errorsDoc, 'Wire errors'));
  const localRows = tableRows(section(errorsDoc, 'Local error codes'));

  test('the wire error table has well-formed rows', () => {
    assert.ok(wireRows.length > 0, 'no rows found');
    for (const cells of wireRows) {
      assert.match(cells[0], /^\d+$/, `code cell "${cells[0]}" in row ${cells.join(' | ')}`);
      assert.match(cells[1], /^[A-Z][A-Z_]*$/, `name cell "${cells[1]}"`);
      assert.equal(cells.length, 5, `row ${cells[0]} must have 5 cells: code, name, meaning, sent by, receiver action`);
      for (const cell of cells.slice(2)) assert.ok(cell.length > 0, `row ${cells[0]} has an empty cell`);
    }
  });

  test('documents exactly the WireError table of src/protocol/codes.ts', () => {
    const documented = wireRows.map((c) => `${c[0]} ${c[1]}`);
    assert.deepEqual(duplicates(documented), [], 'documented twice');
    const actual = Object.entries(WireError).map(([name, code]) => `${code} ${name}`);
    assert.deepEqual([...documented].sort(), [...actual].sort());
  });

  test('lists wire codes in ascending order', () => {
    const codes = wireRows.map((c) => Number(c[0]));
    assert.deepEqual(codes, [...codes].sort((a, b) => a - b));
  });

  test('the local error code table has well-formed rows', () => {
    assert.ok(localRows.length > 0, 'no rows found');
    for (const cells of localRows) {
      assert.match(cells[0], /^E_[A-Z0-9_]+$/, `code cell "${cells[0]}"`);
      assert.equal(cells.length, 2, `row ${cells[0]} must have 2 cells: code, meaning`);
      assert.ok(cells[1].length > 0, `row ${cells[0]} has no meaning`);
    }
  });

  test('documents exactly LocalErrorCode of src/protocol/errors.ts', () => {
    const documented = localRows.map((c) => c[0]);
    assert.deepEqual(duplicates(documented), [], 'documented twice');
    assert.deepEqual([...documented].sort(), [...Object.values(LocalErrorCode)].sort());
  });

  test('documents the ProtocolError and RemoteError code forms', () => {
    assert.ok(errorsDoc.includes('E_PROTOCOL_<NAME>'));
    assert.ok(errorsDoc.includes('E_REMOTE_<NAME>'));
    assert.ok(errorsDoc.includes('E_REMOTE_<number>'));
  });
});

describe('docs/protocol.md', () => {
  test('the message table lists exactly MessageType', () => {
    const rows = tableRows(section(protocolDoc, 'Messages')).filter((c) => /^\d+$/.test(c[0] ?? ''));
    const documented = rows.map((c) => `${c[0]} ${c[1]}`);
    assert.deepEqual(duplicates(documented), []);
    const actual = Object.entries(MessageType).map(([name, t]) => `${t} ${name}`);
    assert.deepEqual([...documented].sort(), [...actual].sort());
  });

  test('every message type has its own field table', () => {
    const lines = section(protocolDoc, 'Messages');
    for (const [name, t] of Object.entries(MessageType)) {
      assert.ok(
        lines.some((l) => l.startsWith('### ') && new RegExp(`\\b${t} ${name}\\b`).test(l)),
        `no "### ${t} ${name}" heading`,
      );
    }
  });

  test('the admin request table lists every operation', () => {
    const ops = tableRows(section(protocolDoc, 'Admin requests')).map((c) => c[0]).filter((op) => /^[a-z.]+$/.test(op));
    const expected = [...ADMIN_OPS];
    assert.deepEqual([...ops].sort(), [...expected].sort());
  });

  test('the example byte dump decodes to the message shown above it', () => {
    const dump = /```hexdump\n([\s\S]*?)```/.exec(protocolDoc);
    const json = /```json\n([\s\S]*?)```/.exec(protocolDoc);
    assert.ok(dump && json, 'example blocks missing');
    const bytes = Buffer.from(
      dump[1].split('\n').map((l) => l.replace(/^[0-9a-f]{8}\s+/, '').replace(/\s*\|.*\|\s*$/, '')).join('').replace(/\s+/g, ''),
      'hex',
    );
    const frames = new FrameDecoder().push(bytes);
    assert.equal(frames.length, 1);
    assert.deepEqual(decodeBody(frames[0]), JSON.parse(json[1]));
  });
});
