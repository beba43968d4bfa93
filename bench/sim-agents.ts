/**
 * Simulated agents for the harness: one process holds up to ~15,000 sockets
 * that speak the real protocol (wait for the server's hello, send hello and
 * subscribe, receive releases and snapshots, acknowledge each, detect gaps,
 * reconnect with the agent's jittered backoff). In `floor` mode the sockets
 * only count frames: the receiving end of a bare fan-out.
 *
 * Driven over IPC by bench/run.ts (messages: see SimCommand / SimReply).
 */
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { AGENT_DEFAULTS } from '../src/agent/agent.js';
import { backoffDelay } from '../src/transport/backoff.js';
import { decodeBody, encodeMessage, FrameDecoder, MessageType, PROTOCOL_VERSION } from '../src/protocol/index.js';
import { clientProof, newNonce, sameSignature } from '../src/security/scram.js';
import { CHANNEL_BINDING_LABEL } from '../src/security/tls.js';
import { parseToken, type TokenParts } from '../src/security/token.js';

export type SimCommand =
  /** With `envs`, the agent numbered id + i follows envs[(id + i) % envs.length] instead of `env`. */
  | { k: 'start'; mode: 'protocol' | 'floor'; targets: string[]; count: number; env: string; envs?: string[]; id: number; concurrency: number; initial: number; token?: string; tlsCa?: string }
  /** Start the agents held back by `initial`. */
  | { k: 'grow' }
  /** Record the arrival time of release `rev` (protocol) or of frame number `rev` (floor). */
  | { k: 'watch'; rev: number }
  | { k: 'report'; rev: number }
  | { k: 'status' }
  /** Also follow `env` from revision 0 on `count` extra sockets (snapshot joiners). */
  | { k: 'join'; env: string; count: number }
  | { k: 'quiet' }
  | { k: 'close' };

export type SimReply =
  | { k: 'status'; connected: number; current: number[]; gaps: number; snapshots: number; errors: number; resumed: number; heldMin: number; heldMax: number }
  | { k: 'report'; rev: number; times: Float64Array; joinTimes: Float64Array };

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

const HELLO_TIMEOUT_MS = 5000;

class SimAgent {
  socket?: net.Socket;
  decoder = new FrameDecoder(256 * 1024 * 1024);
  held = 0;
  live = false;
  attempt = 0;
  frames = 0;
  ackPending = false;
  /** The ping interval the server asked for, and when the next ping is due (0: not logged in). */
  pingMs: number = AGENT_DEFAULTS.pingIntervalMs;
  pingAt = 0;
  nonce = '';
  expected = '';
  /** The last TLS session ticket, to resume with. */
  session: Buffer | undefined;
  /** Ends the hello timeout and frees this attempt's place in the connect window. */
  helloArrived: () => void = () => undefined;
  constructor(readonly index: number, readonly target: { host: string; port: number }, readonly env: string, readonly joiner: boolean) {}
}

let mode: 'protocol' | 'floor' = 'protocol';
/** The token every simulated agent logs in with (one token for a fleet, as one role's hosts may share one). */
let token: TokenParts = { id: '', secret: '' };
/** With it, every agent speaks TLS and checks the server's certificate against this CA; it resumes its session on reconnect. */
let tlsCa: string | undefined;
let agents: SimAgent[] = [];
let joiners: SimAgent[] = [];
let closing = false;
let gaps = 0;
let snapshots = 0;
let errors = 0;
/** TLS connections that resumed a session instead of a full handshake. */
let resumed = 0;
let idBase = 0;
const watched = new Map<number, Float64Array>();
const joinWatched = new Map<number, Float64Array>();
let pendingStarts: SimAgent[] = [];
let inFlight = 0;
let concurrency = 1000;
/** Agents from this index on wait for 'grow'. */
let heldBack = 0;
/** Where joiners connect. */
let firstTarget: { host: string; port: number } | undefined;

/** As the real agent does: acks wait about ackDelayMs (jittered, half to one and a half of it) and carry the newest revision. */
function acknowledge(agent: SimAgent, socket: net.Socket): void {
  if (agent.ackPending) return;
  agent.ackPending = true;
  setTimeout(() => {
    agent.ackPending = false;
    if (!socket.destroyed) socket.write(encodeMessage({ t: MessageType.Ack, env: agent.env, rev: agent.held }));
  }, AGENT_DEFAULTS.ackDelayMs * (0.5 + Math.random()));
}

