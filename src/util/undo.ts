/**
 * An undo stack for multi-step operations: register an undo after each side effect; on
 * failure `rollback` runs them newest first and keeps going past undo failures, so a failed
 * create leaves nothing half-made.
 */
export class UndoStack {
  private readonly steps: { what: string; undo: () => Promise<void> | void }[] = [];

  push(what: string, undo: () => Promise<void> | void): void {
    this.steps.push({ what, undo });
  }

  async rollback(log: (msg: string) => void = () => undefined): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      if (!step) break;
      try {
        await step.undo();
      } catch (e) {
        log(`rollback: undoing ${step.what} failed: ${(e as Error).message}`);
      }
    }
  }
}
