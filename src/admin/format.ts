import { stripVTControlCharacters, styleText } from 'node:util';
import { printable, printableDeep } from '../printable.js';
import type { AdminRequest, AdminResult, BigValue, KeyChange, Release, ResultOf } from '../protocol/index.js';
import type { Prepared } from './commands.js';
import { formatExplain, formatPlan, formatShow, layersWritten, onParents, stillDiffers } from './format-layers.js';
import { formatSchemaGet, formatSchemaHistory, schemaWarningLines, schemaWritten } from './format-schemas.js';

/**
 * How a result is printed: `text` for people (every control character
 * escaped, see printable.ts), `json` exactly as the server answered, `raw`
 * the value of `get` exactly as stored (strings bare), for pipes.
 */
export type Output = 'text' | 'json' | 'raw';

/** Colours for people at a terminal; never when piped or with NO_COLOR. */
export interface Style {
  dim(text: string): string;
  bold(text: string): string;
  good(text: string): string;
  bad(text: string): string;
  key(text: string): string;
}

const plain: Style = { dim: (t) => t, bold: (t) => t, good: (t) => t, bad: (t) => t, key: (t) => t };

export function styleFor(stream: NodeJS.WriteStream | NodeJS.WritableStream, env: NodeJS.ProcessEnv = process.env): Style {
  const tty = (stream as NodeJS.WriteStream).isTTY === true;
  if (!tty || (env.NO_COLOR !== undefined && env.NO_COLOR !== '') || env.TERM === 'dumb') return plain;
  // The decision is made here, for the stream being written; styleText alone would look at stdout.
  const paint = (format: Parameters<typeof styleText>[0]) => (t: string) => styleText(format, t, { validateStream: false });
  return { dim: paint('dim'), bold: paint('bold'), good: paint('green'), bad: paint('red'), key: paint('cyan') };
}

function paintState(state: string, style: Style): string {
  if (state === 'alive') return style.good(state);
  if (state === 'dead' || state === 'suspect') return style.bad(state);
  return state;
}

/** Rows aligned in columns under a header (the last column is not padded). */
export function table(header: string[], rows: string[][], style: Style = plain): string {
  // Widths of what shows: colour codes take no room.
  const width = (text: string): number => stripVTControlCharacters(text).length;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => width(r[i] ?? ''))));
  const pad = (text: string, n: number): string => text + ' '.repeat(Math.max(0, n - width(text)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i]))).join('  ').trimEnd();
  return [style.bold(line(header)), ...rows.map(line)].join('\n');
}

/** A value for people: strings bare (their line breaks and tabs kept), everything else as JSON; control characters escaped. */
export function showValue(json: string): string {
  const value: unknown = JSON.parse(json);
  return typeof value === 'string' ? printable(value, true) : printable(json);
}

/** A value exactly as stored, for pipes (`get --raw`): strings bare, everything else as JSON. */
export function rawValue(json: string): string {
  const value: unknown = JSON.parse(json);
  return typeof value === 'string' ? value : json;
}

