/** The sandboxes: state, image, runtime, labels, TTL, a label filter, and the lifecycle buttons. */
import { useState } from 'preact/hooks';
import type { Sandbox } from '../api/schemas.js';
import { Action, Countdown, ErrorLine, Field, Labels, Page, useLoad, useSession } from './lib.js';

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

function Row({ sb, reload }: { sb: Sandbox; reload: () => void }): preact.JSX.Element {
  const { client } = useSession();
  const api = client.sandbox(sb.id);
  const [snapName, setSnapName] = useState('');
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
        {sb.state === 'running' ? <Action label="Stop" run={() => api.stop()} onDone={reload} /> : <Action label="Resume" run={() => api.resume()} onDone={reload} />}
        <Action label="Fork" run={() => api.fork({})} onDone={reload} />
        <span class="row">
          <input size={10} placeholder="snapshot" value={snapName} onInput={(e) => setSnapName((e.target as HTMLInputElement).value)} />
          <Action label="Snapshot" run={() => api.snapshots.create({ name: snapName || `snap-${Date.now()}` })} onDone={() => setSnapName('')} />
        </span>
        <Action label="Destroy" danger confirm={`Destroy ${sb.name} and its files?`} run={() => api.destroy()} onDone={reload} />
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
  return (
    <Page title="Sandboxes">
      <CreateForm onDone={reload} />
      <div class="row">
        <Field label="filter by label" name="label-filter" value={filter} set={setFilter} placeholder="k=v" />
        <span class="muted">{data ? `${data.length} sandboxes` : ''}</span>
      </div>
      <ErrorLine error={error} />
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
            <th />
          </tr>
        </thead>
        <tbody>
          {(data ?? []).map((sb) => (
            <Row key={sb.id} sb={sb} reload={reload} />
          ))}
        </tbody>
      </table>
    </Page>
  );
}
