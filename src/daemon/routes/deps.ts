/** What every resource module gets, and the helpers they share to register routes from the table. */
import type { Context, Handler, Hono } from 'hono';
import { routes, type RouteName } from '../../api/routes.js';
import type { Nook } from '../../core/nook.js';
import type { Answer } from '../http/audit.js';
import type { ConsoleAuth } from '../http/console-auth.js';

export interface AppOptions {
  /** Required bearer token (the TCP listener); the unix socket relies on its file mode. */
  token?: string;
  onShutdown: (release: boolean) => void;
  /** The web console's logins, shared by every listener; its pages are served where a token is set. */
  console?: ConsoleAuth;
}

export interface RouteDeps {
  nook: Nook;
  options: AppOptions;
  /** Answers JSON, with the receipt of an audited call. */
  answer: Answer;
}

/** Registers `handler` for the route table's entry `name` (its method and path). */
export function on(app: Hono, name: RouteName, handler: Handler): void {
  const def = routes[name];
  app.on(def.method.toUpperCase(), def.path.replace(/\{(\w+)\}/g, ':$1'), handler);
}

/** The {ref} path parameter: a sandbox name or id. */
export const ref = (c: Context): string => c.req.param('ref') ?? '';
/** Another path parameter by name. */
export const param = (c: Context, name: string): string => c.req.param(name) ?? '';
