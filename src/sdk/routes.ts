/**
 * Requests derived from the route table (api/routes.ts): the method and the path of every
 * call come from the route's definition, path parameters filled in encoded, so the SDK
 * cannot drift from what the daemon serves. `pathOf(routes.getSandbox, { ref })`.
 */
import type { z } from 'zod';
import { InvalidArgumentError } from '../api/error-classes.js';
import type { RouteRef } from '../api/route-refs.js';
import type { RouteDef } from '../api/routes.js';
import type { CallOptions, Transport } from './transport.js';

/** `'/sandboxes/{ref}/processes/{proc}'` → `'ref' | 'proc'`. */
export type PathParamNames<P extends string> = P extends `${string}{${infer K}}${infer Rest}` ? K | PathParamNames<Rest> : never;
export type PathParams<P extends string> = { [K in PathParamNames<P>]: string | number };

/** What a route answers (JSON), from its response schema. */
export type ResponseOf<R extends RouteDef> = z.output<R['response']>;
/** One NDJSON event of a streaming route: its streamEvent schema, else its response schema. */
export type EventOf<R extends RouteDef> = R['streamEvent'] extends z.ZodType ? z.output<R['streamEvent']> : z.output<R['response']>;

type GetRoute = RouteDef & { method: 'get' };

/** The route's path with each `{name}` replaced by the encoded parameter. */
export function pathOf<R extends RouteDef>(route: R | RouteRef<R>, params: PathParams<R['path']>): string {
  const values = params as Record<string, string | number | undefined>;
  return route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined || value === '') throw new InvalidArgumentError(`${route.path}: the ${name} is missing`, { hint: `pass a ${name}` });
    return encodeURIComponent(String(value));
  });
}

/**
 * What the route-addressed calls need from a transport: the Node one (unix socket or TCP)
 * or the browser's (fetch with the console's session cookie, sdk/browser.ts).
 */
export type ApiTransport = Pick<Transport, 'json' | 'stream' | 'bytes' | 'rawStream' | 'download' | 'baseUrl' | 'socketPath' | 'authHeaders' | 'actorHeaders'>;

/** The transport, addressed by route: `api.json(routes.getSandbox, { ref })`. */
export class Api {
  constructor(readonly transport: ApiTransport) {}

  json<R extends RouteDef>(route: RouteRef<R>, params: PathParams<R['path']>, options: CallOptions = {}): Promise<ResponseOf<R>> {
    return this.transport.json<ResponseOf<R>>(route.method.toUpperCase(), pathOf(route, params), options);
  }

  stream<R extends RouteDef>(route: RouteRef<R>, params: PathParams<R['path']>, options: CallOptions = {}): AsyncGenerator<EventOf<R>> {
    return this.transport.stream<EventOf<R>>(route.method.toUpperCase(), pathOf(route, params), options);
  }

  bytes<R extends GetRoute>(route: RouteRef<R>, params: PathParams<R['path']>, options: CallOptions = {}): ReturnType<Transport['bytes']> {
    return this.transport.bytes(pathOf(route, params), options);
  }

  rawStream<R extends GetRoute>(route: RouteRef<R>, params: PathParams<R['path']>, options: CallOptions = {}): ReturnType<Transport['rawStream']> {
    return this.transport.rawStream(pathOf(route, params), options);
  }

  download<R extends GetRoute>(route: RouteRef<R>, params: PathParams<R['path']>, dest: string, options: CallOptions = {}): Promise<number> {
    return this.transport.download(pathOf(route, params), dest, options);
  }
}
