"""Network policies through the daemon, for sessions run without root.

nftables needs CAP_NET_ADMIN, so a session whose ``run`` is not root has the daemon install,
refresh and remove its policy: op ``network`` with ``do`` one of

``hooks-missing-devices``
    whether this kernel hooks a veth before it exists (:meth:`Firewall.hooks_missing_devices`);
``prepare`` (``name``, ``ifname``), ``apply`` (``name``, ``policy``, ``ifname`` or null),
``refresh`` (``name``, ``policy``), ``block`` (``name``, ``address``, ``port``, ``timeout``)
    the same steps as :class:`~coi_sentinel.network.Firewall`, on a session the peer owns
    (:func:`.peers.check_session`) and only on the veth name the session's name pins
    (:func:`coi_sentinel.network.host_ifname`); ``policy`` is :meth:`Policy.to_dict`;
``sessions``
    the sessions with a policy that the peer may see;
``remove`` (``name``)
    the policy of a session whose container is stopped or gone: the peer must be the one
    that made it (the daemon notes that in ``<state dir>/network/<name>``);
``sweep``
    the peer's policies whose container is gone.

:class:`DaemonFirewall` is the client side, with the methods of ``Firewall`` that a session
(:class:`coi_sentinel.sessions.network.SessionNetwork`) and the ``kill``/``clean`` cleaners
use, so the lifecycle is the same with and without root. What the daemon noted it removes
itself too: at ``unregister`` of a session whose container is no longer running, and in
``sweep``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ..errors import IncusError, NetworkError
from . import peers
from . import protocol as P

log = logging.getLogger(__name__)

#: an Incus instance name (also a file name under <state dir>/network)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DOS = ("hooks-missing-devices", "prepare", "apply", "refresh", "block", "sessions", "remove",
       "sweep")


# ---------------------------------------------------------------- the daemon's side
class Policies:
    """The network policies the daemon keeps for peers; one per daemon."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "network"
        self._fw = None

    @property
    def firewall(self):
        if self._fw is None:
            from ..network import Firewall

            self._fw = Firewall()
        return self._fw

    # -- who made which policy
    def _note(self, name: str, uid: int) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.dir / name).write_text(f"{uid}\n")

    def maker(self, name: str) -> int | None:
        try:
            return int((self.dir / name).read_text())
        except (OSError, ValueError):
            return None

    def _forget(self, name: str) -> None:
        (self.dir / name).unlink(missing_ok=True)

    def noted(self) -> dict[str, int]:
        return {p.name: m for p in self.dir.glob("*") if (m := self.maker(p.name)) is not None} \
            if self.dir.is_dir() else {}

    # -- requests
    def handle(self, req: dict[str, Any], uid: int, client) -> dict[str, Any]:
        from ..network import Policy, host_ifname

        do, name = req.get("do"), req.get("name")
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
            raise P.DaemonError(f"network: {name!r} is not a session name", code=P.USAGE)
        if do == "hooks-missing-devices":
            return {"value": self.firewall.hooks_missing_devices()}
        if do == "sessions":
            mine = self.noted()
            return {"sessions": [s for s in self.firewall.sessions()
                                 if uid == 0 or mine.get(s["session"]) == uid]}
        if do == "sweep":
            return {"removed": self.sweep(client, uid)}
        if do == "remove":
            name = _text(req, "name")
            maker = self.maker(name)
            if uid != 0 and maker != uid:
                if maker is None and name not in {s["session"] for s in self.firewall.sessions()}:
                    return {"removed": False}           # nothing there (removed already)
                raise P.DaemonError(f"the network policy of {name} is not yours", code=P.DENIED)
            removed = self.firewall.remove(name)
            self._forget(name)
            return {"removed": removed}
        if do not in DOS:
            raise P.DaemonError(f"network: unknown do {do!r}", code=P.USAGE, hint=", ".join(DOS))
        name = _text(req, "name")
        ifname = req.get("ifname")
        if uid != 0 and ifname is not None and ifname != host_ifname(name):
            # a session's veth has the name its own name pins (sessions.network.plan_nic);
            # another one would hook a veth of someone else's session
            raise P.DaemonError(f"the veth of {name} is {host_ifname(name)}, not {ifname!r}",
                                code=P.DENIED)
        peers.check_session(client, name, uid)
        maker = self.maker(name)
        if maker is not None and maker != uid and uid != 0:
            raise P.DaemonError(f"the network policy of {name} is uid {maker}'s", code=P.DENIED)
        if maker is None:
            self._note(name, uid)
        fw = self.firewall
        if do == "prepare":
            fw.prepare(name, _text(req, "ifname"))
            return {}
        if do == "block":
            fw.block(name, _text(req, "address"), req.get("port"), timeout=req.get("timeout"))
            return {}
        policy = Policy.from_dict(req.get("policy"))
        if do == "apply":
            applied = fw.apply(name, policy, ifname=ifname if isinstance(ifname, str) else None)
            return {"key": applied.key, "interface": applied.interface, "mode": applied.mode,
                    "resolution": applied.resolution.as_dict()}
        return {"resolution": fw.refresh(name, policy).as_dict()}        # refresh

    def sweep(self, client, uid: int = 0) -> list[str]:
        """Remove the noted policies (of ``uid``; root: all) whose container is gone."""
        from ..host import incus

        removed = []
        for name, maker in self.noted().items():
            if uid != 0 and maker != uid:
                continue
            try:
                incus.raw_get(client, f"instances/{name}")
                continue
            except IncusError as err:
                if "not found" not in str(err).lower():
                    raise
            if self.firewall.remove(name):
                removed.append(name)
            self._forget(name)
        return removed

    def after_unregister(self, name: str, cgroup: Path) -> None:
        """A session ended: a noted policy whose container no longer runs goes (its ``run``
        removes it first; this is for one that could not)."""
        if self.maker(name) is None or cgroup.is_dir():
            return
        try:
            if self.firewall.remove(name):
                log.info("%s: network policy removed at unregister", name)
        except NetworkError as err:
            log.warning("%s: network policy not removed: %s", name, err)
            return
        self._forget(name)


