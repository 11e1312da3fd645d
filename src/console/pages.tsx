/** Host-wide pages: volumes, images and templates (pulls and builds stream progress), the audit log, live events. */
import { useEffect, useState } from 'preact/hooks';
import type { AuditRecord, NookEvent, Preset, ProgressEvent } from '../api/schemas.js';
import { Action, bytes, ErrorLine, errorText, Field, Page, useBounded, useLoad, useSession } from './lib.js';

export function VolumesPage(): preact.JSX.Element {
  const { client } = useSession();
  const { data, error, reload } = useLoad(() => client.volumes.list(), [], 5000);
  const [name, setName] = useState('');
  const [size, setSize] = useState('256');
  return (
    <Page title="Volumes">
      <div class="row">
        <Field label="name" value={name} set={setName} />
        <Field label="size MiB" value={size} set={setSize} size={6} />
        <Action label="Create" run={() => client.volumes.create(name, { sizeMiB: Number(size) })} onDone={() => (setName(''), reload())} />
      </div>
      <ErrorLine error={error} />
      <table id="volumes">
        <thead><tr><th>name</th><th>size</th><th>state</th><th>mounted in</th><th /></tr></thead>
        <tbody>
          {(data ?? []).map((v) => (
            <tr key={v.name} data-volume={v.name}>
              <td class="mono">{v.name}</td>
              <td>{v.sizeMiB} MiB</td>
              <td class="volume-state">{v.state}</td>
              <td>{v.mountedIn ? `${v.mountedIn.sandbox}:${v.mountedIn.path}` : '–'}</td>
              <td>
                {v.state === 'locked' ? <Action label="Unlock" run={() => client.volumes.unlock(v.name)} onDone={reload} /> : <Action label="Lock" run={() => client.volumes.lock(v.name, { force: true })} onDone={reload} />}
                <Action label="Remove" danger confirm={`Delete volume ${v.name} and its data?`} run={() => client.volumes.remove(v.name)} onDone={reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}

function Progress({ event }: { event: ProgressEvent | undefined }): preact.JSX.Element | null {
  if (!event || event.type !== 'progress') return null;
  return (
    <div class="row" id="image-progress">
      <progress class="progress" max={100} value={event.percent} /> <span>{event.phase}</span> <span class="muted">{event.message}</span>
    </div>
  );
}

export function ImagesPage(): preact.JSX.Element {
  const { client } = useSession();
  const images = useLoad(() => client.images.list(), [], 10000);
  const templates = useLoad(() => client.templates.list(), []);
  const [reference, setReference] = useState('');
  const [progress, setProgress] = useState<ProgressEvent | undefined>();
  const [done, setDone] = useState<string | undefined>();
  return (
    <Page title="Images and templates">
      <div class="row">
        <Field label="pull" name="pull" value={reference} set={setReference} placeholder="127.0.0.1:5000/library/alpine:3" size={36} />
        <Action
          label="Pull"
          run={() => (setDone(undefined), client.images.pull(reference, { onProgress: setProgress }).then((img) => setDone(`pulled ${img.name} (${img.digest ?? ''})`)))}
          onDone={() => (setProgress(undefined), images.reload())}
        />
      </div>
      <Progress event={progress} />
      {done && <div class="notice" id="image-done">{done}</div>}
      <ErrorLine error={images.error} />
      <table id="images">
        <thead><tr><th>name</th><th>state</th><th>size</th><th>source</th><th>used by</th><th /></tr></thead>
        <tbody>
          {(images.data ?? []).map((i) => (
            <tr key={i.id} data-image={i.name}>
              <td class="mono">{i.name}</td>
              <td>{i.state}</td>
              <td>{bytes(i.sizeBytes)}</td>
              <td class="mono">{i.source}</td>
              <td>{i.usedBy.join(', ')}</td>
              <td>{i.usedBy.length === 0 && <Action label="Remove" danger confirm={`Remove image ${i.name}?`} run={() => client.images.remove(i.name)} onDone={images.reload} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Templates</h2>
      <ErrorLine error={templates.error} />
      <table>
        <thead><tr><th>name</th><th>image</th><th>memory</th><th>description</th><th /></tr></thead>
        <tbody>
          {(templates.data ?? []).map((t) => (
            <tr key={t.name}>
              <td class="mono">{t.name}</td>
              <td class="mono">{t.image}</td>
              <td>{t.memoryMiB} MiB</td>
              <td>{t.description}</td>
              <td>
                <Action label="Build" run={() => client.images.build({ preset: t.name as Preset, onProgress: setProgress })} onDone={() => (setProgress(undefined), images.reload())} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}

function AuditRow({ r }: { r: AuditRecord }): preact.JSX.Element {
  return (
    <tr>
      <td>{r.seq}</td>
      <td class="mono">{r.id}</td>
      <td>{r.at}</td>
      <td>{r.actor}</td>
      <td>{r.action}</td>
      <td>{r.sandbox ?? ''}</td>
      <td class={r.outcome === 'error' ? 'denied' : ''}>{r.outcome}{r.errorCode ? ` (${r.errorCode})` : ''}</td>
    </tr>
  );
}

export function AuditPage(): preact.JSX.Element {
  const { client } = useSession();
  const [sandbox, setSandbox] = useState('');
  const [limit, setLimit] = useState(100);
  const list = useLoad(() => client.audit.list({ ...(sandbox ? { sandbox } : {}), limit }), [sandbox, limit], 10000);
  const [receipt, setReceipt] = useState('');
  const [found, setFound] = useState<AuditRecord | undefined>();
  const [verify, setVerify] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();
  return (
    <Page title="Audit log">
      <div class="row">
        <Action
          label="Verify chain"
          run={async () => {
            const v = await client.audit.verify();
            setVerify(v.ok ? `OK: ${v.records} records, the chain holds` : `BROKEN at record ${v.firstBad?.seq ?? '?'} (${v.firstBad?.id ?? ''}): ${v.firstBad?.reason ?? ''}`);
          }}
        />
        {verify && <span class={verify.startsWith('OK') ? 'mono' : 'mono error'} id="verify-result">{verify}</span>}
      </div>
      <form class="row" onSubmit={(e) => (e.preventDefault(), setError(undefined), void client.audit.get(receipt.trim()).then(setFound, (err: unknown) => (setFound(undefined), setError(errorText(err)))))}>
        <Field label="receipt" name="receipt" value={receipt} set={setReceipt} size={30} />
        <button type="submit">Find</button>
      </form>
      <ErrorLine error={error} />
      {found && <pre class="logs" id="receipt">{JSON.stringify(found, null, 2)}</pre>}
      <div class="row">
        <Field label="sandbox" value={sandbox} set={setSandbox} />
        <span class="muted">newest {limit}</span>
        <button onClick={() => setLimit(limit + 100)}>Show 100 more</button>
      </div>
      <ErrorLine error={list.error} />
      <table id="audit">
        <thead><tr><th>seq</th><th>receipt</th><th>at</th><th>actor</th><th>action</th><th>sandbox</th><th>outcome</th></tr></thead>
        <tbody>
          {(list.data ?? []).slice().reverse().map((r) => (
            <AuditRow key={r.id} r={r} />
          ))}
        </tbody>
      </table>
    </Page>
  );
}

export function EventsPage(): preact.JSX.Element {
  const { client, generation } = useSession();
  const [events, push] = useBounded<NookEvent>(500);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const abort = new AbortController();
    setError(undefined);
    (async () => {
      for await (const ev of client.events(abort.signal)) push([ev]);
      if (!abort.signal.aborted) setError('the event stream ended (daemon restart?): it resumes when the daemon answers again');
    })().catch((e: unknown) => !abort.signal.aborted && setError(errorText(e)));
    return () => abort.abort();
  }, [generation]);
  return (
    <Page title="Live events">
      <ErrorLine error={error} />
      <table id="events">
        <thead><tr><th>at</th><th>type</th><th>sandbox</th><th>detail</th></tr></thead>
        <tbody>
          {events.slice().reverse().map((e, i) => (
            <tr key={`${e.at}-${i}`}>
              <td>{e.at}</td>
              <td>{e.type}</td>
              <td>{e.sandbox ?? ''}</td>
              <td class="mono">{e.detail ? JSON.stringify(e.detail) : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Page>
  );
}
