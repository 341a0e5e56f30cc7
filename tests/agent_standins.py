"""Scripted stand-ins for the agents' model APIs (not a test module; run by the driven-run tests
inside the fake upstream, tests/upstream.py, never reachable off the machine).

    python3 agent_standins.py anthropic|openai --bind ADDR --port PORT --script FILE --log FILE

``anthropic``: the Messages API as Claude Code calls it (``POST /v1/messages``, streamed as
server-sent events or not; ``/v1/messages/count_tokens``). A request that offers tools is the
agent's main loop: its answer is step N of the script, N being the number of tool results in
the conversation so far, so the agent is led through ``{"tool": NAME, "input": {...}}`` steps
(Read, Edit, Bash...) to a final ``{"text": ...}``. Any other request (titles, summaries) gets
a short text.

``openai``: Chat Completions (``POST /v1/chat/completions``, streamed or not) as aider calls
it through litellm. A request whose system prompt asks for a commit message gets
``commit_message`` of the script; every other one gets the next ``replies`` entry (the last
one repeats). The Responses API (``POST /v1/responses``, streamed) as codex calls it: like the
Anthropic main loop, the answer is step N of ``steps``, N being the number of tool outputs in
the request's input; a step is ``{"shell": COMMAND}``, ``{"patch": APPLY_PATCH_TEXT}`` or
``{"text": ...}``, and is said with whichever of the agent's tools the request offers (a
``shell``/``exec_command``/``shell_command`` function, ``apply_patch`` as a custom or a
function tool), so the script does not depend on one codex release's tool set.

Every request is appended to the log (one JSON line: path, model, step) so a test can show
what the agent asked. Prints "ready" when listening.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "coi-standin/1"
    api = "anthropic"
    script: dict = {}
    log_path = ""
    lock = threading.Lock()
    counter = [0]

    def log_message(self, *args) -> None:         # quiet: the log file is the record
        pass

    def _log(self, entry: dict) -> None:
        # the credential the agent sent: the test checks it is the one it staged
        entry["auth"] = self.headers.get("x-api-key") or self.headers.get("authorization") or ""
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _sse(self, events: list[tuple[str | None, dict | str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            payload = data if isinstance(data, str) else json.dumps(data)
            chunk = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:        # health checks and the like
        self._log({"method": "GET", "path": self.path})
        self._send(200, b"{}")

    def do_HEAD(self) -> None:
        self._send(200, b"")

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding in ("gzip", "deflate"):
            data = zlib.decompress(data, 47)
        elif encoding == "br":
            raise ValueError("brotli request bodies are not supported")
        return data

    def do_POST(self) -> None:
        raw = self._body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
            self._log({"path": self.path, "undecodable": raw[:200].hex(),
                       "headers": dict(self.headers)})
        path = self.path.split("?")[0]
        if self.api == "anthropic":
            self._anthropic(path, body)
        else:
            self._openai(path, body)

    # ---------------------------------------------------------------- Anthropic Messages
    def _anthropic(self, path: str, body: dict) -> None:
        if path.endswith("/count_tokens"):
            self._log({"path": path})
            self._send(200, json.dumps({"input_tokens": 42}).encode())
            return
        if not path.endswith("/v1/messages"):
            self._log({"path": path, "unknown": True})
            self._send(404, json.dumps({"type": "error", "error": {
                "type": "not_found_error", "message": path}}).encode())
            return
        steps = self.script["steps"]
        results = sum(1 for m in body.get("messages", []) if isinstance(m.get("content"), list)
                      for c in m["content"] if isinstance(c, dict) and c.get("type") == "tool_result")
        # the agent's main loop offers its shell tool (Claude Code's Bash, opencode's bash)
        main = bool(body.get("tools")) and any(str(t.get("name", "")).lower() == "bash"
                                               for t in body["tools"])
        step = steps[min(results, len(steps) - 1)] if main else {"text": "Small fix."}
        self._log({"path": path, "model": body.get("model"), "main": main, "results": results,
                   "step": step, "stream": bool(body.get("stream"))})
        self.counter[0] += 1
        mid = f"msg_{self.counter[0]:04d}"
        if "tool" in step:
            block = {"type": "tool_use", "id": f"toolu_{self.counter[0]:04d}", "name": step["tool"],
                     "input": step["input"]}
            stop = "tool_use"
        else:
            block = {"type": "text", "text": step["text"]}
            stop = "end_turn"
        usage = {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        message = {"id": mid, "type": "message", "role": "assistant", "model": body.get("model", "x"),
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            self._send(200, json.dumps(message).encode())
            return
        start = dict(message, content=[], stop_reason=None)
        if block["type"] == "tool_use":
            first = dict(block, input={})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            first = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        self._sse([
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": first}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop,
                                                                  "stop_sequence": None},
                               "usage": {"output_tokens": 20}}),
            ("message_stop", {"type": "message_stop"}),
        ])

    # ---------------------------------------------------------------- OpenAI Responses
    def _responses(self, path: str, body: dict) -> None:
        items = body.get("input") or []
        results = sum(1 for it in items if isinstance(it, dict)
                      and str(it.get("type", "")).endswith("_call_output"))
        tools = {t.get("name"): t for t in body.get("tools") or [] if isinstance(t, dict)}
        steps = self.script["steps"]
        step = steps[min(results, len(steps) - 1)]
        self.counter[0] += 1
        n = self.counter[0]
        item = self._responses_item(step, tools, n)
        self._log({"path": path, "model": body.get("model"), "results": results, "step": step,
                   "stream": bool(body.get("stream")), "tools": sorted(t for t in tools if t),
                   "item": item})
        response = {"id": f"resp_{n:04d}", "object": "response", "created_at": int(time.time()),
                    "model": body.get("model", "x"), "status": "completed", "output": [item],
                    "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
                              "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                              "total_tokens": 120}}
        if not body.get("stream"):
            self._send(200, json.dumps(response).encode())
            return
        created = dict(response, status="in_progress", output=[])
        self._sse([
            ("response.created", {"type": "response.created", "response": created}),
            ("response.output_item.added", {"type": "response.output_item.added",
                                            "output_index": 0, "item": item}),
            ("response.output_item.done", {"type": "response.output_item.done",
                                           "output_index": 0, "item": item}),
            ("response.completed", {"type": "response.completed", "response": response}),
        ])

    @staticmethod
    def _responses_item(step: dict, tools: dict, n: int) -> dict:
        """One output item saying ``step`` with a tool the agent offered."""
        call = {"id": f"fc_{n:04d}", "call_id": f"call_{n:04d}", "status": "completed"}
        if "patch" in step and "apply_patch" in tools:
            if tools["apply_patch"].get("type") == "custom":
                return dict(call, type="custom_tool_call", name="apply_patch", input=step["patch"])
            return dict(call, type="function_call", name="apply_patch",
                        arguments=json.dumps({"input": step["patch"]}))
        if "patch" in step or "shell" in step:
            command = step.get("shell") or f"apply_patch <<'EOF'\n{step['patch']}EOF"
            if "exec_command" in tools:
                name, args = "exec_command", {"cmd": command, "workdir": "/workspace"}
            elif "shell_command" in tools:
                name, args = "shell_command", {"command": command, "workdir": "/workspace"}
            else:
                name, args = "shell", {"command": ["bash", "-lc", command], "workdir": "/workspace"}
            return dict(call, type="function_call", name=name, arguments=json.dumps(args))
        return {"type": "message", "id": f"msg_{n:04d}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": step["text"], "annotations": []}]}

    # ---------------------------------------------------------------- OpenAI Chat Completions
    def _openai(self, path: str, body: dict) -> None:
        if path.endswith("/responses"):
            self._responses(path, body)
            return
        if not path.endswith("/chat/completions"):
            self._log({"path": path, "unknown": True})
            self._send(404, json.dumps({"error": {"message": path, "type": "not_found"}}).encode())
            return
        system = " ".join(str(m.get("content", "")) for m in body.get("messages", [])
                          if m.get("role") == "system").lower()
        if "commit message" in system:
            text, kind = self.script["commit_message"], "commit"
        else:
            replies = self.script["replies"]
            with self.lock:
                n = self.script.setdefault("_n", 0)
                self.script["_n"] = n + 1
            text, kind = replies[min(n, len(replies) - 1)], f"reply{n}"
        self._log({"path": path, "model": body.get("model"), "kind": kind,
                   "stream": bool(body.get("stream"))})
        created = int(time.time())
        usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        if not body.get("stream"):
            self._send(200, json.dumps({
                "id": "chatcmpl-1", "object": "chat.completion", "created": created,
                "model": body.get("model", "x"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}], "usage": usage}).encode())
            return
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created,
                 "model": body.get("model", "x")}
        self._sse([
            (None, dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": text},
                                         "finish_reason": None}])),
            (None, dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        usage=usage)),
            (None, "[DONE]"),
        ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("api", choices=["anthropic", "openai"])
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    Handler.api = args.api
    with open(args.script) as f:
        Handler.script = json.load(f)
    Handler.log_path = args.log
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    threading.Timer(args.lifetime, server.shutdown).start()
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
