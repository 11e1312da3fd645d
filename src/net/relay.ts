/**
 * The daemon's side of `nook-init relay` (native/src/relay.c): once the egress proxy has
 * decided a connection and connected to the destination, both sockets go to the helper over
 * Node's IPC channel and the bytes move by splice(2) in the kernel, never through this
 * process. One helper per sandbox, started on its first relayed connection and stopped when
 * the sandbox's egress stops, or after a quiet spell with no relay open. It dies with the
 * daemon (PDEATHSIG, and its channel's end).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { log } from '../util/log.js';

export interface RelayResult {
  /** Bytes the helper moved client -> destination and back. */
  up: number;
  down: number;
  /** Why it ended early ('' when both sides closed): reset, idle timeout, egress stopped. */
  error: string;
}

interface DoneMessage {
  nookRelayDone: number;
  up: number;
  down: number;
  error: string;
}

function isDone(m: unknown): m is DoneMessage {
  return typeof m === 'object' && m !== null && typeof (m as DoneMessage).nookRelayDone === 'number';
}

/** A helper with no relay for this long exits (the next connection starts another, ~1 ms). */
const QUIET_EXIT_MS = 10_000;
const STOP_WAIT_MS = 2000;

export class SpliceRelay {
  private child: ChildProcess | undefined;
  private readonly open = new Map<number, { resolve: (r: RelayResult) => void; child: ChildProcess }>();
  private nextId = 1;
  private quiet: NodeJS.Timeout | undefined;

  constructor(
    private readonly binary: string,
    private readonly idleTimeoutMs: number,
    /** Shown in ps beside the helper (the sandbox's id). */
    private readonly label = '',
  ) {}

  /** Relays open now (they count against the proxy's connection cap). */
  get active(): number {
    return this.open.size;
  }

  /**
   * Hands both sockets to the helper; resolves when the relay ends. Node closes its copies of
   * the descriptors once the helper acknowledges each one, so nothing stays open here.
   */
  hand(client: Socket, upstream: Socket): Promise<RelayResult> {
    clearTimeout(this.quiet);
    const child = this.helper();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.open.set(id, { resolve, child });
      // keepOpen, then our copy closed once the descriptor is on its way: the socket ends here
      // like any other (the server's connection count drops), while the helper's copy lives.
      // Without `server`, Node would also track the socket as "sent to a worker" and hold the
      // server's close until that worker answers a poll this helper does not speak.
      const send = (side: 'c' | 'u', socket: Socket): void => {
        (socket as unknown as { server: unknown }).server = null;
        child.send({ nookRelay: id, side }, socket, { keepOpen: true }, (e) => {
          socket.destroy();
          if (e) this.settle(id, { up: 0, down: 0, error: `relay helper: ${e.message}` });
        });
      };
      send('c', client);
      send('u', upstream);
    });
  }

  /** Closes every relay (their counts still come back) and waits for the helper to exit. */
  async stop(): Promise<void> {
    clearTimeout(this.quiet);
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS);
    if (child.connected) child.send({ nook: 'stop' }, (e) => e && child.kill('SIGKILL'));
    else child.kill('SIGKILL');
    await exited;
    clearTimeout(killer);
  }

  private settle(id: number, result: RelayResult): void {
    const entry = this.open.get(id);
    if (!entry) return;
    this.open.delete(id);
    entry.resolve(result);
    if (this.open.size === 0 && this.child) {
      clearTimeout(this.quiet);
      this.quiet = setTimeout(() => this.open.size === 0 && void this.stop(), QUIET_EXIT_MS);
      this.quiet.unref();
    }
  }

  private helper(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.binary, ['relay', String(this.idleTimeoutMs), ...(this.label ? [this.label] : [])], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-1000)));
    child.on('message', (m: unknown) => {
      if (isDone(m)) this.settle(m.nookRelayDone, { up: m.up, down: m.down, error: m.error });
    });
    const gone = (why: string): void => {
      if (this.child === child) this.child = undefined;
      for (const [id, entry] of [...this.open]) if (entry.child === child) this.settle(id, { up: 0, down: 0, error: why });
    };
    child.on('error', (e) => {
      log('egress relay helper failed', { error: e.message });
      gone(`relay helper: ${e.message}`);
    });
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') log('egress relay helper exited', { code, signal, stderr: stderr.trim() });
      gone('the relay ended with its helper');
    });
    return child;
  }
}
