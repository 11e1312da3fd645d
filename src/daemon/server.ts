/**
 * The daemon's HTTP app: shared middleware (auth, body bounds, audit) and every resource's
 * routes (src/daemon/routes/). Handlers parse their input against the route table
 * (src/api/routes.ts) and call one core method; the plumbing lives in src/daemon/http/.
 */
import { Hono } from 'hono';
import { NookError } from '../api/errors.js';
import type { Nook } from '../core/nook.js';
import { answerWith, auditCalls } from './http/audit.js';
import { requireToken } from './http/auth.js';
import { requireTokenOrSession } from './http/console-auth.js';
import { registerConsole } from './http/console-static.js';
import { boundedBodies } from './http/body.js';
import { errorBody } from './http/errors.js';
import { resources, type AppOptions } from './routes/index.js';

export type { AppOptions } from './routes/index.js';

export function buildApp(nook: Nook, options: AppOptions): Hono {
  const app = new Hono();
  const answer = answerWith(nook.audit);

  // An error inside an audited call is its outcome: answer() records it and adds the receipt.
  app.onError((e, c) => {
    const err = errorBody(e);
    return answer(c, err.toJSON(), err.status as 400);
  });
  app.notFound((c) => c.json(new NookError('NOT_FOUND', `no endpoint ${c.req.method} ${c.req.path}`, { hint: 'see GET /v1/openapi.json' }).toJSON(), 404));

  // On the TCP listener: the bearer token, or a web console session (whose pages are served there).
  if (options.token && options.console) app.use('*', requireTokenOrSession(options.token, options.console));
  else if (options.token) app.use('*', requireToken(options.token));
  app.use('*', boundedBodies());
  app.use('*', auditCalls(nook, options.token ? 'tcp' : 'unix'));

  for (const resource of resources) resource.register(app, { nook, options, answer });
  if (options.token && options.console) registerConsole(app, options.console);
  return app;
}
