/**
 * The request/response layers: the correlator (deadlines, a bound on what
 * waits, failing everything at once) and the cluster's internal channel
 * built on it (typed notes and requests, wire statuses on failure, a bound on
 * bytes queued towards a worker that stops taking them, handlers that throw).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/protocol/index.js';
import { Channel, type ChannelPort } from '../../src/server/process/channel.js';
import { RequestError } from '../../src/server/errors.js';
import { Correlator } from '../../src/transport/correlator.js';
import { waitFor } from '../support/common.js';

const correlator = (maxPending = 2) => new Correlator<string>({
  maxPending,
  timeout: (what, ms) => new Error(`${what} timed out after ${ms}`),
  overflow: (what, max) => new Error(`${what}: ${max} waiting`),
});

describe('Correlator', () => {
  test('settles by id with what the outcome returns or throws; an unknown id is refused', async () => {
    const c = correlator();
    let id = 0;
    const ok = c.start<number>('a', 1000, (i) => (id = i));
    assert.equal(c.settle(id, (what) => `${what}!`), true);
    assert.equal(await ok, 'a!');
    const bad = c.start('b', 1000, (i) => (id = i));
    c.settle(id, () => {
      throw new Error('refused');
    });
    await assert.rejects(bad, /refused/);
    assert.equal(c.settle(12345, () => 1), false);
    assert.equal(c.size, 0);
  });

  test('a request past its deadline is rejected and its late answer ignored', async () => {
    const c = correlator();
    let id = 0;
    await assert.rejects(c.start('slow', 20, (i) => (id = i)), /slow timed out after 20/);
    assert.equal(c.settle(id, () => 1), false);
  });

  test('at most maxPending wait; one more is refused at once; failAll rejects every one', async () => {
    const c = correlator(2);
    const a = c.start('a', 10_000, () => undefined);
    const b = c.start('b', 10_000, () => undefined);
    await assert.rejects(c.start('c', 10_000, () => undefined), /c: 2 waiting/);
    c.failAll((what) => new Error(`${what} lost`));
    await assert.rejects(a, /a lost/);
    await assert.rejects(b, /b lost/);
    assert.equal(c.size, 0);
  });

  test('a send that throws fails its request and leaves nothing waiting', async () => {
    const c = correlator();
    await assert.rejects(c.start('x', 10_000, () => {
      throw new Error('channel gone');
    }), /channel gone/);
    assert.equal(c.size, 0);
  });
});

type Note = { k: 'hi'; n: number } | { k: 'boom' };
type Req = { k: 'add'; a: number; b: number } | { k: 'fail'; how: 'request' | 'bug' };
type Replies = { add: number; fail: never };

/** Two channel ends joined in memory; `hold` keeps one direction's messages from being taken. */
function pair(options: { maxQueuedBytes?: number; overflow?: (bytes: number) => void } = {}) {
  const notes: Note[] = [];
  let deliverToB = true;
  const port = (to: () => Channel<Note, Req, Note, Req, Replies>, open: () => boolean): ChannelPort => ({
    send: (message, done) => {
      if (!open()) return; // never handed on: the bytes stay queued
      setImmediate(() => {
        done(null);
        to().receive(structuredClone(message));
      });
    },
  });
  const handlers = {
    note: (note: Note) => {
      if (note.k === 'boom') throw new Error('a bug in a note handler');
      notes.push(note);
    },
    request: (req: Req): Promise<number> => {
      if (req.k === 'add') return Promise.resolve(req.a + req.b);
      if (req.how === 'request') return Promise.reject(new RequestError(WireError.ENV_NOT_FOUND, 'no such environment'));
      return Promise.reject(new TypeError('a bug in a request handler'));
    },
  };
  const a = new Channel<Note, Req, Note, Req, Replies>(port(() => ends.b, () => deliverToB), {
    name: 'primary', maxPending: 8, maxQueuedBytes: options.maxQueuedBytes ?? 1 << 20, overflow: options.overflow ?? (() => undefined), ...handlers,
  });
  const b = new Channel<Note, Req, Note, Req, Replies>(port(() => ends.a, () => true), {
    name: 'worker', maxPending: 8, maxQueuedBytes: 1 << 20, overflow: () => undefined, ...handlers,
  });
  // Read by the ports only once a message is on its way, after this.
  const ends: { a: Channel<Note, Req, Note, Req, Replies>; b: Channel<Note, Req, Note, Req, Replies> } = { a, b };
  return { a, b, notes, hold: () => (deliverToB = false) };
}

describe('Channel', () => {
  test('notes arrive in order; requests get their typed answers', async () => {
    const { a, notes } = pair();
    a.notify({ k: 'hi', n: 1 });
    a.notify({ k: 'hi', n: 2 });
    assert.equal(await a.request({ k: 'add', a: 2, b: 3 }, 1000), 5);
    assert.deepEqual(notes, [{ k: 'hi', n: 1 }, { k: 'hi', n: 2 }]);
  });

  test('a RequestError keeps its wire status; any other failure is INTERNAL and reported with its stack', async () => {
    const { a } = pair();
    await assert.rejects(a.request({ k: 'fail', how: 'request' }, 1000), (e: unknown) => e instanceof RequestError && e.status === WireError.ENV_NOT_FOUND);
    const write = process.stderr.write.bind(process.stderr);
    let logged = '';
    process.stderr.write = ((chunk: string) => ((logged += chunk), true));
    try {
      await assert.rejects(a.request({ k: 'fail', how: 'bug' }, 1000), (e: unknown) => e instanceof RequestError && e.status === WireError.INTERNAL && !/TypeError/.test(e.message));
      a.notify({ k: 'boom' });
      await waitFor('the note handler\'s failure reported', () => /a bug in a note handler/.test(logged));
    } finally {
      process.stderr.write = write;
    }
    assert.match(logged, /TypeError: a bug in a request handler\n\s+at /);
    assert.match(logged, /Error: a bug in a note handler/);
    assert.equal(await a.request({ k: 'add', a: 1, b: 1 }, 1000), 2, 'the channel goes on');
  });

  test('an end that stops taking messages is reported once its queue passes the bound; its requests time out', async () => {
    let overflowed = 0;
    const { a, hold } = pair({ maxQueuedBytes: 4096, overflow: () => overflowed++ });
    hold();
    await assert.rejects(a.request({ k: 'add', a: 1, b: 2 }, 30), (e: unknown) => e instanceof RequestError && e.status === WireError.TIMEOUT);
    for (let i = 0; i < 10; i++) a.notify({ k: 'hi', n: i }, 1024);
    assert.ok(a.queuedBytes > 4096);
    assert.equal(overflowed, 1, 'reported once');
  });

  test('close fails every waiting request and refuses new ones', async () => {
    const { a, hold } = pair();
    hold();
    const waiting = a.request({ k: 'add', a: 1, b: 2 }, 10_000);
    a.close('the worker exited');
    await assert.rejects(waiting, (e: unknown) => e instanceof RequestError && e.status === WireError.SHUTTING_DOWN && /the worker exited/.test(e.message));
    await assert.rejects(a.request({ k: 'add', a: 1, b: 2 }, 1000), /closed/);
  });
});
