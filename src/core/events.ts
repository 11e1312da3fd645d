import { EventEmitter } from 'node:events';
import type { NookEvent } from '../api/schemas.js';

/** Lifecycle events as they happen, for `nook events` and `client.events()`. In memory only. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open `events` stream is a listener; none of them should warn.
    this.emitter.setMaxListeners(0);
  }

  publish(type: string, fields: { sandbox?: string; sandboxId?: string; detail?: Record<string, unknown> } = {}): void {
    const event: NookEvent = { at: new Date().toISOString(), type, ...fields };
    this.emitter.emit('event', event);
  }

  subscribe(listener: (e: NookEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
