"""The daemon: one sentinel per host. The probes load once; every session registers its
container's cgroup as a scope over a unix socket (:mod:`.protocol`, docs/daemon.md).

Module map: protocol (socket path, framing, errors), scope (one registered scope: audit log,
engine, responder, guardian), server (the daemon: loop, connections, re-adoption, reload),
client (requests, subscriptions, starting a daemon).
"""
