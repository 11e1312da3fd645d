/** Path and query parameters, checked against the route table's schemas. */
import type { Context } from 'hono';
import type { z } from 'zod';
import { NookError } from '../../api/errors.js';
import { routes, type RouteDef, type RouteName } from '../../api/routes.js';

type Where = 'body' | 'query' | 'path';

/** The 400 for input that does not fit its schema, naming the first bad field. */
export function invalidInput(issues: z.core.$ZodIssue[], where: Where): NookError {
  const first = issues[0];
  const field = first?.path.length ? first.path.join('.') : undefined;
  const badName = first?.path.length === 1 && (first.path[0] === 'name' || first.path[0] === 'image');
  const label = where === 'body' ? (field ?? 'body') : `${where} parameter ${field ?? '?'}`;
  return new NookError(badName ? 'INVALID_NAME' : 'INVALID_ARGUMENT', `${label}: ${first?.message ?? 'invalid'}`, {
    hint: badName ? 'for example: my-agent-1' : `see /v1/openapi.json for the request ${where === 'body' ? 'schema' : 'parameters'}`,
    context: { issues: issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
  });
}

/** True when a field takes every value of a repeated parameter (an array, maybe optional or transformed). */
function takesMany(t: z.core.$ZodType): boolean {
  const def = t._zod.def as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
  if (def.type === 'array') return true;
  const inner = def.innerType ?? def.in;
  return inner ? takesMany(inner) : false;
}

/** The query parameters `schema` names, validated (400 INVALID_ARGUMENT naming the parameter). */
export function readQuery<S extends z.ZodObject>(c: Context, schema: S): z.output<S> {
  const raw: Record<string, string | string[]> = {};
  for (const [key, field] of Object.entries(schema.shape)) {
    const values = c.req.queries(key);
    if (values?.length) raw[key] = takesMany(field) ? values : (values[0] as string);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalidInput(parsed.error.issues, 'query');
  return parsed.data;
}

/** The path parameters `schema` names, validated like the query. */
export function readParams<S extends z.ZodObject>(c: Context, schema: S): z.output<S> {
  const parsed = schema.safeParse(c.req.param());
  if (!parsed.success) throw invalidInput(parsed.error.issues, 'path');
  return parsed.data;
}

/** Path parameters as the client meant them; a malformed escape is the client's error, not a 500. */
export function decodeParams(params: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      throw new NookError('INVALID_ARGUMENT', `the path parameter ${k} has a malformed %-escape`, { hint: 'percent-encode names with encodeURIComponent' });
    }
  }
  return out;
}

/** A mutating route of the table, with a matcher for its concrete paths. */
interface MutatingRoute {
  action: RouteName;
  method: string;
  re: RegExp;
}

const mutating: MutatingRoute[] = (Object.entries(routes) as [RouteName, RouteDef][])
  .filter(([, d]) => d.method !== 'get')
  .map(([action, d]) => ({ action, method: d.method.toUpperCase(), re: new RegExp(`^${d.path.replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`) }));

/** The mutating route a request is for, with its raw path parameters; undefined for reads and unknown paths. */
export function mutatingRoute(c: Context): { action: RouteName; rawParams: Record<string, string> } | undefined {
  for (const r of mutating) {
    if (r.method !== c.req.method) continue;
    const m = r.re.exec(c.req.path);
    if (m) return { action: r.action, rawParams: m.groups ?? {} };
  }
  return undefined;
}
