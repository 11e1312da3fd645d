/**
 * E2B's code-interpreter-v1 template on nook: the base image plus the runner of
 * interpreter-runner.ts on E2B's Jupyter port. The runner is written into the sandbox and
 * started on demand (the first request for the port, or after a resume or a daemon restart
 * left nothing listening), so the template needs no image of its own.
 */
import type { Nook } from '../../core/nook.js';
import { NookError } from '../../api/errors.js';
import { log } from '../../util/log.js';
import { RUNNER_PATH, RUNNER_PY } from './interpreter-runner.js';
import { BASE_USER, type E2bSandbox } from './sandboxes.js';

export const CODE_INTERPRETER_TEMPLATE = 'code-interpreter-v1';
export const JUPYTER_PORT = 49999;

/** How long a runner may take to start and answer (python3 start-up plus the port bridge). */
const START_WITHIN_MS = 20_000;
const PROBE_TIMEOUT_MS = 2_000;

export class InterpreterSupervisor {
  private readonly starting = new Map<string, Promise<void>>();

  constructor(private readonly nook: Nook) {}

  /** Sandboxes whose template has the runner. */
  static serves(sb: E2bSandbox): boolean {
    return sb.foreign.template === CODE_INTERPRETER_TEMPLATE;
  }

  /** Resolves once the runner answers on the Jupyter port; starts it (once, however many callers) if not. */
  async ensure(sb: E2bSandbox): Promise<void> {
    if (await this.answers(sb)) return;
    let p = this.starting.get(sb.record.id);
    if (!p) {
      p = this.start(sb).finally(() => this.starting.delete(sb.record.id));
      this.starting.set(sb.record.id, p);
    }
    return p;
  }

  private async answers(sb: E2bSandbox): Promise<boolean> {
    const exposure = await this.nook.network.expose(sb.record.id, JUPYTER_PORT);
    try {
      const res = await fetch(`http://127.0.0.1:${exposure.hostPort}/health`, { headers: { 'x-nook-token': exposure.token }, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  private async start(sb: E2bSandbox): Promise<void> {
    await this.nook.files.mkdir(sb.record.id, RUNNER_PATH.slice(0, RUNNER_PATH.lastIndexOf('/')), true).catch(() => undefined);
    await this.nook.files.write(sb.record.id, RUNNER_PATH, Buffer.from(RUNNER_PY), 0o644);
    let stderr = '';
    const live = await this.nook.commands.startLive(
      sb.record.id,
      {
        argv: ['python3', RUNNER_PATH],
        user: BASE_USER,
        cwd: '/home/user',
        env: { HOME: '/home/user', USER: BASE_USER, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
        actor: 'e2b:code-interpreter',
      },
      // The runner's stderr is its cells' fd-level output: kept only as the last lines for a start-up failure.
      { onStdout: () => undefined, onStderr: (b) => void (stderr = (stderr + b.toString()).slice(-2000)) },
    );
    live.session.endStdin();
    let exited = false;
    void live.ended.then((end) => {
      exited = true;
      log('e2b code interpreter exited', { sandbox: sb.record.id, exitCode: end.exitCode, signal: end.signal });
    });
    const deadline = Date.now() + START_WITHIN_MS;
    while (Date.now() < deadline && !exited) {
      if (await this.answers(sb)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!exited) live.session.kill();
    throw new NookError('RUNTIME_ERROR', `the code interpreter did not answer on port ${JUPYTER_PORT} within ${START_WITHIN_MS} ms: ${stderr.trim().slice(-500)}`);
  }
}
