/**
 * One sandbox: its state and usage, a live terminal, files, background processes with live
 * logs, snapshots, network policy with the live decisions log and exposed ports, volumes.
 * When the sandbox goes away while the page is open, the page says so and offers nothing.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { Process } from '../api/schemas.js';
import type { BrowserSandbox } from '../sdk/browser.js';
import { FilesView } from './files.js';
import { Action, bytes, Countdown, ErrorLine, errorText, Field, Labels, Page, useBounded, useLoad, useSession } from './lib.js';
import { TerminalView } from './terminal.js';

const TABS = ['terminal', 'files', 'processes', 'snapshots', 'network', 'volumes'] as const;
type Tab = (typeof TABS)[number];

/** The longest piece of a line the page shows (a line without newlines could be megabytes). */
const LINE_CHARS = 4096;

/**
 * A chunk of output as its lines (each keeps its newline; a line split across chunks shows as
 * two adjacent pieces), so the page's bound counts lines, not chunks of any size.
 */
function logLines(stream: string, chunk: string): { stream: string; text: string }[] {
  return (chunk.match(/[^\n]*\n|[^\n]+$/g) ?? []).map((line) => ({
    stream,
    text: line.length > LINE_CHARS ? `${line.slice(0, LINE_CHARS)}… [${line.length - LINE_CHARS} characters not shown]\n` : line,
  }));
}

function Logs({ sandbox, proc }: { sandbox: BrowserSandbox; proc: Process }): preact.JSX.Element {
  const [lines, push, clear] = useBounded<{ stream: string; text: string }>(2000);
  const [error, setError] = useState<string | undefined>();
  const { generation } = useSession();
  useEffect(() => {
    clear();
    const abort = new AbortController();
    // Output arrives as base64 bytes; one decoder per stream keeps a character split across chunks whole.
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    const text = (stream: 'stdout' | 'stderr', b64: string): string => decoders[stream].decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), { stream: true });
    // The last 500 lines, then live: never the whole log.
    (async () => {
      for await (const ev of sandbox.processes.logs(proc.id, { follow: true, tail: 500, signal: abort.signal })) {
        if (ev.type === 'stdout' || ev.type === 'stderr') push(logLines(ev.type, text(ev.type, ev.data)));
        else if (ev.type === 'exit') push([{ stream: 'exit', text: `\n[exited ${ev.process.exitCode ?? ev.process.signal ?? ''}]\n` }]);
      }
    })().catch((e: unknown) => !abort.signal.aborted && setError(errorText(e)));
    return () => abort.abort();
  }, [proc.id, generation]);
  return (
    <div>
      <ErrorLine error={error} />
      <pre class="logs" id="process-logs">
        {lines.map((l, i) => (
          <span key={i} class={l.stream === 'stderr' ? 'denied' : ''}>
            {l.text}
          </span>
        ))}
      </pre>
    </div>
  );
}