/**
 * As the real agent does, every agent pings as often as its server asked
 * (in the Welcome, then in each Pong; its default before that), the first
 * time after a random half to whole interval. One timer per process looks
 * once a second for the agents whose ping is due.
 */
let pingSeq = 0;
setInterval(() => {
  if (mode !== 'protocol' || closing) return;
  const at = Date.now();
  let frame: Buffer | undefined;
  for (const agent of agents) {
    const socket = agent.socket;
    if (!agent.live || agent.pingAt === 0 || agent.pingAt > at || socket === undefined || socket.destroyed) continue;
    frame ??= encodeMessage({ t: MessageType.Ping, n: ++pingSeq });
    socket.write(frame);
    agent.pingAt = at + agent.pingMs;
  }
}, 1000).unref();

function record(table: Map<number, Float64Array>, rev: number, index: number, at: number): void {
  const times = table.get(rev);
  if (times !== undefined) times[index] = at;
}

function send(reply: SimReply): void {
  process.send!(reply);
}

function startNext(): void {
  while (inFlight < concurrency && pendingStarts.length > 0) {
    const agent = pendingStarts.shift()!;
    inFlight++;
    dial(agent);
  }
}

function dial(agent: SimAgent): void {
  if (closing) return;
  agent.decoder = new FrameDecoder(256 * 1024 * 1024);
  agent.live = false;
  const socket = tlsCa === undefined
    ? net.connect({ host: agent.target.host, port: agent.target.port, noDelay: true })
    : tls.connect({ host: agent.target.host, port: agent.target.port, ca: tlsCa, ...(agent.session === undefined ? {} : { session: agent.session }) });
  if (tlsCa !== undefined) {
    socket.on('session', (s: Buffer) => (agent.session = s));
    socket.once('secureConnect', () => {
      if ((socket as tls.TLSSocket).isSessionReused()) resumed++;
    });
  }
  agent.socket = socket;
  let counted = true; // this attempt still holds a place in the connect window
  const release = (): void => {
    if (counted) {
      counted = false;
      inFlight--;
      startNext();
    }
  };
  // No hello (the server's, or the floor's greeting) in time: the accept queue may have dropped us.
  const timer = setTimeout(() => {
    if (!agent.live) socket.destroy();
  }, HELLO_TIMEOUT_MS);
  agent.helloArrived = (): void => {
    clearTimeout(timer);
    release();
  };
  socket.on('data', (chunk: Buffer) => {
    // Stamp the arrival now and decode after this round of I/O: one process
    // plays thousands of agents, and each one's decoding must not delay the
    // next one's receipt (a real agent has its host to itself).
    inbox.push({ agent, socket, chunk, at: now() });
    if (!draining) {
      draining = true;
      setImmediate(drain);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    clearTimeout(timer);
    release();
    agent.live = false;
    if (closing) return;
    // The agent's own backoff: exponential with full jitter.
    setTimeout(() => {
      pendingStarts.push(agent);
      startNext();
    }, backoffDelay(agent.attempt++, 100, 10_000));
  });
}

interface Arrival {
  agent: SimAgent;
  socket: net.Socket;
  chunk: Buffer;
  at: number;
}
let inbox: Arrival[] = [];
let draining = false;

function drain(): void {
  draining = false;
  const batch = inbox;
  inbox = [];
  for (const item of batch) handleChunk(item);
}

function handleChunk({ agent, socket, chunk, at }: Arrival): void {
  if (socket.destroyed) return;
  {
    let bodies: Buffer[];
    try {
      bodies = agent.decoder.push(chunk);
    } catch {
      errors++;
      socket.destroy();
      return;
    }
    for (const body of bodies) {
      if (mode === 'floor') {
        if (!agent.live) {
          agent.live = true; // the greeting
          agent.attempt = 0;
          agent.helloArrived();
          continue;
        }
        agent.frames++;
        record(watched, agent.frames, agent.index, at);
        continue;
      }
      const message = decodeBody(body);
      switch (message.t) {
        case MessageType.Hello:
          // The agent's login, as the real one does it: its token's id, a fresh nonce.
          agent.nonce = newNonce();
          socket.write(encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'agent', id: `sim-${idBase + agent.index}`, user: token.id, nonce: agent.nonce }));
          break;
        case MessageType.Challenge: {
          const channelBinding = socket instanceof tls.TLSSocket ? socket.exportKeyingMaterial(32, CHANNEL_BINDING_LABEL, Buffer.alloc(0)).toString('base64') : '';
          const { proof, expectedSignature } = clientProof(token.secret, {
            role: 'agent', user: token.id, clientNonce: agent.nonce, nonce: message.nonce, salt: message.salt, iterations: message.iterations, channelBinding,
          });
          agent.expected = expectedSignature;
          socket.write(encodeMessage({ t: MessageType.Proof, proof }));
          break;
        }
        case MessageType.Welcome:
          if (!sameSignature(message.signature, agent.expected)) {
            errors++;
            socket.destroy();
            return;
          }
          agent.helloArrived();
          agent.live = true;
          agent.attempt = 0;
          agent.pingMs = message.ping ?? AGENT_DEFAULTS.pingIntervalMs;
          agent.pingAt = Date.now() + agent.pingMs * (0.5 + Math.random() / 2);
          socket.write(encodeMessage({ t: MessageType.Subscribe, all: false, envs: [{ env: agent.env, rev: agent.held }] }));
          break;
        case MessageType.Release:
          if (message.rev <= agent.held) break;
          if (message.prev !== agent.held) {
            gaps++; // a release would be lost: count it, then resubscribe from what is held
            socket.write(encodeMessage({ t: MessageType.Subscribe, all: false, envs: [{ env: agent.env, rev: agent.held }] }));
            break;
          }
          agent.held = message.rev;
          record(agent.joiner ? joinWatched : watched, message.rev, agent.index, at);
          acknowledge(agent, socket);
          break;
        case MessageType.Snapshot:
          snapshots++;
          agent.held = message.rev;
          record(agent.joiner ? joinWatched : watched, message.rev, agent.index, at);
          acknowledge(agent, socket);
          break;
        case MessageType.Ping:
          socket.write(encodeMessage({ t: MessageType.Pong, n: message.n }));
          break;
        case MessageType.Pong:
          if (message.next !== undefined) {
            agent.pingAt += message.next - agent.pingMs;
            agent.pingMs = message.next;
          }
          break;
        default:
          break;
      }
    }
  }
}

