import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConflictError,
  createNookError,
  ERROR_CLASSES,
  FileNotFoundError,
  InternalError,
  InvalidArgumentError,
  NoSpaceError,
  NotFoundError,
  ProcessNotFoundError,
  RegistryError,
  SandboxNotFoundError,
  VolumeBusyError,
  VolumeNotFoundError,
} from '../../src/api/error-classes.js';
import { ERROR_CODES, NookError, type ErrorCode } from '../../src/api/errors.js';
import { toError } from '../../src/sdk/transport.js';

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

/** The family a status belongs to; codes of other statuses sit right under NookError. */
const FAMILIES: Record<number, abstract new (...args: never[]) => NookError> = {
  400: InvalidArgumentError,
  404: NotFoundError,
  409: ConflictError,
  500: InternalError,
  502: RegistryError,
};

describe('error tree', () => {
  it('has a class for every code of the table, and builds it from the code', () => {
    assert.deepEqual(Object.keys(ERROR_CLASSES).sort(), [...codes].sort());
    for (const code of codes) {
      const e = createNookError(code, 'm', { hint: 'h' });
      assert.ok(e instanceof ERROR_CLASSES[code], code);
      assert.ok(e instanceof NookError && e instanceof Error, code);
      assert.equal(e.code, code);
      assert.equal(e.status, ERROR_CODES[code]);
      assert.equal(e.hint, 'h');
      assert.equal(e.name, ERROR_CLASSES[code].name, 'the name says the class, for stack traces');
    }
  });

  it('puts each code under the family of its HTTP status, and only there', () => {
    for (const code of codes) {
      const e = createNookError(code, 'm');
      for (const [status, Family] of Object.entries(FAMILIES)) {
        assert.equal(e instanceof Family, ERROR_CODES[code] === Number(status), `${code} (${ERROR_CODES[code]}) vs ${Family.name}`);
      }
    }
  });

  it('gives each kind of missing thing its own NotFoundError subclass', () => {
    const pairs: [ErrorCode, new (m: string) => NookError][] = [
      ['SANDBOX_NOT_FOUND', SandboxNotFoundError],
      ['PROCESS_NOT_FOUND', ProcessNotFoundError],
      ['VOLUME_NOT_FOUND', VolumeNotFoundError],
      ['FILE_NOT_FOUND', FileNotFoundError],
    ];
    for (const [code, Class] of pairs) {
      const e = toError({ code, message: 'gone' }, 404);
      assert.ok(e instanceof Class && e instanceof NotFoundError && e instanceof NookError, code);
      for (const [, Other] of pairs) if (Other !== Class) assert.ok(!(e instanceof Other), `${code} is not a ${Other.name}`);
    }
    const generic = toError({ code: 'NOT_FOUND', message: 'no endpoint' }, 404);
    assert.ok(generic instanceof NotFoundError && !(generic instanceof SandboxNotFoundError));
  });

  it('carries the context across the wire, typed by the class', () => {
    const holders = [{ pid: 10, nsPid: 2, command: 'sleep 100', uses: ['cwd'] }];
    const thrown = new NookError('VOLUME_BUSY', 'busy', { hint: 'stop them', context: { holders, sandbox: 'a', path: '/cache' } });
    const back = toError(JSON.parse(JSON.stringify(thrown)), 409);
    assert.ok(back instanceof VolumeBusyError && back instanceof ConflictError);
    // Typed: no cast needed to reach holders[0].pid.
    assert.equal(back.context?.holders[0]?.pid, 10);
    assert.deepEqual(back.toJSON(), thrown.toJSON());

    const full = toError({ code: 'NO_SPACE', message: 'full', context: { freeBytes: 5, minFreeBytes: 10 } }, 507);
    assert.ok(full instanceof NoSpaceError);
    assert.equal(full.context?.freeBytes, 5);
  });

  it('checks a thrown context against its code at compile time', () => {
    // These lines are the test: each @ts-expect-error fails the build if the mistake compiles.
    // @ts-expect-error holders must be a list of processes
    void new NookError('VOLUME_BUSY', 'x', { context: { holders: 'none' } });
    // @ts-expect-error SANDBOX_NOT_FOUND's context is { ref }
    void new NookError('SANDBOX_NOT_FOUND', 'x', { context: { name: 'a' } });
    // @ts-expect-error NO_SPACE needs the free bytes
    void new SandboxNotFoundError('x', { context: { freeBytes: 1 } });
    // @ts-expect-error not a code of the table
    void new NookError('NOPE', 'x');
    assert.ok(new NookError('SANDBOX_NOT_FOUND', 'x', { context: { ref: 'a' } }));
  });

  it('turns an unknown code or a malformed body into INTERNAL rather than trusting it', () => {
    const e = toError({ code: 'MADE_UP', message: 'x' }, 500);
    assert.ok(e instanceof InternalError);
    assert.equal(e.code, 'INTERNAL');
    const odd = toError({ code: 'SANDBOX_NOT_FOUND', message: 42, hint: {}, context: 'x' }, 404);
    assert.ok(odd instanceof SandboxNotFoundError);
    assert.equal(odd.message, 'HTTP 404');
    assert.equal(odd.hint, undefined);
    assert.equal(odd.context, undefined);
  });
});
