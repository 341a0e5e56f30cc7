"""How a session answers what its monitor sees: the ``[response]`` table of the config.

::

    rules = ["~/.config/coi-sentinel/rules"]   # rule files or folders added to the bundled rules

    [response]
    high = "pause"              # severity -> action; defaults: high pause, critical kill
    critical = "kill"
    max_drops = 0               # events the kernel may lose before the session is paused
    stall_seconds = 10          # the guardian pauses a session whose monitor is silent this long
    kill_memfd_exec = true      # the kernel kills an exec from a memfd (or an unlinked file), itself
    kill_shell_socket = true    # ... a shell or interpreter with a network socket on stdin/stdout
    kill_metadata = true        # ... a connect to a cloud metadata address
    kill_ports = [4444, ...]    # ... a connect to one of these ports (default: the C2 ports)

    [response.rules]
    reverse_shell_socket_dup = "pause"      # per rule, over the rule's own action

A workspace's table is merged over the user's, key by key, and may only make the response
stronger (:func:`weakenings`): a weaker action for a severity, a per-rule action weaker than
any severity gets, more tolerated drops, a longer stall, an in-kernel kill turned off or a
port taken off the list, and rule files of its own are refused unless the workspace is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError, ResponseError
from ..network.ranges import C2_PORTS, METADATA
from .policy import DEFAULT_BY_SEVERITY, SEVERITIES, STRENGTH, Action, ActionPolicy

#: keys of the [response] table and their TOML types (``rules`` is a sub-table)
_KEYS: dict[str, type] = {
    "info": str, "low": str, "medium": str, "high": str, "critical": str, "rules": dict,
    "max_drops": int, "stall_seconds": (int, float), "kill_memfd_exec": bool, "kill_shell_socket": bool,
    "kill_metadata": bool, "kill_ports": list,
}

MAX_STALL_SECONDS = 600


@dataclass(frozen=True, slots=True)
class ResponseSettings:
    #: severity -> action, every severity present
    by_severity: tuple[tuple[str, str], ...] = tuple((s, a.value) for s, a in DEFAULT_BY_SEVERITY.items())
    #: rule id -> action, over the rule's own ``action``
    by_rule: tuple[tuple[str, str], ...] = ()
    max_drops: int = 0
    stall_seconds: float = 10.0
    kill_memfd_exec: bool = True
    kill_shell_socket: bool = True
    kill_metadata: bool = True
    kill_ports: tuple[int, ...] = field(default=tuple(sorted(C2_PORTS)))

    def action_of_severity(self, severity: str) -> Action:
        return Action(dict(self.by_severity)[severity])

    def policy(self) -> ActionPolicy:
        return ActionPolicy.from_config(dict(self.by_severity), dict(self.by_rule))

    def kernel_policy(self) -> dict[str, Any]:
        """Keyword arguments of ``ProbeSet.set_kill_policy`` for a session's scope."""
        return {"memfd_exec": self.kill_memfd_exec, "unlinked_exec": self.kill_memfd_exec,
                "shell_socket": self.kill_shell_socket,
                # a session's containers deny io_uring unless its profile allows it; where it
                # is allowed, a connect through it has a destination no policy can check
                "uring_connect": True,
                # a 32-bit socket, connect, dup... (int $0x80) reaches no syscall hook: a
                # session's agent has no use for one
                "compat_syscall": True,
                "blocked": list(METADATA) if self.kill_metadata else [],
                "blocked_ports": list(self.kill_ports)}

    def merged(self, patch: dict[str, Any]) -> "ResponseSettings":
        """These settings with a checked table (:func:`parse`) applied over them."""
        values: dict[str, Any] = {k: v for k, v in patch.items() if k not in SEVERITIES and k != "rules"}
        sev = dict(self.by_severity)
        sev.update({k: v for k, v in patch.items() if k in SEVERITIES})
        values["by_severity"] = tuple((s, sev[s]) for s in SEVERITIES)
        if "rules" in patch:
            rules = dict(self.by_rule)
            rules.update(patch["rules"])
            values["by_rule"] = tuple(sorted(rules.items()))
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.by_severity), "rules": dict(self.by_rule), "max_drops": self.max_drops,
                "stall_seconds": self.stall_seconds, "kill_memfd_exec": self.kill_memfd_exec,
                "kill_shell_socket": self.kill_shell_socket,
                "kill_metadata": self.kill_metadata, "kill_ports": list(self.kill_ports)}


