"""For the output tests: a rule file and events that make alerts, and receivers the tests
start on loopback - an HTTP server that fails the first N posts (or holds them until
released), and an OTLP/HTTP logs receiver decoding with opentelemetry-proto. Each receiver runs
in a thread of the test and stops with it."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import orjson

from coi_sentinel.events import model as m

RULES = """\
- rule: shell_in_agent
  description: a shell under an agent
  severity: {severity}
  events: [exec]
  condition: proc.name in (bash, sh)
  output: "shell %proc.name (%proc.cmdline) under %proc.pname pid=%proc.pid args=%proc.args"
  tags: [T1059, shell]
  false_positives: none
"""


def exec_event(pid: int, filename: str, *argv: str, ppid: int = 10, ts: int = 1_000_000_000) -> m.ExecEvent:
    comm = filename.rsplit("/", 1)[-1]
    return m.ExecEvent(ts_ns=ts, pid=pid, tid=pid, ppid=ppid, uid=1000, gid=1000, comm=comm,
                       cgroup_id=43, scope_id=42, container="agent-1", filename=filename,
                       argv=tuple(argv) or (comm,), argc=len(argv) or 1, errno=0, fd=-100, flags=0)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class WebhookReceiver:
    """POSTs to any path: the first ``fail_first`` get ``fail_status``; the others are kept
    (``bodies``: decoded JSON; ``headers``: each request's headers). While ``hold`` is set,
    requests wait for :meth:`release` before they are answered."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503, hold: bool = False) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.posts = 0
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        if not hold:
            self.released.set()
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recv.released.wait(10)
                with recv.lock:
                    recv.posts += 1
                    fail = recv.posts <= recv.fail_first
                    if not fail:
                        recv.bodies.append(orjson.loads(body))
                        recv.headers.append(dict(self.headers))
                self.send_response(recv.fail_status if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def release(self) -> None:
        self.released.set()

    def alerts(self) -> list[Any]:
        """Every alert received, batches flattened."""
        with self.lock:
            out: list[Any] = []
            for b in self.bodies:
                out.extend(b if isinstance(b, list) else [b])
            return out

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class OtlpReceiver:
    """POST /v1/logs with an ExportLogsServiceRequest (protobuf): the requests, decoded."""

    def __init__(self, fail_first: int = 0) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        self.fail_first = fail_first
        self.posts = 0
        self.requests: list[Any] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.headers.get("Content-Type") == "application/x-protobuf"
                req = logs_service_pb2.ExportLogsServiceRequest()
                req.ParseFromString(body)
                with recv.lock:
                    recv.posts += 1
                    if recv.posts <= recv.fail_first:
                        ok = None
                    else:
                        recv.requests.append(req)
                        recv.paths.append(self.path)
                if ok is None:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                self.send_response(200 if ok else 415)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def records(self) -> list[tuple[Any, Any, Any]]:
        """(resource, scope, log record) of every record received."""
        with self.lock:
            return [(rl.resource, sl.scope, rec) for req in self.requests for rl in req.resource_logs
                    for sl in rl.scope_logs for rec in sl.log_records]

    def __enter__(self) -> "OtlpReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
