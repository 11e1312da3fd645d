/** The sandboxes: state, image, runtime, labels, TTL, a label filter, and the lifecycle buttons. */
import { useState } from 'preact/hooks';
import type { Sandbox } from '../api/schemas.js';
import { Action, bytes, Countdown, ErrorLine, Field, Labels, Page, useLoad, useSession } from './lib.js';

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** Compute time and stored bytes: asked per row, seldom (the daemon measures the files on disk for it). */
function UsageCell({ id }: { id: string }): preact.JSX.Element {
  const { client } = useSession();
  const { data } = useLoad(() => client.sandbox(id).usage(), [id], 30_000);
  if (!data) return <span class="muted">…</span>;
  return (
    <span class="usage">
      {Math.round(data.computeSeconds)} s · {bytes(data.storedBytes.files)}
    </span>
  );
}

function Row({ sb, reload, failed }: { sb: Sandbox; reload: () => void; failed: (error: string) => void }): preact.JSX.Element {
  const { client } = useSession();
  const api = client.sandbox(sb.id);
  const [snapName, setSnapName] = useState('');
  // A failed action (the sandbox changed or went away elsewhere) is reported by the page and the list reloads.
  const onError = (error: string): void => (failed(`${sb.name}: ${error}`), reload());
  return (
    <tr data-sandbox={sb.name}>
      <td>
        <a href={`#/sandbox/${encodeURIComponent(sb.name)}`} class="sandbox-link">
          {sb.name}
        </a>
        <div class="muted mono">{sb.id}</div>
      </td>
      <td class={`state-${sb.state}`}>{sb.state}</td>
      <td class="mono">{sb.image}</td>
      <td>{sb.runtime}</td>
      <td>
        <Labels labels={sb.labels} />
      </td>
      <td>
        <Countdown iso={sb.expiresAt} />
      </td>
      <td>
        {sb.limits.memoryMiB ? `${sb.limits.memoryMiB} MiB` : '–'}
        {sb.memory ? <div class="muted">paused memory</div> : null}
      </td>
      <td>
        <UsageCell id={sb.id} />
      </td>
      <td>
        {sb.state === 'running' ? <Action label="Stop" run={() => api.stop()} onDone={reload} onError={onError} /> : <Action label="Resume" run={() => api.resume()} onDone={reload} onError={onError} />}
        <Action label="Fork" run={() => api.fork({})} onDone={reload} onError={onError} />
        <span class="row">
          <input size={10} placeholder="snapshot" name="snapshot" value={snapName} onInput={(e) => setSnapName((e.target as HTMLInputElement).value)} />
          <Action label="Snapshot" run={() => api.snapshots.create({ name: snapName || `snap-${Date.now()}` })} onDone={() => setSnapName('')} onError={onError} />
        </span>
        <Action label="Destroy" danger confirm={`Destroy ${sb.name} and its files?`} run={() => api.destroy()} onDone={reload} onError={onError} />
      </td>
    </tr>
  );
}

function CreateForm({ onDone }: { onDone: () => void }): preact.JSX.Element {
  const { client } = useSession();
  const [name, setName] = useState('');
  const [image, setImage] = useState('');
  const [labels, setLabels] = useState('');
  return (
    <div class="row">
      <Field label="name" value={name} set={setName} placeholder="(generated)" />
      <Field label="image or template" value={image} set={setImage} placeholder="python" />
      <Field label="labels" value={labels} set={setLabels} placeholder="team=ml owner=ana" />
      <Action
        label="Create"
        run={() => client.createSandbox({ ...(name ? { name } : {}), ...(image ? { image } : {}), labels: parseLabels(labels) })}
        onDone={() => (setName(''), onDone())}
      />
    </div>
  );
}

export function SandboxesPage(): preact.JSX.Element {
  const { client } = useSession();
  const [filter, setFilter] = useState('');
  const { data, error, reload } = useLoad(() => client.listSandboxes({ labels: parseLabels(filter) }), [filter], 5000);
  const [actionError, setActionError] = useState<string | undefined>();
  return (
    <Page title="Sandboxes">
      <CreateForm onDone={reload} />
      <div class="row">
        <Field label="filter by label" name="label-filter" value={filter} set={setFilter} placeholder="k=v" />
        <span class="muted">{data ? `${data.length} sandboxes` : ''}</span>
      </div>
      <ErrorLine error={error} />
      {actionError && (
        <div class="error" id="action-error">
          {actionError} <button onClick={() => setActionError(undefined)}>Dismiss</button>
        </div>
      )}
      <table id="sandboxes">
        <thead>
          <tr>
            <th>name</th>
            <th>state</th>
            <th>image</th>
            <th>runtime</th>
            <th>labels</th>
            <th>TTL</th>
            <th>memory</th>
            <th>usage</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((sb) => (
            <Row key={sb.id} sb={sb} reload={reload} failed={setActionError} />
          ))}
        </tbody>
      </table>
    </Page>
  );
}
