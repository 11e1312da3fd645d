/**
 * A Connect server stream as an HTTP response: enveloped JSON messages, back-pressure (send
 * answers false while the client is behind), keepalives while idle, and one end-of-stream
 * envelope. The client going away (cancel or a closed socket) calls onGone once.
 */
import { ConnectError, endOfStream, envelope } from './connect.js';

/** What the stream buffers before send() asks the producer to pause. */
const HIGH_WATER_BYTES = 256 * 1024;

export class ServerStream {
  readonly response: Response;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private finished = false;
  private drained: (() => void)[] = [];
  private keepalive: NodeJS.Timeout | undefined;
  private lastSent = Date.now();
  private goneHandlers: (() => void)[] = [];

  constructor(signal: AbortSignal, keepaliveMessage: object, keepaliveMs: number) {
    const body = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        pull: () => {
          for (const f of this.drained.splice(0)) f();
        },
        cancel: () => this.gone(),
      },
      { highWaterMark: HIGH_WATER_BYTES, size: (chunk) => chunk.byteLength },
    );
    this.response = new Response(body, { status: 200, headers: { 'content-type': 'application/connect+json' } });
    signal.addEventListener('abort', () => this.gone(), { once: true });
    this.keepalive = setInterval(() => {
      if (Date.now() - this.lastSent >= keepaliveMs) this.send(keepaliveMessage);
    }, Math.max(250, Math.floor(keepaliveMs / 2)));
    this.keepalive.unref();
  }

  get open(): boolean {
    return !this.finished;
  }

  /** Called once when the client goes away before end(). */
  onGone(f: () => void): void {
    this.goneHandlers.push(f);
  }

  private gone(): void {
    if (this.finished) return;
    this.stop();
    for (const f of this.goneHandlers.splice(0)) f();
  }

  private stop(): void {
    this.finished = true;
    clearInterval(this.keepalive);
    for (const f of this.drained.splice(0)) f();
  }

  /** Sends a message; false when the client is behind (wait with whenDrained). */
  send(message: object): boolean {
    if (this.finished || !this.controller) return true;
    this.lastSent = Date.now();
    try {
      this.controller.enqueue(envelope(0, message));
    } catch {
      this.gone();
      return true;
    }
    return (this.controller.desiredSize ?? 1) > 0;
  }

  whenDrained(f: () => void): void {
    if (this.finished || (this.controller?.desiredSize ?? 1) > 0) f();
    else this.drained.push(f);
  }

  /** The end-of-stream envelope (with the error, if any); then the response ends. */
  end(error?: ConnectError): void {
    if (this.finished) return;
    try {
      this.controller?.enqueue(endOfStream(error));
      this.controller?.close();
    } catch {
      // the client is gone already
    }
    this.stop();
  }
}

/** Keepalive-Ping-Interval (seconds) as ms, bounded to 1-300 s; 50 s when absent. */
export function keepaliveMs(header: string | undefined): number {
  const s = Number(header);
  return Number.isFinite(s) && s >= 1 ? Math.min(300, s) * 1000 : 50_000;
}
