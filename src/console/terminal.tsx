/**
 * A live terminal: xterm.js over the daemon's PTY WebSocket (the session cookie authenticates
 * it, same origin). Resize follows the element; copy and paste work with the selection,
 * Ctrl+Shift+C / Ctrl+Shift+V and the buttons. A closed socket (exit, daemon restart, the
 * sandbox destroyed) ends the session: a new one starts only when asked, never by itself.
 */
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { BrowserSandbox } from '../sdk/browser.js';

export function TerminalView({ sandbox }: { sandbox: BrowserSandbox }): preact.JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | undefined>(undefined);
  const [status, setStatus] = useState('connecting');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    if (!box.current) return;
    const term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current);
    fit.fit();
    termRef.current = term;
    const ws = new WebSocket(sandbox.ptyUrl(location.href));
    ws.binaryType = 'arraybuffer';
    const encoder = new TextEncoder();
    const sendText = (text: string): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text));
    };
    ws.onopen = () => {
      setStatus('connected');
      ws.send(JSON.stringify({ type: 'start', cols: term.cols, rows: term.rows }));
      term.focus();
    };
    ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data !== 'string') return term.write(new Uint8Array(e.data));
      const msg = JSON.parse(e.data) as { type: string; exitCode?: number; error?: { message: string } };
      if (msg.type === 'exit') setStatus(`exited (${msg.exitCode ?? '?'})`);
      if (msg.type === 'error') setStatus(`error: ${msg.error?.message ?? ''}`);
    };
    ws.onclose = () => setStatus((s) => (s === 'connected' || s === 'connecting' ? 'disconnected' : s));
    const input = term.onData(sendText);
    const resize = term.onResize(({ cols, rows }) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows })));
    term.attachCustomKeyEventHandler((ev) => {
      if (ev.type !== 'keydown' || !ev.ctrlKey || !ev.shiftKey) return true;
      if (ev.code === 'KeyC') return void navigator.clipboard?.writeText(term.getSelection()), false;
      if (ev.code === 'KeyV') return void navigator.clipboard?.readText().then(sendText), false;
      return true;
    });
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(box.current);
    return () => {
      observer.disconnect();
      input.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
    };
  }, [sandbox.ref, attempt]);

  const copy = (): void => void navigator.clipboard?.writeText(termRef.current?.getSelection() ?? '');
  const paste = (): void =>
    void navigator.clipboard?.readText().then((t) => {
      termRef.current?.paste(t);
      termRef.current?.focus();
    });
  return (
    <div>
      <div class="row">
        <span id="term-status" class="muted">
          terminal: {status}
        </span>
        <button onClick={copy}>Copy selection</button>
        <button onClick={paste}>Paste</button>
        {status !== 'connected' && status !== 'connecting' && <button onClick={() => (setStatus('connecting'), setAttempt((a) => a + 1))}>New session</button>}
      </div>
      <div class="term" ref={box} id="terminal" />
    </div>
  );
}
