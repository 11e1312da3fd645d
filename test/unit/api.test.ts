import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CODES, httpStatusFor, isErrorCode, NookError } from '../../src/api/errors.js';
import { openApiDocument } from '../../src/api/openapi.js';
import { CreateSandboxRequest, ExecRequest, NAME_PATTERN } from '../../src/api/schemas.js';
import { toError } from '../../src/sdk/transport.js';

describe('error table', () => {
  it('maps every code to an HTTP error status', () => {
    for (const code of Object.keys(ERROR_CODES)) {
      assert.ok(isErrorCode(code));
      const status = httpStatusFor[code as keyof typeof ERROR_CODES];
      assert.ok(status >= 400 && status < 600, `${code} -> ${status}`);
    }
    assert.equal(isErrorCode('NOPE'), false);
  });
  it('round-trips through the wire shape to the same typed error', () => {
    const e = new NookError('NAME_TAKEN', 'taken', { hint: 'pick another', context: { name: 'x' } });
    const back = toError(JSON.parse(JSON.stringify(e)), 409);
    assert.ok(back instanceof NookError);
    assert.deepEqual(back.toJSON(), e.toJSON());
    assert.equal(back.status, 409);
  });
  it('turns an unknown body into INTERNAL rather than trusting it', () => {
    assert.equal(toError({ code: 'MADE_UP', message: 'x' }, 500).code, 'INTERNAL');
  });
});

describe('schemas', () => {
  it('accepts valid names and refuses the rest', () => {
    for (const ok of ['a', 'agent-1', '0abc', 'a'.repeat(63)]) assert.match(ok, NAME_PATTERN);
    for (const bad of ['', '-a', 'A', 'a_b', 'a'.repeat(64), 'a b', 'é']) assert.doesNotMatch(bad, NAME_PATTERN);
  });
  it('refuses unknown fields so typos are not silently ignored', () => {
    assert.equal(CreateSandboxRequest.safeParse({ nmae: 'x' }).success, false);
    assert.equal(ExecRequest.safeParse({ argv: ['x'], timeout: 5 }).success, false);
  });
  it('bounds exec time and output', () => {
    assert.equal(ExecRequest.safeParse({ argv: ['x'], timeoutMs: 24 * 3600 * 1000 + 1 }).success, false);
    assert.equal(ExecRequest.safeParse({ argv: ['x'], maxOutputBytes: 65 * 1024 * 1024 }).success, false);
    assert.equal(ExecRequest.safeParse({ argv: ['x'], timeoutMs: 1000, maxOutputBytes: 0 }).success, true);
  });
});

describe('OpenAPI document', () => {
  it('is generated with JSON schemas for bodies and responses', () => {
    const doc = openApiDocument('test') as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>> };
    const create = doc.paths['/v1/sandboxes']?.post;
    const props = create?.requestBody?.content['application/json']?.schema.properties ?? {};
    assert.ok('memoryMiB' in props && 'ttlMs' in props && 'name' in props);
  });
});