/** Changes with the values the server left out shown as their size and hash. */
function withBig(changes: KeyChange[], big: BigValue[] | undefined): KeyChange[] {
  if (big === undefined || big.length === 0) return changes;
  const out = changes.map((c): KeyChange => [c[0], c[1], c[2]]);
  for (const [i, side, bytes, sha] of big) if (out[i] !== undefined) out[i][side] = `<${size(bytes)} value, sha256 ${sha}…; --values shows it>`;
  return out;
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1000 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function showChange([key, before, after]: KeyChange, style: Style): string {
  if (before === null) return `  ${style.good('+')} ${style.key(key)} = ${after}`;
  if (after === null) return `  ${style.bad('-')} ${style.key(key)} ${style.dim(`(was ${before})`)}`;
  return `  ~ ${style.key(key)}: ${style.dim(before)} -> ${after}`;
}

const time = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');
/** A duration for people: 850 ms, 2.4 s, 3 min, 5 h. */
function ago(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** A release seen by `watch`, as one block of lines (only `key`'s change when given). */
export function formatRelease(sent: Release, key: string | undefined, style: Style = plain): string | undefined {
  const changes = key === undefined ? sent.changes : sent.changes.filter(([k]) => k === key);
  if (key !== undefined && changes.length === 0 && sent.drop !== true) return undefined;
  const release = printableDeep({ ...sent, changes });
  const head = `${style.bold(`${release.env}@${release.rev}`)}  ${time(release.time)}  ${release.op}  by ${release.author}${release.drop === true ? '  (environment deleted)' : ''}`;
  return [head, ...release.changes.map(([k, v]) => (v === null ? `  ${style.bad('-')} ${style.key(k)}` : `  ${style.key(k)} = ${v}`))].join('\n');
}

export function formatResult(request: AdminRequest, result: AdminResult, output: Output, style: Style = plain): string {
  if (request.op === 'get' && request.explain === true) {
    // The explanation is the answer: as data, exactly the leaves the server sent.
    const leaves = (result as ResultOf['get']).explain ?? [];
    return output === 'json' ? JSON.stringify(leaves) : formatExplain(leaves, style);
  }
  if (output === 'json') return JSON.stringify(result);
  if (request.op === 'get') {
    const value = (result as ResultOf['get']).value;
    return output === 'raw' ? rawValue(value) : showValue(value);
  }
  // Everything the server sent is shown with its control characters escaped: names, values, details, errors.
  const r = printableDeep<ResultOf[keyof ResultOf]>(result);
  switch (request.op) {
    case 'env.add':
    case 'env.del':
    case 'set':
    case 'del':
    case 'merge':
    case 'clear':
    case 'unset':
    case 'apply':
    case 'env.layers':
    case 'rollback': {
      const w = r as ResultOf['set'];
      if (w.replayed === true) {
        return `${w.env}: this request id was applied before, as revision ${w.rev} (${w.changed} key${w.changed === 1 ? '' : 's'} changed); nothing was written now`;
      }
      if (request.op === 'env.add') return `created ${w.env} at revision ${w.rev}`;
      if (request.op === 'env.del') return `deleted ${w.env} (${w.changed} keys) at revision ${w.rev}`;
      // Names and keys are escaped by the helpers themselves, from what the server sent.
      if (request.op === 'env.layers') return layersWritten(request, result as ResultOf['env.layers']);
      const line = w.changed === 0
        ? `${w.env}: nothing changed (revision ${w.rev})`
        : `${w.env}: revision ${w.rev} (${w.changed} key${w.changed === 1 ? '' : 's'} changed)`;
      return request.op === 'rollback' ? [line, ...stillDiffers(request.rev, (result as ResultOf['rollback']).differs)].join('\n') : line;
    }
    case 'env.show':
      return formatShow(result as ResultOf['env.show'], style);
    case 'schema.set':
    case 'schema.del':
    case 'schema.rollback':
      return schemaWritten(request, r as ResultOf['schema.set']);
    case 'schema.get':
      return formatSchemaGet(r as ResultOf['schema.get'], result as ResultOf['schema.get'], style);
    case 'schema.list': {
      const schemas = (r as ResultOf['schema.list']).schemas;
      if (schemas.length === 0) return '(no schemas)';
      return table(['ENV_PATTERN', 'KEY_PATTERN', 'WHOLE', 'MODE', 'VERSION', 'FAILING', 'AUTHOR'], schemas.map((s) => [
        s.envPattern, s.keyPattern, s.whole ? 'yes' : 'no', s.mode, String(s.version),
        s.mode === 'warn' ? (s.failing === undefined ? '-' : s.failing === 0 ? '0' : style.bad(String(s.failing))) : '-', s.author,
      ]), style);
    }
    case 'schema.history':
      return formatSchemaHistory((r as ResultOf['schema.history']).versions, style);
    case 'plan':
      return formatPlan(result as ResultOf['plan'], style);
    case 'list': {
      const l = r as ResultOf['list'];
      const lines = l.entries.map(([k, v]) => `${style.key(k)} = ${v}`);
      if (l.next !== undefined) lines.push(style.dim(`(the page ended at the server's answer limit: continue with --after ${JSON.stringify(l.next)})`));
      return lines.join('\n');
    }
    case 'env.list': {
      const envs = (r as ResultOf['env.list']).envs;
      if (envs.length === 0) return '(no environments)';
      return table(['ENV', 'REVISION', 'KEYS', 'PARENTS'], envs.map((e) => [e.env, String(e.rev), String(e.keys), e.parents?.join(', ') || '-']), style);
    }
    case 'history': {
      const h = r as ResultOf['history'];
      if (h.releases.length === 0) return '(no history)';
      const lines = h.releases.map((rel) => [
        `${style.bold(`rev ${rel.rev}`)}  ${time(rel.time)}  ${rel.via === undefined ? '' : `via ${rel.via}@${rel.rev}  `}${rel.op}  by ${rel.author}`,
        ...(rel.parents === undefined ? [] : [`  parents: ${rel.parents.join(', ') || '(none)'}`]),
        ...withBig(rel.changes, rel.big).map((c) => showChange(c, style)),
        ...(rel.more === undefined ? [] : [style.dim(`  … and ${rel.more} more changes (diff ${h.env} ${rel.prev} ${rel.rev} pages through them all)`)]),
      ].join('\n'));
      if (h.next !== undefined) lines.push(style.dim(`(the page ended at the server's answer limit: continue with --before ${h.next})`));
      return lines.join('\n');
    }
    case 'diff': {
      const d = r as ResultOf['diff'];
      return [
        `${d.env}: ${d.from} -> ${d.to}`,
        ...(d.changes.length === 0 ? ['  (no differences)'] : withBig(d.changes, d.big).map((c) => showChange(c, style))),
        ...(d.next === undefined ? [] : [style.dim(`(the page ended at the server's answer limit: continue with --after ${JSON.stringify(d.next)})`)]),
      ].join('\n');
    }
    case 'status': {
      const s = r as ResultOf['status'];
      const counted = Object.entries(s.server.counters).filter(([k, n]) => n > 0 && k !== 'workerRestarts').sort(([a], [b]) => (a < b ? -1 : 1));
      const c = s.cluster;
      const lines = [
        `server ${s.server.id} ${s.server.version} on ${s.server.listen}, store ${s.server.store}, workers ${s.server.workers}, up ${Math.round(s.server.uptimeMs / 1000)} s`,
        `sessions ended or refused: ${counted.map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}${s.server.counters.workerRestarts ? `; workers restarted: ${s.server.counters.workerRestarts}` : ''}`,
        '',
        `servers (cluster head ${c.head}):`,
        table(['SERVER', 'STATE', 'GEN', 'APPLIED', 'LAG', 'AGENTS', 'HEARD', 'ADDRESS'], c.servers.map((row) => [
          row.id, paintState(row.state, style), String(row.gen), String(row.head), String(row.lag),
          row.answered ? String(row.agents) : `${row.agents}?`, row.heardMs === 0 ? '-' : `${(row.heardMs / 1000).toFixed(1)} s ago`, row.addrs.join(','),
        ]), style),
        '',
        `environments (agents of every server that answered):`,
      ];
      const keys = new Map(s.envs.map((e) => [e.env, e.keys]));
      const byEnv = new Map(c.envs.map((e) => [e.env, e]));
      if (s.envs.length === 0) lines.push('(none)');
      else {
        lines.push(table(['ENV', 'REV', 'KEYS', 'ACKED AT REV', 'ACKED EARLIER', 'RELEASED', 'ACKS BY REV (CHAIN)'], s.envs.map((e) => {
          const a = byEnv.get(e.env);
          const chain = a?.chain ?? '';
          // Of another history: the current revision with another chain value, or beyond the current revision.
          const fork = (rev: number, c: string): boolean => (rev === e.rev && chain !== '' && c !== '' && c !== chain) || rev > e.rev;
          const current = a?.holders.filter(([rev, , c]) => rev === e.rev && !fork(rev, c)).reduce((n, [, k]) => n + k, 0) ?? 0;
          const earlier = a?.laggingTotal ?? 0;
          const forked = a?.holders.filter(([rev, , c]) => fork(rev, c)).reduce((n, [, k]) => n + k, 0) ?? 0;
          return [`${e.env}${onParents(e.parents)}`, String(e.rev), String(keys.get(e.env) ?? 0), String(current), earlier === 0 ? '0' : style.bad(String(earlier)),
            a?.releasedMs === undefined ? '-' : `${ago(a.releasedMs)} ago`,
            (a?.holders ?? []).slice(0, 4).map(([rev, n, c]) => `${n}@${rev}${c === '' ? '' : `/${c.slice(0, 8)}`}${fork(rev, c) ? ' (fork)' : ''}`).join(' ')
              + ((a?.holders.length ?? 0) > 4 ? ' …' : '') + (forked > 0 ? style.bad(` ${forked} of another history`) : '')];
        }), style));
        lines.push('(agents acknowledge 1-3 s after a release: one released moments ago is still counted under ACKED EARLIER)');
      }
      const warned = schemaWarningLines(s.schemaWarnings);
      if (warned.length > 0) lines.push('', ...warned);
      for (const e of c.envs) {
        if (e.lagging.length === 0) continue;
        lines.push('', `behind in ${e.env} (at ${e.rev}):${e.laggingTotal > e.lagging.length ? ` the first ${e.lagging.length} of ${e.laggingTotal}` : ''}`);
        lines.push(table(['AGENT', 'ADDRESS', 'SERVER', 'HOLDS'], e.lagging.map((a) => [a.id, a.addr, a.server, String(a.rev)]), style));
      }
      if (c.found !== undefined) {
        lines.push('', c.found.length === 0 ? 'agent not found on any server that answered' : `agent found on ${new Set(c.found.map((a) => a.server)).size} server(s):`);
        if (c.found.length > 0) {
          lines.push(table(['AGENT', 'SERVER', 'ADDRESS', 'CONNECTED', 'LAST ACK', 'ACKNOWLEDGED'], c.found.map((a) => [
            a.id, a.server, a.addr, time(a.since), a.ackedMs === undefined ? '-' : `${ago(a.ackedMs)} ago`,
            a.envs.map((e) => `${e.env}@${e.rev}${e.chain === undefined ? '' : `/${e.chain.slice(0, 8)}`}`).join(', '),
          ]), style));
        }
      }
      lines.push('', `agents of this server: ${s.agentsTotal}`);
      const current = new Map(s.envs.map((e) => [e.env, e.rev]));
      if (s.agents.length > 0) {
        lines.push(table(['AGENT', 'ADDRESS', 'LAST ACK', 'ACKNOWLEDGED'], s.agents.map((a) => [
          a.id, a.addr, a.ackedMs === undefined ? '-' : `${ago(a.ackedMs)} ago`,
          a.envs.map((e) => `${e.env}@${e.rev}${current.get(e.env) === e.rev ? '' : ' (earlier)'}`).join(', '),
        ]), style));
      }
      if (s.agents.length < s.agentsTotal) lines.push(`… and ${s.agentsTotal - s.agents.length} more`);
      return lines.join('\n');
    }
    case 'status.local': {
      const s = r as ResultOf['status.local'];
      return [
        `server ${s.server.id} generation ${s.gen}, applied ${s.head}, agents ${s.agentsTotal}`,
        table(['ENV', 'REV', 'ACKS BY REV', 'ACKED EARLIER'], s.envs.map((e) => [e.env, String(e.rev), e.holders.map(([rev, n]) => `${n}@${rev}`).join(' '), String(e.laggingTotal)]), style),
      ].join('\n');
    }
    case 'user.add':
    case 'user.del':
    case 'user.passwd':
    case 'token.add':
    case 'token.del':
    case 'unwatch':
      return (r as ResultOf['user.add']).done;
    case 'user.list':
      return table(['ACCOUNT', 'ROLE', 'CHANGES', 'READS', 'CREATED'], (r as ResultOf['user.list']).users.map((u) => [
        u.name, u.role, u.role === 'admin' ? '(all)' : u.role === 'editor' ? u.envs.join(', ') || '(none)' : '-', readsOf(u), time(u.created),
      ]), style);
    case 'token.list': {
      const tokens = (r as ResultOf['token.list']).tokens;
      if (tokens.length === 0) return '(no tokens)';
      return table(['TOKEN', 'ID', 'ENVIRONMENTS', 'CREATED'], tokens.map((t) => [t.name, t.id, t.envs.join(', ') || '(none)', time(t.created)]), style);
    }
    case 'audit': {
      const entries = (r as ResultOf['audit']).entries;
      if (entries.length === 0) return '(no entries)';
      return table(['TIME', 'WHO', 'FROM', 'WHAT', 'ENV', 'RESULT', 'DETAIL'], entries.map((e) => [
        time(e.time), e.actor, e.addr, e.action, e.env, e.result === 'ok' ? 'ok' : `${e.result} ${e.code}`, e.detail,
      ]), style);
    }
    case 'watch': {
      const w = r as ResultOf['watch'];
      return style.dim(`watching ${w.env} from revision ${w.rev} (Ctrl-C stops)`);
    }
    default: {
      const unknown: never = request;
      return JSON.stringify(unknown);
    }
  }
}

/** How to print a prepared command's result. */
export function outputOf(prepared: Prepared): Output {
  return prepared.json ? 'json' : prepared.raw === true ? 'raw' : 'text';
}

/** What an account reads: its grants and its read grants (a server older than read grants sends none: everything). */
function readsOf(u: ResultOf['user.list']['users'][number]): string {
  if (u.role === 'admin' || u.reads === undefined) return '(all)';
  const grants = [...new Set([...u.envs, ...u.reads])];
  return grants.includes('*') ? '(all)' : grants.join(', ') || '(none)';
}

/** The line printed after a result (the token of `token add`, shown this once). */
export function noteFor(prepared: Prepared): string {
  if (prepared.request.op === 'token.add' && prepared.note !== undefined) {
    return prepared.json
      ? JSON.stringify({ token: prepared.note })
      : `${prepared.note}\n(shown only now: give it to the agent with --token-file FILE or VITEFA_AGENT_TOKEN)`;
  }
  return prepared.note ?? '';
}

