import net from 'node:net';
import {
  decodeBody, encodeMessage, FrameDecoder, MessageType,
  type ErrorMessage, type Message,
} from '../../src/protocol/index.js';
import { ScramClient } from './login.js';

const LOOSE = { maxElements: 1e8, maxDepth: 64 };

/**
 * A bare protocol client for real-process tests: connects, records every
 * message, and can follow one environment the way an agent does (hello,
 * subscribe from 0, releases checked for gaps).
 */
export class RawClient {
  readonly socket: net.Socket;
  readonly received: Message[] = [];
  closed = false;
  readonly closedAt: Promise<number>;
  private readonly decoder = new FrameDecoder(512 * 1024 * 1024);
  /** Set by `follow`: the revision held and every problem seen. */
  held = 0;
  gaps = 0;
  releases = 0;
  private following?: string;

  constructor(target: { host: string; port: number }, localAddress?: string) {
    this.socket = net.connect({ ...target, ...(localAddress === undefined ? {} : { localAddress }) });
    this.socket.on('error', () => undefined);
    this.closedAt = new Promise((resolve) => this.socket.once('close', () => {
      this.closed = true;
      resolve(Date.now());
    }));
    this.socket.on('data', (chunk: Buffer) => {
      let bodies: Buffer[];
      try {
        bodies = this.decoder.push(chunk);
      } catch {
        this.socket.destroy();
        return;
      }
      for (const body of bodies) this.onMessage(decodeBody(body, LOOSE));
    });
  }

  get errors(): ErrorMessage[] {
    return this.received.filter((m): m is ErrorMessage => m.t === MessageType.Error);
  }

  /** Resolves once the server's hello (or an error, or the close) has come. */
  greeted(timeoutMs = 10_000): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.received.some((m) => m.t === MessageType.Hello)) done(true);
        else if (this.closed || this.errors.length > 0) done(false);
      };
      const done = (value: boolean): void => {
        clearInterval(timer);
        resolve(value);
      };
      const timer = setInterval(check, 10);
      setTimeout(() => done(false), timeoutMs).unref();
      check();
    });
  }

  send(...messages: Message[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(messages.map((m) => encodeMessage(m))));
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Logs in (after the server's hello); then runs `then`. */
  login(scram: ScramClient, id = 'raw-client', then: () => void = () => undefined): void {
    this.scram = scram;
    this.afterLogin = then;
    this.send(scram.hello(id));
  }

  /** Logs in as an agent with `token` and follows `env` from revision 0. */
  follow(env: string, token: string, id = 'raw-agent'): void {
    this.following = env;
    this.login(ScramClient.agent(token), id, () => this.send({ t: MessageType.Subscribe, all: false, envs: [{ env, rev: 0 }] }));
  }

  /** The server's Welcome arrived and its signature checked. */
  get loggedIn(): boolean {
    return this.welcomed;
  }

  close(): void {
    this.socket.destroy();
  }

  private scram: ScramClient | undefined;
  private afterLogin: () => void = () => undefined;
  private welcomed = false;

  private onMessage(message: Message): void {
    if (message.t === MessageType.Challenge && this.scram !== undefined) this.send(this.scram.proof(message));
    if (message.t === MessageType.Welcome && this.scram !== undefined) {
      if (!this.scram.verify(message)) {
        this.socket.destroy();
        return;
      }
      this.welcomed = true;
      this.afterLogin();
    }
    this.received.push(message);
    if (this.following === undefined) return;
    if (message.t === MessageType.Snapshot && message.env === this.following) {
      this.held = message.rev;
    } else if (message.t === MessageType.Release && message.env === this.following) {
      if (message.prev !== this.held) this.gaps++;
      this.held = message.rev;
      this.releases++;
    }
    // Keep only what tests look at, so a thousand clients stay small.
    if (message.t === MessageType.Release || message.t === MessageType.Snapshot) this.received.pop();
  }
}
