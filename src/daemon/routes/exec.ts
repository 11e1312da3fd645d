/** Commands: exec in a sandbox and one-shot run, answered as JSON or (stream: true) as NDJSON ExecEvents. */
import type { Hono } from 'hono';
import type { ExecEvent } from '../../api/schemas.js';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { errorEvent, ndjson } from '../http/ndjson.js';
import { on, ref, type RouteDeps } from './deps.js';

/** Output callbacks that turn a command's bytes into stdout/stderr events. */
function execSink(emit: (e: ExecEvent) => void): { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void } {
  return {
    onStdout: (b) => emit({ type: 'stdout', data: b.toString('base64') }),
    onStderr: (b) => emit({ type: 'stderr', data: b.toString('base64') }),
  };
}

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const sb = nook.sandboxes;
  const commands = nook.commands;
  on(app, 'exec', async (c) => {
    const req = await parseBody(c, routes.exec.body);
    sb.get(ref(c)); // a missing sandbox is an HTTP error, before any stream starts
    if (!req.stream) return answer(c, await commands.exec(ref(c), req, {}, c.req.raw.signal));
    return ndjson<ExecEvent>(
      c,
      nook.audit,
      async (emit, signal) => emit({ type: 'result', result: await commands.exec(ref(c), req, execSink(emit), signal) }),
      errorEvent,
    );
  });
  on(app, 'run', async (c) => {
    const req = await parseBody(c, routes.run.body);
    if (!req.stream) return answer(c, await commands.run(req, {}, c.req.raw.signal));
    return ndjson<ExecEvent>(
      c,
      nook.audit,
      async (emit, signal) => emit({ type: 'result', result: await commands.run(req, { ...execSink(emit), onSandbox: (sandbox) => emit({ type: 'sandbox', sandbox }) }, signal) }),
      errorEvent,
    );
  });
}
