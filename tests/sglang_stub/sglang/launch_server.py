"""A stand-in for `python -m sglang.launch_server` on machines without a GPU.

It speaks the endpoints preflight uses, the way SGLang does (sglang
python/sglang/srt/entrypoints/http_server.py): GET /health is 503 while warming up and
200 once ready; POST /generate takes {"text", "sampling_params"} and answers
{"text", "meta_info"}. Like SGLang it runs helper processes (scheduler, detokenizer).
Behaviour for tests comes from the environment:
  STUB_SGLANG_WARMUP_S   seconds of 503 before ready (default 1)
  STUB_SGLANG_DIE        exit with this code during start, after an error line
  STUB_SGLANG_EMPTY      answer /generate with empty text
  STUB_SGLANG_GENERATE_STATUS  answer /generate with this HTTP status
  STUB_SGLANG_IGNORE_TERM      ignore SIGTERM (the client must escalate to SIGKILL)
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--model-path", required=True)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=30000)
parser.add_argument("--mem-fraction-static", type=float, default=None)
args, _ = parser.parse_known_args()

env = os.environ.get
if env("STUB_SGLANG_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"server_args=ServerArgs(model_path={args.model_path!r}, port={args.port}, "
      f"mem_fraction_static={args.mem_fraction_static})", flush=True)
# Helper processes, as SGLang's scheduler and detokenizer: cleanup must reach them.
helpers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
           for _ in range(2)]
if env("STUB_SGLANG_DIE"):
    time.sleep(0.5)
    print("Traceback (most recent call last):\n  File \"scheduler.py\", line 1\n"
          "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
    sys.exit(int(env("STUB_SGLANG_DIE")))

started = time.monotonic()
announced = threading.Event()
warmup = float(env("STUB_SGLANG_WARMUP_S", "1"))


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/health":
            return self._reply(404, {"detail": "Not Found"})
        # ready once the ready line is printed (a timer thread of its own could print it
        # after a client already saw 200, generated and stopped the server)
        ready = announced.is_set() if warmup >= 0 else time.monotonic() - started >= warmup
        return self._reply(200 if ready else 503, {} if ready else {"detail": "starting"})

    def do_POST(self):
        if self.path != "/generate":
            return self._reply(404, {"detail": "Not Found"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = int(env("STUB_SGLANG_GENERATE_STATUS", "200"))
        text = "" if env("STUB_SGLANG_EMPTY") else "Hello!"
        max_new = body.get("sampling_params", {}).get("max_new_tokens", 8)
        return self._reply(status, {"text": text, "meta_info": {
            "prompt_tokens": len(body.get("text", "")), "completion_tokens": min(2, max_new)}})

    def log_message(self, fmt, *a):
        print(f'INFO:     127.0.0.1 - "{self.command} {self.path}" {a[1] if len(a) > 1 else ""}',
              flush=True)


server = ThreadingHTTPServer((args.host, args.port), Handler)
print("INFO:     Application startup complete.", flush=True)
print(f"INFO:     Uvicorn running on http://{args.host}:{args.port}", flush=True)
if warmup >= 0:
    def announce():
        time.sleep(max(0.0, started + warmup - time.monotonic()))
        print("The server is fired up and ready to roll!", flush=True)
        announced.set()

    threading.Thread(target=announce, daemon=True).start()
server.serve_forever()
