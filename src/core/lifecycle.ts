import { log } from '../util/log.js';

/**
 * Something that works around a sandbox's compute: the egress bridge, volumes, attachments,
 * restarted processes. Each step is optional.
 */
export interface ComputeParticipant {
  readonly name: string;
  /** Compute just came up (create, resume, recycle, restore, fork). A failure fails the start. */
  up?(sandboxId: string): Promise<void>;
  /** Compute is about to go down (stop, destroy, recycle). Failures are logged, never block. */
  down?(sandboxId: string): Promise<void>;
  /** The sandbox is destroyed: drop what is kept for it. */
  forget?(sandboxId: string): Promise<void> | void;
}

/**
 * The ordered compute lifecycle. core/nook.ts declares the order once; up runs it forwards
 * (network before volumes and attachments before restarted processes, so a process started
 * on resume sees its mounts and its proxy), down and forget run it backwards.
 */
export class ComputeLifecycle {
  private order: readonly ComputeParticipant[] | undefined;

  declare(order: readonly ComputeParticipant[]): void {
    if (this.order) throw new Error('the compute lifecycle is declared once, in core/nook.ts');
    this.order = order;
  }

  private get participants(): readonly ComputeParticipant[] {
    if (!this.order) throw new Error('the compute lifecycle was never declared');
    return this.order;
  }

  async up(sandboxId: string): Promise<void> {
    for (const p of this.participants) await p.up?.(sandboxId);
  }

  async down(sandboxId: string): Promise<void> {
    for (const p of [...this.participants].reverse()) {
      await p.down?.(sandboxId).catch((e: Error) => log('compute down: a step failed', { sandboxId, step: p.name, error: e.message }));
    }
  }

  async forget(sandboxId: string): Promise<void> {
    for (const p of [...this.participants].reverse()) await p.forget?.(sandboxId);
  }

  /** The declared order, for `nook status` and the architecture doc's test. */
  names(): string[] {
    return this.participants.map((p) => p.name);
  }
}
