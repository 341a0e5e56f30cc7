"""The corpus's "outside" host: TCP listeners run inside a network namespace of this machine
(make_corpus.py starts it with `ip netns exec`), so exfiltration, C2 and mining-pool traffic
has somewhere real to go without leaving the machine.

    testhost.py PORT...

HTTP ports (80, 8080) read a request (headers and Content-Length body) and answer 200 "ok".
Every other port answers the first chunk it gets with one JSON line (a stratum or C2 reply)
and then reads until the peer closes (a sink for bulk uploads). Each connection is dropped
after 20 s of silence. Runs until SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

HTTP_PORTS = {80, 8080}
IDLE_SECONDS = 20
REPLY = b'{"id":1,"jsonrpc":"2.0","result":{"status":"OK"}}\n'


def serve_http(conn: socket.socket) -> None:
    data = b""
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
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def serve_stream(conn: socket.socket) -> None:
    first = True
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return
        if first:
            conn.sendall(REPLY)
            first = False


def handle(conn: socket.socket, port: int) -> None:
    with conn:
        conn.settimeout(IDLE_SECONDS)
        try:
            (serve_http if port in HTTP_PORTS else serve_stream)(conn)
        except OSError:
            pass            # a reset or a timeout ends the connection; nothing to report


def listen(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, port), daemon=True).start()


def main() -> None:
    ports = [int(p) for p in sys.argv[1:]]
    for port in ports:
        threading.Thread(target=listen, args=(port,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
