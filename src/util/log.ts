/** The daemon's log: one line per event on stderr, with a timestamp. */
export function log(message: string, fields: Record<string, unknown> = {}): void {
  const extra = Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : '';
  process.stderr.write(`${new Date().toISOString()} ${message}${extra}\n`);
}
