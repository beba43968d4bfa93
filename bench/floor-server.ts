/**
 * The floor: a bare Node.js fan-out with the same process layout as the
 * server (a cluster of workers accepting on a shared socket, SCHED_NONE).
 * No protocol, no state: on command, every worker writes one pre-built frame
 * of the requested size to each of its sockets. Whatever the server adds on
 * top of this is the cost of being a config server.
 *
 * Forked by bench/run.ts; IPC messages: FloorCommand / FloorReply.
 */
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';

export type FloorCommand =
  /** `cap`: connections per worker, as the server's (a full worker closes new ones at once). */
  | { k: 'start'; workers: number; listen: string[]; cap: number }
  | { k: 'count' }
  | { k: 'fanout'; bytes: number }
  | { k: 'stop' };

export type FloorReply =
  | { k: 'listening' }
  | { k: 'count'; connections: number };

type ToWorker = { k: 'fanout'; bytes: number } | { k: 'count'; id: number };
type FromWorker = { k: 'listening' } | { k: 'count'; id: number; connections: number };

/** A frame of `bytes` bytes in all: a length prefix and filler. */
function frameOf(bytes: number): Buffer {
  const frame = Buffer.alloc(bytes, 0x61);
  frame.writeUInt32BE(bytes - 4, 0);
  return frame;
}

if (cluster.isPrimary) {
  let workers: Worker[] = [];
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    for (const w of workers) w.process.kill('SIGUSR2');
    const m = process.memoryUsage();
    process.stderr.write(`floor: primary pid ${process.pid}: rss ${Math.round(m.rss / 1024)} KiB, heap used ${Math.round(m.heapUsed / 1024)} KiB\n`);
  });
  let countId = 0;
  const counts = new Map<number, number[]>();
  process.on('message', (command: FloorCommand) => {
    switch (command.k) {
      case 'start': {
        cluster.schedulingPolicy = cluster.SCHED_NONE;
        cluster.setupPrimary({ serialization: 'advanced', args: [JSON.stringify(command.listen), String(command.cap)] });
        let listening = 0;
        workers = Array.from({ length: command.workers }, () => {
          const worker = cluster.fork();
          worker.on('message', (m: FromWorker) => {
            if (m.k === 'listening' && ++listening === command.workers) process.send!({ k: 'listening' } satisfies FloorReply);
            if (m.k === 'count') {
              const parts = counts.get(m.id)!;
              parts.push(m.connections);
              if (parts.length === workers.length) {
                counts.delete(m.id);
                process.send!({ k: 'count', connections: parts.reduce((a, b) => a + b, 0) } satisfies FloorReply);
              }
            }
          });
          return worker;
        });
        return;
      }
      case 'count': {
        const id = ++countId;
        counts.set(id, []);
        for (const w of workers) w.send({ k: 'count', id } satisfies ToWorker);
        return;
      }
      case 'fanout':
        for (const w of workers) w.send({ k: 'fanout', bytes: command.bytes } satisfies ToWorker);
        return;
      case 'stop':
        for (const w of workers) w.kill('SIGKILL');
        process.exit(0);
    }
  });
} else {
  const listen = JSON.parse(process.argv[2]) as string[];
  const cap = Number(process.argv[3]);
  const sockets = new Set<net.Socket>();
  // A greeting frame, the floor's counterpart of the server's hello: the
  // client knows the connection was really accepted (not lost in the accept queue).
  const greeting = frameOf(8);
  // Like the server: a full worker stops listening (so it does not win accepts
  // it must refuse) and listens again below 95% of its cap.
  const listeners: net.Server[] = [];
  let reopening = false;
  const capacity = (): void => {
    if (listeners.length > 0 && sockets.size >= cap) {
      for (const l of listeners.splice(0)) l.close();
    } else if (listeners.length === 0 && !reopening && sockets.size < cap * 0.95) {
      reopening = true;
      void open().finally(() => (reopening = false));
    }
  };
  const open = async (): Promise<void> => {
    for (const address of listen) {
      const i = address.lastIndexOf(':');
      const server = net.createServer({ noDelay: true }, (socket) => {
        if (sockets.size >= cap) {
          socket.destroy();
          return;
        }
        sockets.add(socket);
        socket.write(greeting);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          sockets.delete(socket);
          capacity();
        });
        socket.resume();
        capacity();
      });
      await new Promise<void>((resolve) => server.listen({ host: address.slice(0, i), port: Number(address.slice(i + 1)), backlog: 4096 }, () => resolve()));
      server.on('error', () => undefined);
      listeners.push(server);
    }
  };
  void open().then(() => process.send!({ k: 'listening' } satisfies FromWorker));
  process.on('message', (m: ToWorker) => {
    if (m.k === 'count') process.send!({ k: 'count', id: m.id, connections: sockets.size } satisfies FromWorker);
    if (m.k === 'fanout') {
      const frame = frameOf(m.bytes);
      for (const socket of sockets) socket.write(frame);
    }
  });
  process.on('disconnect', () => process.exit(0));
  // Same measurement as the server's: collect garbage on SIGUSR2 (Node runs with --expose-gc).
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    try {
      const m = process.memoryUsage();
      process.stderr.write(`floor: worker pid ${process.pid}: rss ${Math.round(m.rss / 1024)} KiB, heap used ${Math.round(m.heapUsed / 1024)} KiB\n`);
    } catch {
      // at the file limit /proc cannot be opened
    }
  });
}
