/** NDJSON answers (progress, logs, events): one JSON value a line, parsed as lines complete. Used in Node and in the browser. */
export async function* ndjsonValues<T>(chunks: AsyncIterable<string>): AsyncGenerator<T> {
  let buffered = '';
  for await (const chunk of chunks) {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) yield JSON.parse(line) as T;
      nl = buffered.indexOf('\n');
    }
  }
  if (buffered.trim()) yield JSON.parse(buffered) as T;
}
