/**
 * A sandbox's files: one page of a directory at a time (the daemon slices the listing),
 * downloads by link, uploads refused before they start when past the daemon's copy-in bound.
 */
import { useState } from 'preact/hooks';
import type { BrowserSandbox } from '../sdk/browser.js';
import { bytes, ErrorLine, errorText, useLoad, useSession } from './lib.js';

const PAGE = 100;

function join(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

export function FilesView({ sandbox }: { sandbox: BrowserSandbox }): preact.JSX.Element {
  const { client, online } = useSession();
  const [dir, setDir] = useState('/');
  const [offset, setOffset] = useState(0);
  const [message, setMessage] = useState<string | undefined>();
  const [failure, setFailure] = useState<string | undefined>();
  const listing = useLoad(() => sandbox.files.list(dir, { offset, limit: PAGE }), [dir, offset]);
  const health = useLoad(() => client.health(), []);
  const open = (path: string): void => (setDir(path), setOffset(0));

  const upload = (e: Event): void => {
    e.preventDefault();
    const input = (e.target as HTMLFormElement).elements.namedItem('file') as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    const limit = health.data?.limits?.copyInBytes ?? 16 * 1024 ** 3;
    setMessage(undefined);
    setFailure(undefined);
    sandbox.files.upload(join(dir, file.name), file, limit).then(
      (info) => (setMessage(`uploaded ${info.path} (${info.size} bytes)`), listing.reload()),
      (err: unknown) => setFailure(errorText(err)),
    );
  };

  const total = listing.data?.total ?? 0;
  const up = dir === '/' ? undefined : dir.replace(/\/[^/]+\/?$/, '') || '/';
  return (
    <div>
      <div class="row">
        <span class="mono" id="cwd">{dir}</span>
        {up && <button onClick={() => open(up)}>Up</button>}
        <form onSubmit={upload} class="row" id="upload">
          <input type="file" name="file" />
          <button type="submit" disabled={!online}>
            Upload here
          </button>
        </form>
      </div>
      {message && <div class="notice" id="upload-result">{message}</div>}
      <ErrorLine error={failure} />
      <ErrorLine error={listing.error} />
      <table id="files">
        <thead>
          <tr>
            <th>name</th>
            <th>type</th>
            <th>size</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(listing.data?.files ?? []).map((f) => (
            <tr key={f.name} data-file={f.name}>
              <td class="mono">{f.type === 'dir' ? <a href="#" onClick={(e) => (e.preventDefault(), open(join(dir, f.name)))}>{f.name}/</a> : f.name}</td>
              <td>{f.type}</td>
              <td>{f.type === 'file' ? bytes(f.size) : ''}</td>
              <td>{f.type === 'file' && <a href={sandbox.files.downloadUrl(join(dir, f.name))} download={f.name} class="download">download</a>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="row">
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Previous
        </button>
        <span class="muted">
          {total ? `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}` : 'empty'}
        </span>
        <button disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
          Next
        </button>
      </div>
    </div>
  );
}