def _action(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be an action name, not {type(value).__name__}")
    try:
        return Action.parse(value).value
    except ResponseError as err:
        raise ConfigError(f"{where}: {err}") from None


def parse(table: Any, origin: str) -> dict[str, Any]:
    """A ``[response]`` TOML table, checked and in canonical form (a patch for
    :meth:`ResponseSettings.merged`)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: response must be a table ([response])")
    out: dict[str, Any] = {}
    for key, value in table.items():
        want = _KEYS.get(key)
        where = f"{origin}: response.{key}"
        if want is None:
            raise ConfigError(f"{origin}: unknown key response.{key!r}",
                              hint=f"one of: {', '.join(_KEYS)}")
        if isinstance(value, bool) and want is not bool or not isinstance(value, want):
            raise ConfigError(f"{where} has the wrong type ({type(value).__name__})")
        if key in SEVERITIES:
            out[key] = _action(value, where)
        elif key == "rules":
            out["rules"] = {str(rid): _action(act, f"{origin}: response.rules.{rid}")
                            for rid, act in value.items()}
        elif key == "max_drops":
            if value < 0:
                raise ConfigError(f"{where} must be 0 or more")
            out[key] = value
        elif key == "stall_seconds":
            if not 1 <= value <= MAX_STALL_SECONDS:
                raise ConfigError(f"{where} must be 1-{MAX_STALL_SECONDS} seconds")
            out[key] = float(value)
        elif key == "kill_ports":
            if not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in value):
                raise ConfigError(f"{where} must be a list of ports (1-65535)")
            out[key] = tuple(sorted(set(value)))
        else:
            out[key] = value
    return out


def weakenings(current: ResponseSettings, patch: dict[str, Any] | None,
               rule_files: tuple[str, ...] | None) -> list[str]:
    """What a workspace's ``[response]`` table (checked) and ``rules`` key ask for that would
    weaken ``current`` (the user's settings)."""
    bad: list[str] = []
    if rule_files:
        bad.append("rules (rule files can disable or override the bundled rules)")
    if not patch:
        return bad
    for sev in SEVERITIES:
        if sev in patch and STRENGTH[Action(patch[sev])] < STRENGTH[current.action_of_severity(sev)]:
            bad.append(f"response.{sev} = {patch[sev]!r}")
    user_rules = dict(current.by_rule)
    strongest = max(STRENGTH[Action(a)] for _s, a in current.by_severity)
    for rid, act in sorted(patch.get("rules", {}).items()):
        floor = STRENGTH[Action(user_rules[rid])] if rid in user_rules else strongest
        if STRENGTH[Action(act)] < floor:
            bad.append(f"response.rules.{rid} = {act!r}")
    if patch.get("max_drops", current.max_drops) > current.max_drops:
        bad.append(f"response.max_drops = {patch['max_drops']}")
    if patch.get("stall_seconds", current.stall_seconds) > current.stall_seconds:
        bad.append(f"response.stall_seconds = {patch['stall_seconds']:g}")
    for key in ("kill_memfd_exec", "kill_shell_socket", "kill_metadata"):
        if patch.get(key) is False and getattr(current, key):
            bad.append(f"response.{key} = false")
    dropped = sorted(set(current.kill_ports) - set(patch.get("kill_ports", current.kill_ports)))
    if dropped:
        bad.append(f"response.kill_ports without {', '.join(map(str, dropped))}")
    return bad


@dataclass(slots=True)
class DropWatch:
    """Events the kernel lost since the session last ran unpaused, against ``max_drops``."""

    limit: int
    base: int = 0

    def over(self, total: int) -> int | None:
        """The events lost since :meth:`reset` when they are more than the limit, else None."""
        lost = total - self.base
        return lost if lost > self.limit else None

    def reset(self, total: int) -> None:
        """The session runs again (resumed): only losses from now on count."""
        self.base = total
