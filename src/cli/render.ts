import { NookError } from '../api/errors.js';
import type { Sandbox } from '../api/schemas.js';
import { formatDurationMs } from '../util/duration.js';

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Left-aligned columns, like docker ps. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function age(iso: string): string {
  return formatDurationMs(Date.now() - Date.parse(iso));
}

export function sandboxRows(list: Sandbox[]): string {
  return table(
    ['NAME', 'STATE', 'IMAGE', 'RUNTIME', 'CREATED', 'EXPIRES', 'PERSISTENT', 'LABELS'],
    list.map((s) => [
      s.name,
      // A cold-stopped sandbox says it holds its processes' memory.
      s.memory ? `${s.state}+memory` : s.state,
      s.image,
      s.runtime,
      `${age(s.createdAt)} ago`,
      s.expiresAt ? `in ${formatDurationMs(Math.max(0, Date.parse(s.expiresAt) - Date.now()))}` : '-',
      s.persistent ? 'yes' : 'no',
      Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]),
  );
}

/** Prints an error for a person (message + hint) or, with --json, the API error object on stderr. */
export function printError(e: unknown, json: boolean): void {
  const err = e instanceof NookError ? e : new NookError('INTERNAL', (e as Error)?.message ?? String(e));
  if (json) {
    process.stderr.write(JSON.stringify(err.toJSON()) + '\n');
    return;
  }
  process.stderr.write(`nook: ${err.message} [${err.code}]\n`);
  if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
}

/** Bytes as MiB for tables; null (not measured yet) as "...". */
export function mib(bytes: number | null): string {
  return bytes === null ? '...' : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
