import { z } from 'zod';
import { ERROR_CODES } from './errors.js';
import { ApiError } from './schemas.js';
import { routes, type RouteDef } from './routes.js';

const NDJSON = 'application/x-ndjson';

function jsonSchema(schema: z.ZodType): unknown {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
}

interface ObjectSchema {
  properties?: Record<string, { description?: string } & Record<string, unknown>>;
  required?: string[];
}

/** Path and query parameters, with the route table's schemas (a path parameter without one is a string). */
function parameters(def: RouteDef): unknown[] {
  const pathSchemas = def.params ? (jsonSchema(def.params) as ObjectSchema).properties : undefined;
  const path = [...def.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: pathSchemas?.[m[1] ?? ''] ?? { type: 'string' } }));
  const query = def.query ? (jsonSchema(def.query) as ObjectSchema) : {};
  const queries = Object.entries(query.properties ?? {}).map(([name, { description, ...schema }]) => ({
    name,
    in: 'query',
    required: query.required?.includes(name) ?? false,
    ...(description ? { description } : {}),
    schema,
  }));
  return [...path, ...queries];
}

/** The OpenAPI 3.1 document, generated from the route table. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [operationId, def] of Object.entries(routes) as [string, RouteDef][]) {
    const binary = { schema: { type: 'string', format: 'binary' } };
    const ok: Record<string, unknown> =
      def.tar === 'response' ? { 'application/x-tar': binary } : 'binaryResponse' in def && def.binaryResponse ? { [def.binaryResponse]: binary } : { 'application/json': { schema: jsonSchema(def.response) } };
    if (def.streamEvent) ok[NDJSON] = { schema: jsonSchema(def.streamEvent), description: 'one event per line, when the body has stream: true' };
    const op: Record<string, unknown> = {
      operationId,
      summary: def.summary,
      parameters: parameters(def),
      responses: {
        '200': { description: 'OK', content: ok },
        default: { description: `An error; code is one of ${Object.keys(ERROR_CODES).join(', ')}`, content: { 'application/json': { schema: jsonSchema(ApiError) } } },
      },
    };
    if (def.body) op.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(def.body) } } };
    if (def.tar === 'body') op.requestBody = { required: true, content: { 'application/x-tar': binary } };
    (paths[def.path] ??= {})[def.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'nook', version, description: 'nookd HTTP API: sandboxes for AI agents and untrusted code.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Required on the TCP listener; the unix socket is guarded by its file mode.' } } },
    paths,
  };
}