function parseTarget(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

process.on('message', (command: SimCommand) => {
  switch (command.k) {
    case 'start': {
      mode = command.mode;
      idBase = command.id;
      if (command.token !== undefined) token = parseToken(command.token)!;
      tlsCa = command.tlsCa;
      concurrency = command.concurrency;
      const targets = command.targets.map(parseTarget);
      firstTarget = targets[0];
      const envs = command.envs;
      agents = Array.from({ length: command.count }, (_, i) => new SimAgent(i, targets[i % targets.length], envs === undefined ? command.env : envs[(command.id + i) % envs.length], false));
      pendingStarts = agents.slice(0, command.initial);
      heldBack = command.initial;
      startNext();
      return;
    }
    case 'grow':
      pendingStarts.push(...agents.slice(heldBack));
      heldBack = agents.length;
      startNext();
      return;
    case 'join': {
      const target = firstTarget!;
      joiners = Array.from({ length: command.count }, (_, i) => new SimAgent(i, target, command.env, true));
      pendingStarts.push(...joiners);
      startNext();
      return;
    }
    case 'watch':
      watched.set(command.rev, new Float64Array(agents.length).fill(NaN));
      joinWatched.set(command.rev, new Float64Array(Math.max(joiners.length, 1)).fill(NaN));
      return;
    case 'report': {
      // Recording goes on: the harness may ask again before every agent has it.
      const times = watched.get(command.rev) ?? new Float64Array(0);
      const joinTimes = joinWatched.get(command.rev) ?? new Float64Array(0);
      send({ k: 'report', rev: command.rev, times, joinTimes });
      return;
    }
    case 'status': {
      let connected = 0;
      let heldMin = Infinity;
      let heldMax = 0;
      const current: number[] = [];
      for (const a of agents) {
        if (a.live) connected++;
        heldMin = Math.min(heldMin, a.held);
        heldMax = Math.max(heldMax, a.held);
      }
      for (const a of joiners) current.push(a.held);
      send({ k: 'status', connected, current, gaps, snapshots, errors, resumed, heldMin, heldMax });
      return;
    }
    case 'quiet':
      closing = true;
      return;
    case 'close':
      closing = true;
      for (const a of [...agents, ...joiners]) a.socket?.destroy();
      setTimeout(() => process.exit(0), 200);
      return;
    default: {
      const unknown: never = command;
      throw new Error(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
});
