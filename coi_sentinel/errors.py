"""The exception tree. One base, one subclass per layer; the CLI turns them into one line.

Library code raises these (translating OSError and library errors with ``raise ... from err``);
only :mod:`coi_sentinel.cli` decides how they are shown and which exit code they get.
"""

from __future__ import annotations


class SentinelError(Exception):
    """Base of every error coi-sentinel raises on purpose."""

    #: a short hint printed after the message ("run as root", "run scripts/setup.sh", ...)
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ProbeError(SentinelError):
    """Loading, attaching or reading the BPF probes failed."""


class FeatureMissing(ProbeError):
    """A kernel or host feature the probes need is not there (root, tracefs, headers, bcc)."""

    def __init__(self, feature: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.feature = feature


class ScopeError(SentinelError):
    """A cgroup or container to watch could not be resolved."""


class EventDecodeError(SentinelError):
    """A raw record or a JSON event line could not be decoded."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        where = f"{source}:{line}: " if source is not None and line is not None else ""
        super().__init__(where + message)
        self.source = source
        self.line = line


class OutputError(SentinelError):
    """Writing events or alerts to a file failed."""


class SessionError(SentinelError):
    """The session layer (Incus containers, profiles, config, images) could not do its job."""


class IncusUnavailable(SessionError):
    """The Incus daemon does not answer on its unix socket, or pylxd is missing."""


class IncusError(SessionError):
    """An Incus API call failed; ``operation`` says which one."""

    def __init__(self, operation: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{operation}: {message}", hint=hint)
        self.operation = operation


class ImageMissing(SessionError):
    """The session image (an alias) is not in the Incus image store."""

    def __init__(self, alias: str, hint: str | None = None) -> None:
        super().__init__(f"image {alias!r} is not in the Incus image store",
                         hint=hint or "build it with `coi-sentinel image build`")
        self.alias = alias


class ImageBuildError(SessionError):
    """Building or importing an image failed."""


class WorkspaceError(SessionError):
    """The workspace does not exist, is not a directory, or cannot be mounted safely."""

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"workspace {path}: {message}", hint=hint)
        self.path = path


class NameClash(SessionError):
    """A container with the session's name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"session {name} already exists",
                         hint=f"attach with `coi-sentinel attach {name}` or pick another --slot")
        self.name = name


class SlotLimit(SessionError):
    """Every slot of the workspace is taken."""

    def __init__(self, workspace: str, limit: int) -> None:
        super().__init__(f"all {limit} session slots of {workspace} are in use",
                         hint="stop one with `coi-sentinel shutdown NAME` or raise max_slots")
        self.workspace = workspace
        self.limit = limit


class UnknownTool(SessionError):
    """No agent profile has that name."""

    def __init__(self, tool: str, known: list[str]) -> None:
        super().__init__(f"unknown tool {tool!r} (known: {', '.join(known)})")
        self.tool = tool
        self.known = known


class ToolNotInstalled(SessionError):
    """The profile's install check failed inside the container."""


class ProfileError(SessionError):
    """An agent profile file is malformed; the message starts with ``file:line:``."""


class ConfigError(SessionError):
    """A config file is malformed or asks for something it may not."""


class SessionNotFound(SessionError):
    """No session (container) of that name exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no session named {name!r}", hint="see `coi-sentinel list`")
        self.name = name


class ContainerDied(SessionError):
    """The container stopped while the session was running."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(f"container {name} stopped during the session" + (f": {detail}" if detail else ""))
        self.name = name


class StagingError(SessionError):
    """Credentials or config files could not be staged into the container."""


class StateError(SessionError):
    """Saving or restoring a session's state directory failed."""


class MonitorError(SessionError):
    """The session's monitor could not start; the session does not run unmonitored."""


class TraceError(SentinelError):
    """A trace (or audit log) file could not be read or written.

    Reading errors name the file and line (``trace.jsonl:42: not JSON: ...``) and carry a
    :attr:`reason` from :data:`coi_sentinel.trace.format.READ_ERRORS` (``"truncated"``,
    ``"schema"``, ``"json"``, ``"event"``, ``"header"``, ``"foreign"``, ...), which lenient
    reading counts by. Writing errors have reason ``"write"`` and the OS :attr:`errno`.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 reason: str = "format", errno: int | None = None) -> None:
        if source is not None and line is not None:
            where = f"{source}:{line}: "
        elif source is not None:
            where = f"{source}: "
        else:
            where = ""
        super().__init__(where + message)
        self.detail = message
        self.source = source
        self.line = line
        self.reason = reason
        self.errno = errno


class RecordError(SentinelError):
    """A record (alert, action, drops, monitor...) is malformed: a line of a log or the
    daemon's stream that does not decode (:mod:`coi_sentinel.records`)."""


class AuditError(SentinelError):
    """The audit log could not be opened, written, rotated or exported."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class AuditDiskFull(AuditError):
    """No space left for the audit log (ENOSPC, EDQUOT, or a file size limit, EFBIG).

    Records are kept in memory (bounded) and written when a later flush succeeds; a session
    that gets this pauses instead of running unlogged.
    """

    hint = "free space on the log's file system; the log resumes by itself"

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, path=path)
        self.errno = errno


class RuleError(SentinelError):
    """A rule file is wrong. The message starts with ``path:line:``, like a compiler's."""

    def __init__(self, path: str, line: int, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}:{line}: {reason}", hint=hint)
        self.path = path
        self.line = line
        self.reason = reason


class RuleSetInvalid(RuleError):
    """Loading a rule set found errors; the first is the message, all are in ``diagnostics``."""

    def __init__(self, path: str, line: int, reason: str, *, diagnostics: tuple = ()) -> None:
        super().__init__(path, line, reason)
        self.diagnostics = diagnostics


class ResponseError(SentinelError):
    """An automated response (freeze, kill, block) could not be carried out."""


class NetworkError(SentinelError):
    """A session's network policy (nftables, netlink, name resolution) could not be built,
    applied, read or removed. ``session`` names the session when there is one."""

    def __init__(self, message: str, *, session: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.session = session