function ProcessesView({ sandbox }: { sandbox: BrowserSandbox }): preact.JSX.Element {
  const { data, error, reload } = useLoad(() => sandbox.processes.list(), [], 3000);
  const [selected, setSelected] = useState<string | undefined>();
  const [cmd, setCmd] = useState('');
  const proc = data?.find((p) => p.id === selected);
  return (
    <div>
      <div class="row">
        <Field label="start in background" name="start" value={cmd} set={setCmd} placeholder="python3 -m http.server 8000" size={40} />
        <Action label="Start" run={() => sandbox.processes.start(['sh', '-c', cmd])} onDone={() => (setCmd(''), reload())} />
      </div>
      <ErrorLine error={error} />
      <table id="processes">
        <thead>
          <tr><th>id</th><th>command</th><th>state</th><th>exit</th><th /></tr>
        </thead>
        <tbody>
          {(data ?? []).map((p) => (
            <tr key={p.id} data-process={p.name ?? p.id}>
              <td class="mono">{p.name ?? p.id}</td>
              <td class="mono">{p.argv.join(' ')}</td>
              <td>{p.state}</td>
              <td>{p.exitCode ?? p.signal ?? ''}</td>
              <td>
                <button onClick={() => setSelected(p.id)}>Logs</button>
                {p.state === 'running' && <Action label="Kill" danger run={() => sandbox.processes.kill(p.id)} onDone={reload} />}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {proc && <Logs sandbox={sandbox} proc={proc} />}
    </div>
  );
}

function SnapshotsView({ sandbox }: { sandbox: BrowserSandbox }): preact.JSX.Element {
  const { client } = useSession();
  const { data, error, reload } = useLoad(() => sandbox.snapshots.list(), []);
  const [name, setName] = useState('');
  const [restored, setRestored] = useState<string | undefined>();
  return (
    <div>
      {restored && (
        <div class="notice" id="restored">
          restored as <a href={`#/sandbox/${encodeURIComponent(restored)}`}>{restored}</a>
        </div>
      )}
      <div class="row">
        <Field label="name" name="snapshot" value={name} set={setName} />
        <Action label="Take snapshot" run={() => sandbox.snapshots.create({ name: name || `snap-${Date.now()}` })} onDone={() => (setName(''), reload())} />
      </div>
      <ErrorLine error={error} />
      <table id="snapshots">
        <thead><tr><th>name</th><th>taken</th><th>size</th><th /></tr></thead>
        <tbody>
          {(data ?? []).map((s) => (
            <tr key={s.name} data-snapshot={s.name}>
              <td class="mono">{s.name}</td>
              <td>{s.createdAt}</td>
              <td>{bytes(s.sizeBytes)}</td>
              <td>
                <Action label="Restore as new" run={() => client.createSandbox({ snapshot: s.id }).then((sb) => setRestored(sb.name))} />
                <Action label="Delete" danger confirm={`Delete snapshot ${s.name}?`} run={() => sandbox.snapshots.delete(s.name)} onDone={reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function NetworkView({ sandbox }: { sandbox: BrowserSandbox }): preact.JSX.Element {
  const net = useLoad(() => sandbox.network.show({ limit: 100 }), [], 2000);
  const ports = useLoad(() => sandbox.exposures.list(), [], 5000);
  const [host, setHost] = useState('');
  return (
    <div>
      <ErrorLine error={net.error} />
      {net.data && (
        <div class="row">
          mode <b>{net.data.policy.mode}</b>; allowed:{' '}
          {net.data.policy.allow.map((h) => (
            <span class="label" key={h}>{h} <a href="#" onClick={(e) => (e.preventDefault(), void sandbox.network.deny(h).then(net.reload))}>×</a></span>
          ))}
        </div>
      )}
      <div class="row">
        <Field label="allow host" value={host} set={setHost} placeholder="pypi.org" />
        <Action label="Allow" run={() => sandbox.network.allow(host)} onDone={() => (setHost(''), net.reload())} />
      </div>
      <h2>Decisions (live)</h2>
      <table id="decisions">
        <thead><tr><th>at</th><th>host</th><th>port</th><th>method</th><th>decision</th><th>reason</th></tr></thead>
        <tbody>
          {(net.data?.decisions ?? []).slice().reverse().map((d, i) => (
            <tr key={`${d.at}-${i}`} class={d.allowed ? 'allowed' : 'denied'}>
              <td>{d.at}</td>
              <td class="mono">{d.host}</td>
              <td>{d.port}</td>
              <td>{d.method}</td>
              <td>{d.allowed ? 'allowed' : 'denied'}</td>
              <td>{d.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Exposed ports</h2>
      <ErrorLine error={ports.error} />
      <ul id="ports">
        {(ports.data ?? []).map((p) => (
          <li key={p.port} data-port={p.port}>
            {p.port} → <a href={p.url} target="_blank" rel="noopener noreferrer">{p.url}</a> <Action label="Unexpose" run={() => sandbox.exposures.remove(p.port)} onDone={ports.reload} />
          </li>
        ))}
      </ul>
    </div>
  );
}

function VolumesView({ sandbox }: { sandbox: BrowserSandbox }): preact.JSX.Element {
  const { data, error, reload } = useLoad(() => sandbox.volumes.list(), []);
  const [volume, setVolume] = useState('');
  const [guest, setGuest] = useState('/data');
  return (
    <div>
      <div class="row">
        <Field label="volume" name="volume" value={volume} set={setVolume} />
        <Field label="at" name="guest" value={guest} set={setGuest} />
        <Action label="Mount" run={() => sandbox.volumes.mount(volume, guest, { rw: true })} onDone={reload} />
      </div>
      <ErrorLine error={error} />
      <ul id="mounts">
        {(data ?? []).map((v) => (
          <li key={v.name} data-volume={v.name}>
            <span class="mono">{v.name}</span> at <span class="mono">{v.mountedIn?.path}</span> <Action label="Unmount" run={() => sandbox.volumes.unmount(v.mountedIn?.path ?? '')} onDone={reload} />
          </li>
        ))}
      </ul>
    </div>
  );
}

export function SandboxPage({ name }: { name: string }): preact.JSX.Element {
  const { client } = useSession();
  const sandbox = useMemo(() => client.sandbox(name), [name]);
  const [tab, setTab] = useState<Tab>('terminal');
  const info = useLoad(() => sandbox.info(), [], 3000);
  const usage = useLoad(() => sandbox.usage(), [], 10000);
  const [actionError, setActionError] = useState<string | undefined>();
  // A failed stop or resume may mean the sandbox changed or went away: say so, and look again.
  const failed = (error: string): void => (setActionError(error), info.reload());
  const gone = info.error?.startsWith('SANDBOX_NOT_FOUND');
  if (gone) {
    return (
      <Page title={name}>
        <div class="error" id="gone">This sandbox no longer exists (destroyed while this page was open). <a href="#/sandboxes">Back to the list</a></div>
      </Page>
    );
  }
  const sb = info.data;
  return (
    <Page title={<span id="sandbox-name">{name}</span>}>
      <ErrorLine error={info.error} />
      <ErrorLine error={actionError} />
      {sb && (
        <div class="row">
          <span class={`state-${sb.state}`}>{sb.state}</span>
          <span class="mono">{sb.image}</span>
          <span>{sb.runtime}</span>
          <Labels labels={sb.labels} />
          <span>TTL <Countdown iso={sb.expiresAt} /></span>
          {usage.data && (
            <span class="muted">
              compute {Math.round(usage.data.computeSeconds)} s · files {bytes(usage.data.storedBytes.files)} · memory {bytes(usage.data.live?.memoryBytes)}
            </span>
          )}
          {sb.state === 'running' ? <Action label="Stop" run={() => sandbox.stop()} onDone={info.reload} onError={failed} /> : <Action label="Resume" run={() => sandbox.resume()} onDone={info.reload} onError={failed} />}
          <Action label="Destroy" danger confirm={`Destroy ${sb.name}?`} run={() => sandbox.destroy()} onDone={() => (location.hash = '#/sandboxes')} />
        </div>
      )}
      <div class="tabs">
        {TABS.map((t) => (
          <button key={t} class={tab === t ? 'on' : ''} data-tab={t} onClick={() => setTab(t)}>
            {t}
          </button>
        ))}
      </div>
      {sb?.state !== 'running' && tab === 'terminal' ? (
        <div class="muted">The sandbox is not running: resume it for a terminal.</div>
      ) : tab === 'terminal' ? (
        <TerminalView sandbox={sandbox} />
      ) : tab === 'files' ? (
        <FilesView sandbox={sandbox} />
      ) : tab === 'processes' ? (
        <ProcessesView sandbox={sandbox} />
      ) : tab === 'snapshots' ? (
        <SnapshotsView sandbox={sandbox} />
      ) : tab === 'network' ? (
        <NetworkView sandbox={sandbox} />
      ) : (
        <VolumesView sandbox={sandbox} />
      )}
    </Page>
  );
}