def _text(req: dict[str, Any], key: str) -> str:
    value = req.get(key)
    if not isinstance(value, str) or not value:
        raise P.DaemonError(f"network: {key} must be a non-empty string", code=P.USAGE)
    return value


# ---------------------------------------------------------------- the session's side
class DaemonFirewall:
    """:class:`~coi_sentinel.network.Firewall` for a process that is not root: each step is a
    request to the daemon (one short connection each)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = path

    def _ask(self, do: str, **fields: Any) -> dict[str, Any]:
        from .client import DaemonClient

        try:
            with DaemonClient.connect(self.path) as c:
                return c.request("network", do=do, **fields)
        except P.DaemonError as err:
            raise NetworkError(f"the daemon did not {do} the network policy: {err}",
                               session=fields.get("name")) from err

    def hooks_missing_devices(self) -> bool:
        return bool(self._ask("hooks-missing-devices")["value"])

    def sessions(self) -> list[dict]:
        return self._ask("sessions")["sessions"]

    def prepare(self, session: str, ifname: str) -> None:
        self._ask("prepare", name=session, ifname=ifname)

    def apply(self, session: str, policy, *, ifname: str | None = None, resolver=None, **_kw):
        from ..network import Applied, Resolution

        if resolver is not None:
            log.warning("network: %s: the daemon resolves the allowlist itself", session)
        a = self._ask("apply", name=session, policy=policy.to_dict(), ifname=ifname)
        return Applied(session, a["key"], a["interface"], a["mode"],
                       Resolution.from_dict(a["resolution"]))

    def refresh(self, session: str, policy, **_kw):
        from ..network import Resolution

        return Resolution.from_dict(self._ask("refresh", name=session,
                                              policy=policy.to_dict())["resolution"])

    def block(self, session: str, address, port: int | None = None, *,
              timeout: int | None = None) -> None:
        self._ask("block", name=session, address=str(address), port=port, timeout=timeout)

    def remove(self, session: str) -> bool:
        return bool(self._ask("remove", name=session)["removed"])

    def cleanup_orphans(self, live_sessions: Iterable[str]) -> list[str]:
        return list(self._ask("sweep")["removed"])
