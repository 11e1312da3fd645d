import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CODES, httpStatusFor, isErrorCode, NookError } from '../../src/api/errors.js';
import { openApiDocument } from '../../src/api/openapi.js';
import { routes, type RouteDef } from '../../src/api/routes.js';
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
  it('lists every query parameter of the route table with its schema', () => {
    type Param = { name: string; in: string; required: boolean; schema: { type?: string; enum?: string[]; default?: unknown; minimum?: number } };
    const doc = openApiDocument('test') as { paths: Record<string, Record<string, { parameters: Param[] }>> };
    const params = (path: string, method: string): Param[] => doc.paths[path]?.[method]?.parameters ?? [];
    const destroy = params('/v1/sandboxes/{ref}', 'delete').find((p) => p.name === 'withSnapshots');
    assert.deepEqual([destroy?.in, destroy?.required, destroy?.schema.enum], ['query', false, ['true', 'false']]);
    const maxBytes = params('/v1/sandboxes/{ref}/files/content', 'get').find((p) => p.name === 'maxBytes');
    assert.deepEqual([maxBytes?.in, maxBytes?.schema.type, maxBytes?.schema.default, maxBytes?.schema.minimum], ['query', 'integer', 16 * 1024 * 1024, 0]);
    const importName = params('/v1/images/import', 'post').find((p) => p.name === 'name');
    assert.equal(importName?.required, true);
    const port = params('/v1/sandboxes/{ref}/expose/{port}', 'delete').find((p) => p.name === 'port');
    assert.deepEqual([port?.in, port?.schema.type], ['path', 'integer']);
    // Every route's query schema reaches the document, parameter for parameter.
    for (const def of Object.values(routes) as RouteDef[]) {
      const listed = params(def.path, def.method).filter((p) => p.in === 'query').map((p) => p.name);
      assert.deepEqual(listed, Object.keys(def.query?.shape ?? {}), `${def.method} ${def.path}`);
    }
  });
});
