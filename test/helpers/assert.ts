import assert from 'node:assert/strict';
import { NookError } from '../../src/api/errors.js';

/** Awaits `p` and asserts it failed with a NookError of `code` (and a message matching `message`); returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<NookError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NookError, `expected a NookError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected ${code}`);
}
