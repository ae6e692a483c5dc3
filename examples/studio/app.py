"""studio: a tiny web front end for the job spool, one of the apps of the example ecosystem.

Python standard library only. GET / shows the spool directory (pending, working and done
jobs) with a form; POST /jobs writes a new job file that the `jobs` workers pick up;
GET /jobs returns the same listing as JSON.

    PORT       port to listen on (default 8000), on all interfaces
    SPOOL_DIR  the spool directory (default examples/jobs/spool, relative to the cwd)

Logs go to stdout, one line per request, flushed. SIGTERM or SIGINT: stop accepting,
close the socket, exit 0.
"""

import html
import itertools
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PORT = int(os.environ.get("PORT", "8000"))
SPOOL_DIR = os.environ.get("SPOOL_DIR", "examples/jobs/spool")
DONE_DIR = os.path.join(SPOOL_DIR, "done")
MAX_BODY = 64 * 1024
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

_sequence = itertools.count(1)


def log(message):
    print(f"pid={os.getpid()} {message}", flush=True)


def names(directory, suffix):
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(suffix))
    except FileNotFoundError:
        return []


def listing():
    return {
        "pending": names(SPOOL_DIR, ".job"),
        "working": names(SPOOL_DIR, ".working"),
        "done": names(DONE_DIR, ".job")[-20:],
    }


def new_job(text):
    """Writes the job under a hidden temporary name, then renames it to `*.job`, so a
    worker never claims a half-written file. Names sort by creation time."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{time.time_ns() % 1_000_000_000:09d}-{os.getpid()}-{next(_sequence)}.job"
    tmp = os.path.join(SPOOL_DIR, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.rename(tmp, os.path.join(SPOOL_DIR, name))
    return name


def page():
    jobs = listing()
    sections = []
    for title, items in jobs.items():
        rows = "".join(f"<li><code>{html.escape(n)}</code></li>" for n in items) or "<li>none</li>"
        sections.append(f"<h2>{title} ({len(items)})</h2><ul>{rows}</ul>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>studio</title></head>
<body>
<h1>studio</h1>
<p>Spool: <code>{html.escape(os.path.abspath(SPOOL_DIR))}</code> (served by pid {os.getpid()})</p>
<form method="post" action="/jobs">
<textarea name="text" rows="3" cols="60" placeholder="what should a worker do?"></textarea><br>
<button type="submit">Add job</button>
</form>
{''.join(sections)}
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "studio/0.1"

    def do_GET(self):
        if self.path == "/":
            self.reply(200, "text/html; charset=utf-8", page())
        elif self.path == "/jobs":
            self.reply(200, "application/json", json.dumps(listing()) + "\n")
        else:
            self.reply(404, "text/plain", "not found\n")

    def do_POST(self):
        if self.path != "/jobs":
            self.reply(404, "text/plain", "not found\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.reply(413, "text/plain", f"a job is at most {MAX_BODY} bytes\n")
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            text = parse_qs(body).get("text", [""])[0]
        else:
            text = body
        if not text.strip():
            self.reply(400, "text/plain", "empty job\n")
            return
        name = new_job(text)
        log(f"queued {name}")
        # 303 sends a browser back to the listing; curl shows the job name.
        self.reply(303, "text/plain", f"queued {name}\n", {"Location": "/"})

    def reply(self, status, content_type, body, headers=None):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        # The default goes to stderr with its own timestamp; supd adds the time already.
        log(f"{self.address_string()} {format % args}")


def main():
    os.makedirs(DONE_DIR, exist_ok=True)
    # Stop signals are blocked (the request threads inherit the mask) and taken with
    # sigwait in the main thread: no handler runs in the middle of other code, and the
    # shutdown happens outside the serving thread, as socketserver requires.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        server = ThreadingHTTPServer(("", PORT), Handler)
    except OSError as e:
        print(f"pid={os.getpid()} cannot listen on port {PORT}: {e}", file=sys.stderr, flush=True)
        return 1
    serving = threading.Thread(target=server.serve_forever, name="serve")
    serving.start()
    log(f"listening on port {PORT}, spool {os.path.abspath(SPOOL_DIR)}")
    sig = signal.sigwait(STOP_SIGNALS)
    log(f"{signal.Signals(sig).name}: shutting down")
    server.shutdown()
    serving.join()
    server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
