import { createRequire } from 'node:module';
import type { ProgressEvent } from '../api/schemas.js';

/**
 * A progress bar on a TTY (stderr), nothing otherwise: scripts and --json output stay clean.
 * Returns the callback to feed and a function that closes the bar.
 */
export function progressBar(title: string, enabled: boolean): { onProgress: (e: ProgressEvent) => void; done: () => void } {
  if (!enabled || !process.stderr.isTTY) return { onProgress: () => undefined, done: () => undefined };
  // cli-progress (CommonJS) is loaded only when a bar is drawn: commands start without it.
  const { SingleBar, Presets } = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
  const bar = new SingleBar({ format: `${title} [{bar}] {percentage}% {message}`, stream: process.stderr, hideCursor: true, clearOnComplete: false }, Presets.shades_classic);
  let started = false;
  return {
    onProgress: (e) => {
      if (e.type !== 'progress') return;
      if (!started) {
        bar.start(100, 0, { message: '' });
        started = true;
      }
      bar.update(Math.round(e.percent), { message: e.message.slice(0, 50) });
    },
    done: () => {
      if (started) {
        bar.update(100, { message: 'done' });
        bar.stop();
      }
    },
  };
}
