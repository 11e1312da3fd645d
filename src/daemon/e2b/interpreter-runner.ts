/**
 * The code interpreter's in-sandbox server (Python 3 standard library only), written into
 * code-interpreter-v1 sandboxes and run as the login user on E2B's Jupyter port. It speaks
 * what @e2b/code-interpreter sends: POST /execute answers NDJSON (stdout, stderr, result,
 * error, number_of_executions, end_of_execution); /contexts creates, lists, deletes and
 * restarts contexts. Each context is its own python3 process, so state persists across calls
 * in one context and never leaks into another, and a runaway cell only blocks its own context.
 */
export const RUNNER_PATH = '/usr/local/lib/nook/code-interpreter.py';

export const RUNNER_PY = String.raw`
import ast, base64, json, os, select, signal, socket, subprocess, sys, threading, time, traceback, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("NOOK_INTERPRETER_PORT", "49999"))
MAX_BODY = 4 * 1024 * 1024
MAX_CONTEXTS = 32
# How long an interrupted cell has to stop before its interpreter is killed.
INTERRUPT_GRACE_S = 5

# The worker: one per context. Requests and events travel on their own pipes; the cell's own
# stdin is /dev/null and fd-level writes (subprocesses) go to the worker's stderr log.
WORKER = r'''
import ast, base64, io, json, os, signal, sys, traceback
# A runner started in the background may inherit SIGINT ignored: interrupts must raise KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
req = os.fdopen(int(os.environ.pop("NOOK_REQ_FD")), "r")
ev = os.fdopen(int(os.environ.pop("NOOK_EV_FD")), "w")
def emit(o):
    ev.write(json.dumps(o) + "\n")
    ev.flush()
class Stream(io.TextIOBase):
    # Whole lines as they complete (print writes the text and its newline apart); the rest on flush.
    def __init__(self, kind):
        self.kind, self.buf = kind, ""
    def writable(self):
        return True
    def write(self, s):
        self.buf += s
        if "\n" in self.buf:
            done, _, self.buf = self.buf.rpartition("\n")
            emit({"type": self.kind, "text": done + "\n"})
        return len(s)
    def flush(self):
        if self.buf:
            emit({"type": self.kind, "text": self.buf})
            self.buf = ""
sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
sys.stdin = open(os.devnull)
ns = {"__name__": "__main__", "__builtins__": __builtins__}
count = 0
def formats(value):
    out = {"type": "result", "text": repr(value), "is_main_result": True}
    for key, meth, binary in (("html", "_repr_html_", False), ("png", "_repr_png_", True), ("svg", "_repr_svg_", False), ("markdown", "_repr_markdown_", False), ("latex", "_repr_latex_", False), ("json", "_repr_json_", False)):
        f = getattr(value, meth, None)
        if not callable(f):
            continue
        try:
            data = f()
        except Exception:
            continue
        if data is None:
            continue
        out[key] = base64.b64encode(data).decode() if binary and isinstance(data, bytes) else data
    return out
def run(code, envs):
    global count
    count += 1
    saved = {k: os.environ.get(k) for k in envs}
    os.environ.update(envs)
    try:
        tree = ast.parse(code, "<cell>", "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), ns)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), ns)
            if value is not None:
                ns["_"] = value
                emit(formats(value))
    except BaseException as e:
        # Only the cell's frames: the runner's own are noise to whoever reads the traceback.
        frames = e.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename != "<cell>":
            frames = frames.tb_next
        tb = traceback.format_exception(type(e), e, frames)
        emit({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": "".join(tb)})
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sys.stdout.flush()
        sys.stderr.flush()
        emit({"type": "number_of_executions", "execution_count": count})
        emit({"type": "end_of_execution"})
for line in req:
    msg = json.loads(line)
    run(msg["code"], msg.get("envs") or {})
'''

class Context:
    def __init__(self, cid, cwd):
        self.id, self.cwd, self.lock = cid, cwd, threading.Lock()
        self.start()

    def start(self):
        r_req, w_req = os.pipe()
        r_ev, w_ev = os.pipe()
        env = dict(os.environ, NOOK_REQ_FD=str(r_req), NOOK_EV_FD=str(w_ev))
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", WORKER], cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, pass_fds=(r_req, w_ev), start_new_session=True)
        os.close(r_req)
        os.close(w_ev)
        self.req = os.fdopen(w_req, "w")
        self.ev = os.fdopen(r_ev, "r")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        self.req.close()
        self.ev.close()

    def restart(self):
        with self.lock:
            self.stop()
            self.start()

    def describe(self):
        return {"id": self.id, "language": "python", "cwd": self.cwd}

    def execute(self, code, envs, write, client):
        """Runs a cell, relaying its events. A client that goes away (its socket at EOF) gets
        the cell interrupted (SIGINT, then SIGKILL and a fresh interpreter if that is ignored),
        so a runaway cell never holds its context."""
        with self.lock:
            try:
                self.req.write(json.dumps({"code": code, "envs": envs}) + "\n")
                self.req.flush()
            except OSError:
                self.stop()
                self.start()
                write(json.dumps({"type": "error", "name": "ContextRestarted", "value": "the context's interpreter had died and was restarted", "traceback": ""}))
                write(json.dumps({"type": "end_of_execution"}))
                return
            listening, interrupted_at, buf = True, None, b""
            fd = self.ev.fileno()
            while True:
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if listening and not write(line.decode()):
                        listening = False
                    if json.loads(line).get("type") == "end_of_execution":
                        return
                if not listening and interrupted_at is None:
                    interrupted_at = time.monotonic()
                    os.kill(self.proc.pid, signal.SIGINT)
                if interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                watch = [fd] + ([client] if listening else [])
                ready, _, _ = select.select(watch, [], [], 0.5)
                if client in ready and listening:
                    try:
                        gone = client.recv(1, socket.MSG_PEEK) == b""
                    except OSError:
                        gone = True
                    if gone:
                        listening = False
                if fd in ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        # The interpreter died mid-cell (os._exit, a crash, out of memory, or killed above): a fresh one.
                        self.stop()
                        self.start()
                        if listening:
                            write(json.dumps({"type": "error", "name": "InterpreterDied", "value": "the interpreter exited during the cell; the context was restarted with a fresh state", "traceback": ""}))
                            write(json.dumps({"type": "end_of_execution"}))
                        return
                    buf += chunk

contexts = {}
contexts_lock = threading.Lock()

def default_context():
    with contexts_lock:
        if "default" not in contexts:
            contexts["default"] = Context("default", os.path.expanduser("~"))
        return contexts["default"]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status, message):
        self.reply(status, {"error": message})

    def raw_body(self):
        # nook's port proxy streams bodies, so they mostly come chunked.
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = b""
            while True:
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(64)
                    return raw
                if len(raw) + size > MAX_BODY:
                    raise ValueError("the body must be at most %d bytes" % MAX_BODY)
                raw += self.rfile.read(size)
                self.rfile.readline(64)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            raise ValueError("the body must be at most %d bytes" % MAX_BODY)
        return self.rfile.read(n) if n else b""

    def body(self):
        try:
            msg = json.loads(self.raw_body() or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError("the body is not JSON: %s" % e)
        if not isinstance(msg, dict):
            raise ValueError("the body must be a JSON object")
        return msg

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/health":
            return self.reply(200, {"status": "ok"})
        if path == "/contexts":
            with contexts_lock:
                return self.reply(200, [c.describe() for c in contexts.values()])
        self.fail(404, "no endpoint GET " + path[:200])

    def do_DELETE(self):
        cid = self.path.split("?")[0][len("/contexts/"):] if self.path.startswith("/contexts/") else None
        with contexts_lock:
            ctx = contexts.pop(cid, None) if cid else None
        if not ctx:
            return self.fail(404, "context %s not found" % (cid or "")[:64])
        ctx.stop()
        self.reply(200, None)

    def do_POST(self):
        path = self.path.split("?")[0]
        try:
            msg = self.body()
        except ValueError as e:
            return self.fail(400, str(e))
        if path == "/contexts":
            return self.create(msg)
        if path.startswith("/contexts/") and path.endswith("/restart"):
            with contexts_lock:
                ctx = contexts.get(path[len("/contexts/"):-len("/restart")])
            if not ctx:
                return self.fail(404, "context not found")
            ctx.restart()
            return self.reply(200, None)
        if path == "/execute":
            return self.execute(msg)
        self.fail(404, "no endpoint POST " + path[:200])

    def create(self, msg):
        language = msg.get("language") or "python"
        if language != "python":
            return self.fail(400, "language %r is not supported: python only" % str(language)[:40])
        cwd = msg.get("cwd") or os.path.expanduser("~")
        if not isinstance(cwd, str) or not os.path.isdir(cwd):
            return self.fail(400, "cwd %r is not a directory" % str(cwd)[:200])
        with contexts_lock:
            if len(contexts) >= MAX_CONTEXTS:
                return self.fail(400, "at most %d contexts: delete one first" % MAX_CONTEXTS)
            ctx = Context(str(uuid.uuid4()), cwd)
            contexts[ctx.id] = ctx
        self.reply(200, ctx.describe())

    def execute(self, msg):
        code, cid, language, envs = msg.get("code"), msg.get("context_id"), msg.get("language"), msg.get("env_vars") or {}
        if not isinstance(code, str):
            return self.fail(400, "code must be a string")
        if language not in (None, "python"):
            return self.fail(400, "language %r is not supported: python only" % str(language)[:40])
        if not isinstance(envs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in envs.items()):
            return self.fail(400, "env_vars must be an object of strings")
        if cid:
            with contexts_lock:
                ctx = contexts.get(cid)
            if not ctx:
                return self.fail(404, "context %s not found" % str(cid)[:64])
        else:
            ctx = default_context()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        def write(line):
            try:
                self.wfile.write(line.encode() + b"\n")
                self.wfile.flush()
                return True
            except OSError:
                return False
        ctx.execute(code, envs, write, self.connection)

server = ThreadingHTTPServer((os.environ.get("NOOK_INTERPRETER_HOST", "0.0.0.0"), PORT), Handler)
server.daemon_threads = True
default_context()
print("nook-code-interpreter ready", flush=True)
server.serve_forever()
`;
