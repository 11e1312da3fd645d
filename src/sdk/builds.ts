import { InternalError } from '../api/error-classes.js';
import { routeRefs as routes } from '../api/route-refs.js';
import type { BuildEvent, BuildResult } from '../api/schemas.js';
import type { Api } from './routes.js';
import { toError } from './errors.js';

/** Image builds from a build context (a directory holding `nook.json`). `client.builds`. */
export class Builds {
  constructor(private readonly api: Api) {}

  /**
   * Builds the image a build context describes:
   * `await client.builds.run('./worker', { onLog: (e) => process.stdout.write(e.text) })`.
   * The directory is sent as a tar (without .git); steps run in an isolated builder sandbox.
   */
  async run(dir: string, options: { spec?: string; onProgress?: (e: BuildEvent & { type: 'progress' }) => void; onLog?: (e: BuildEvent & { type: 'log' }) => void } = {}): Promise<BuildResult> {
    // tar is loaded only when a build runs: the CLI's other commands start without it.
    const { create } = await import('tar');
    const context = create({ cwd: dir, portable: true, filter: (path: string) => !/(^|\/)\.git(\/|$)/.test(path) }, ['.']) as unknown as NodeJS.ReadableStream;
    const query = { stream: 'true', ...(options.spec ? { spec: options.spec } : {}) };
    for await (const event of this.api.stream(routes.buildSpec, {}, { query, bodyStream: context })) {
      if (event.type === 'done') return event.result;
      if (event.type === 'error') throw toError(event.error, 500);
      if (event.type === 'progress') options.onProgress?.(event);
      else options.onLog?.(event);
    }
    throw new InternalError('the build stream ended without a result');
  }
}
