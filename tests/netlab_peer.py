"""Run inside a network namespace by tests/netlab.py (not a test module).

``serve [--lifetime=S] [--bind=ADDR...] LABEL SPEC...``: listeners, SPEC is ``tcp:PORT``
(answers "hi LABEL" and closes) or ``udp:PORT`` (answers "hi LABEL"), on every address of the
namespace (IPv4 and IPv6) or only on the --bind addresses. Prints "ready" when bound; exits by
itself after --lifetime seconds.

``probe TIMEOUT JSON``: for each [address, port, proto] (all at once, one thread each) try to
get the answer; proto ``udpbig`` sends 3000 bytes (fragments). Prints a JSON list of "ok:<answer>", "rejected:<errno>", "refused", "timeout" or "error:<text>".
"""

from __future__ import annotations

import errno
import json
import selectors
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REJECTED = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


def _listener(proto: str, port: int, addr: str | None) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET if addr and ":" not in addr else socket.AF_INET6
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if addr is None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr or "::", port))
    if proto == "tcp":
        s.listen(16)
    s.setblocking(False)
    return s


def serve(label: str, specs: list[str], lifetime: float, binds: list[str]) -> None:
    sel = selectors.DefaultSelector()
    for spec in specs:
        proto, port = spec.split(":")
        for addr in binds or [None]:
            sel.register(_listener(proto, int(port), addr), selectors.EVENT_READ, proto)
    print("ready", flush=True)
    answer = f"hi {label}".encode()
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            try:
                if key.data == "tcp":
                    conn, _addr = sock.accept()
                    with conn:
                        conn.settimeout(1)
                        conn.sendall(answer)
                        conn.shutdown(socket.SHUT_WR)
                        try:
                            conn.recv(64)   # drain, so closing sends FIN, not RST
                        except OSError:
                            pass
                else:
                    _data, addr = sock.recvfrom(65535)
                    sock.sendto(answer, addr)
            except OSError:
                continue


def probe_one(addr: str, port: int, proto: str, timeout: float) -> str:
    try:
        info = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)[0]
    except OSError as err:
        return f"error:{err}"
    s = socket.socket(info[0], info[1])
    s.settimeout(timeout)
    try:
        if proto == "tcp":
            s.connect(info[4])
            data = s.recv(64)
        else:
            s.connect(info[4])
            s.send(b"x" * (3000 if proto == "udpbig" else 8))
            data = s.recv(64)
        return "ok:" + data.decode(errors="replace")
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:
        if err.errno in REJECTED:
            return f"rejected:{errno.errorcode.get(err.errno, err.errno)}"
        return f"error:{err}"
    finally:
        s.close()


def main(argv: list[str]) -> int:
    if argv[0] == "serve":
        lifetime, binds, args = 120.0, [], argv[1:]
        while args and args[0].startswith("--"):
            opt, _, value = args.pop(0).partition("=")
            if opt == "--lifetime":
                lifetime = float(value)
            elif opt == "--bind":
                binds.append(value)
        serve(args[0], args[1:], lifetime, binds)
        return 0
    if argv[0] == "probe":
        timeout = float(argv[1])
        targets = json.loads(argv[2])
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            results = list(pool.map(lambda t: probe_one(t[0], int(t[1]), t[2], timeout), targets))
        print(json.dumps(results))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
