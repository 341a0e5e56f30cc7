"""The corpus's "outside" host: TCP listeners run inside a network namespace of this machine
(make_corpus.py starts it with `ip netns exec`), so exfiltration, C2 and mining-pool traffic
has somewhere real to go without leaving the machine.

    testhost.py [--www DIR] PORT...     serve (prints "ready"); GET of a file in DIR sends it
    testhost.py --dial HOST PORT        be the attacker of a bind shell: connect (retrying
                                        for 15 s), drive the shell, exit

Every port tells its client by what it sends first (within half a second):
- an HTTP request: read it (headers and Content-Length body), answer 200 "ok";
- nothing, or a shell prompt: the attacker's end of a reverse shell - send `id`, `uname -a`,
  `exit`, then read until the peer closes;
- anything else: answer the first chunk with one JSON line (a stratum or C2 reply), then read
  until the peer closes (a sink for uploads).
UDP port 53 answers every DNS query with NXDOMAIN (a name server that logs what it is asked).
Each connection is dropped after 20 s of silence. Runs until SIGTERM.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time

IDLE_SECONDS = 20
FIRST_WAIT = 0.5
SHELL_COMMANDS = (b"id\n", b"uname -a\n", b"exit\n")
_HTTP = re.compile(rb"^(GET|POST|PUT|HEAD|OPTIONS|DELETE|PATCH|CONNECT) ")
_PROMPT = re.compile(rb"([$#>%] ?$|no job control|can't access tty|sh-[0-9.]+|^\s*$)")
REPLY = b'{"id":1,"jsonrpc":"2.0","result":{"status":"OK"}}\n'


WWW: list[str] = []


def serve_http(conn: socket.socket, data: bytes = b"") -> None:
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    payload = b"ok"
    path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
    name = path.lstrip("/").split("?", 1)[0]
    if WWW and name and "/" not in name and not name.startswith("."):
        try:
            with open(f"{WWW[0]}/{name}", "rb") as f:
                payload = f.read()
        except OSError:
            pass
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % len(payload) + payload)


def serve_stream(conn: socket.socket, first_chunk: bytes = b"") -> None:
    first = True
    if first_chunk:
        conn.sendall(REPLY)
        first = False
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return
        if first:
            conn.sendall(REPLY)
            first = False


def drive_shell(conn: socket.socket) -> None:
    """The attacker's end of a shell: a few commands, then read until EOF."""
    for command in SHELL_COMMANDS:
        conn.sendall(command)
        time.sleep(0.3)
    while conn.recv(65536):
        pass


def handle(conn: socket.socket, port: int) -> None:
    with conn:
        try:
            conn.settimeout(FIRST_WAIT)
            try:
                first = conn.recv(65536)
            except socket.timeout:
                first = None
            conn.settimeout(IDLE_SECONDS)
            if first is None or (len(first) < 200 and _PROMPT.search(first)):
                drive_shell(conn)
            elif _HTTP.match(first):
                serve_http(conn, first)
            elif first:
                serve_stream(conn, first)
        except OSError:
            pass            # a reset or a timeout ends the connection; nothing to report


def serve_dns() -> None:
    """UDP 53: every query gets NXDOMAIN back (its id, its question)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", 53))
    while True:
        query, peer = srv.recvfrom(4096)
        if len(query) >= 12:
            srv.sendto(query[:2] + b"\x81\x83" + query[4:6] + b"\0\0\0\0\0\0" + query[12:], peer)


def dial(host: str, port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"testhost: nothing listens on {host}:{port}")
            time.sleep(0.2)
    with conn:
        conn.settimeout(IDLE_SECONDS)
        try:
            drive_shell(conn)
        except OSError:
            pass


def listen(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, port), daemon=True).start()


def main() -> None:
    if sys.argv[1:2] == ["--dial"]:
        dial(sys.argv[2], int(sys.argv[3]))
        return
    args = sys.argv[1:]
    if args[:1] == ["--www"]:
        WWW.append(args[1])
        args = args[2:]
    ports = [int(p) for p in args]
    threading.Thread(target=serve_dns, daemon=True).start()
    for port in ports:
        threading.Thread(target=listen, args=(port,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
