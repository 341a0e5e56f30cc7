"""The attacker's end of the prevention tests, run in a network-namespace test host.

    attacker.py listen IP PORT SECONDS    wait for one connection (a reverse shell)
    attacker.py connect IP PORT SECONDS   connect to a bind shell (retrying until it listens)

Either way it sends a command, reads until the peer closes or stays quiet for a second, and
prints one JSON line: {"connected": bool, "received": <bytes from the peer>}. "ready" is
printed first once a listener is bound.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def talk(conn: socket.socket) -> int:
    got = 0
    try:
        conn.sendall(b"echo PWNED\n")
    except OSError:
        pass
    conn.settimeout(1.0)
    while True:
        try:
            data = conn.recv(4096)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        got += len(data)
    conn.close()
    return got


def main() -> None:
    mode, ip, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    result = {"connected": False, "received": 0}
    if mode == "listen":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((ip, port))
        srv.listen(1)
        srv.settimeout(seconds)
        print("ready", flush=True)
        try:
            conn, _ = srv.accept()
            result = {"connected": True, "received": talk(conn)}
        except socket.timeout:
            pass
    else:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                conn = socket.create_connection((ip, port), timeout=1.0)
            except OSError:
                time.sleep(0.05)
                continue
            result = {"connected": True, "received": talk(conn)}
            break
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
