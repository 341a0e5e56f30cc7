"""What an output is: :class:`OutputSpec`, read from a command-line URL or a config table.

On the command line (``--alerts-to``, repeatable) an output is a URL whose query holds its
options::

    stdout                                  stdout?format=falco
    file:/var/log/coi/alerts.jsonl?max_bytes=50M&backups=5
    syslog+udp://127.0.0.1:514              syslog+tcp://siem.example:601?facility=auth
    syslog+tls://siem.example:6514?ca=/etc/ssl/siem.pem
    syslog:/dev/log                         (a unix datagram socket)
    http://hooks.example/coi?batch=50&header=Authorization:Bearer%20xyz
    otlp+http://collector.example:4318      (POST .../v1/logs, protobuf)

In a config file each output is a table of ``[[outputs]]`` with ``url`` and the same options
as keys (``headers`` a table)::

    [[outputs]]
    url = "syslog+tcp://10.0.0.5:601"
    min_severity = "high"
    rate = "20/m"

Options every output takes: ``min_severity`` (``min``; default ``info``: everything),
``rate`` (per rule: ``N/s``, ``N/m``, ``N/h``; default unlimited), ``format`` (``json``: our
alert record; ``falco``: Falco's JSON alert), ``queue`` (alerts held while the output is slow;
default 10000), ``name``.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..severity import LABELS, Severity

KINDS = ("stdout", "file", "syslog", "webhook", "otlp")
FORMATS = ("json", "falco")
SYSLOG_TRANSPORTS = ("udp", "tcp", "tls", "unix")

_COMMON = {"name", "min_severity", "min", "rate", "format", "queue"}
_OPTIONS = {
    "stdout": set(),
    "file": {"max_bytes", "backups"},
    "syslog": {"facility", "ca", "verify", "app_name", "timeout"},
    "webhook": {"batch", "retries", "headers", "header", "timeout", "ca", "verify", "backoff"},
    "otlp": {"batch", "retries", "headers", "header", "timeout", "ca", "backoff"},
}
_SIZE = re.compile(r"^(\d+)\s*([kKmMgG]?)i?[bB]?$")
_RATE = re.compile(r"^(\d+)\s*/\s*(s|m|h|sec|min|hour)$")
_PERIOD = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` alerts of one rule per ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period, f"{self.period}s")
        return f"{self.count}/{unit}"


@dataclass(frozen=True, slots=True)
class OutputSpec:
    kind: str
    target: str                     # path, socket path, URL or host:port ("" for stdout)
    name: str
    format: str = "json"
    min_severity: Severity = Severity.INFO
    rate: Rate | None = None
    queue: int = 10_000
    transport: str = ""             # syslog: udp, tcp, tls, unix
    headers: tuple[tuple[str, str], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def opt(self, key: str, default: Any) -> Any:
        return self.options.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """Everything, for the delivery process (headers included: sent on a pipe, not argv)."""
        return {"kind": self.kind, "target": self.target, "name": self.name, "format": self.format,
                "min_severity": self.min_severity.label,
                "rate": [self.rate.count, self.rate.period] if self.rate else None,
                "queue": self.queue, "transport": self.transport,
                "headers": [list(h) for h in self.headers], "options": dict(self.options)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "OutputSpec":
        rate = d.get("rate")
        return cls(d["kind"], d["target"], d["name"], d["format"], Severity.parse(d["min_severity"]),
                   Rate(int(rate[0]), float(rate[1])) if rate else None, int(d["queue"]), d["transport"],
                   tuple((str(k), str(v)) for k, v in d["headers"]), dict(d["options"]))

    def describe(self) -> dict[str, Any]:
        """For status and --json: what it is, without header values (they may hold secrets)."""
        return {"name": self.name, "kind": self.kind, "target": self.target, "format": self.format,
                "min_severity": self.min_severity.label, "rate": str(self.rate) if self.rate else None,
                "queue": self.queue}


def parse_url(text: str, origin: str = "--alerts-to") -> OutputSpec:
    """One output from a command-line URL (see the module's doc)."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{origin}: empty output")
    base, _, query = text.partition("?")
    opts: dict[str, Any] = {}
    headers: list[tuple[str, str]] = []
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key == "header":
            headers.append(_header(value, origin))
        else:
            opts[key] = value
    return _build(base, opts, headers, origin)


def parse_table(table: Mapping[str, Any], origin: str) -> OutputSpec:
    """One output from a config table (``[[outputs]]``)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{origin}: an output must be a table with 'url'")
    opts = dict(table)
    url = opts.pop("url", None)
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{origin}: an output needs 'url' (stdout, file:PATH, syslog+udp://..., "
                          "http://..., otlp+http://...)")
    raw_headers = opts.pop("headers", {})
    if not isinstance(raw_headers, Mapping) or not all(isinstance(v, str) for v in raw_headers.values()):
        raise ConfigError(f"{origin}: headers must be a table of strings")
    headers = [(str(k), v) for k, v in raw_headers.items()]
    if "?" in url:
        raise ConfigError(f"{origin}: give options as keys of the table, not in the url")
    return _build(url, opts, headers, origin)


def parse_config(data: Mapping[str, Any], origin: str) -> list[OutputSpec]:
    """The ``outputs`` of a parsed config file (a list of tables); [] when it has none."""
    tables = data.get("outputs", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{origin}: outputs must be a list of tables ([[outputs]])")
    return [parse_table(t, f"{origin}: outputs[{i}]") for i, t in enumerate(tables)]


def load_config(path: str | Path) -> list[OutputSpec]:
    """The ``[[outputs]]`` of a TOML file (other keys are left to their readers)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such file") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from err
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from err
    return parse_config(data, str(path))


def _header(text: str, origin: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ConfigError(f"{origin}: header must be 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def _build(url: str, opts: dict[str, Any], headers: list[tuple[str, str]], origin: str) -> OutputSpec:
    kind, target, transport = _kind_of(url, origin)
    allowed = _COMMON | _OPTIONS[kind]
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ConfigError(f"{origin}: {kind} output has no option {unknown[0]!r} "
                          f"(options: {', '.join(sorted(allowed - {'min', 'header'}))})")
    if headers and kind not in ("webhook", "otlp"):
        raise ConfigError(f"{origin}: headers are for http and otlp outputs")
    fmt = str(opts.pop("format", "json"))
    if fmt not in FORMATS:
        raise ConfigError(f"{origin}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    sev_text = opts.pop("min_severity", opts.pop("min", "info"))
    sev = Severity.lookup(sev_text)
    if sev is None:
        raise ConfigError(f"{origin}: unknown severity {sev_text!r} (one of: {', '.join(LABELS)})")
    rate = _rate(opts.pop("rate", None), origin)
    queue = _int(opts.pop("queue", 10_000), "queue", origin, low=1)
    name = str(opts.pop("name", "") or _default_name(kind, target, transport))
    options: dict[str, Any] = {}
    for key, value in opts.items():
        if key == "max_bytes":
            options[key] = _size(value, origin)
        elif key in ("backups", "batch", "retries"):
            options[key] = _int(value, key, origin, low=0 if key != "batch" else 1)
        elif key in ("timeout", "backoff"):
            options[key] = _float(value, key, origin)
        elif key == "verify":
            options[key] = value if isinstance(value, bool) else str(value).lower() not in ("0", "false", "no")
        elif key == "facility":
            if str(value) not in FACILITIES:
                raise ConfigError(f"{origin}: unknown syslog facility {value!r}")
            options[key] = FACILITIES[str(value)]
        else:
            options[key] = str(value)
    return OutputSpec(kind, target, name, fmt, sev, rate, queue, transport, tuple(headers), options)


def _kind_of(url: str, origin: str) -> tuple[str, str, str]:
    if url == "stdout":
        return "stdout", "", ""
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise ConfigError(f"{origin}: {url!r} is not an output (stdout, file:PATH, syslog+udp://HOST:PORT, "
                          "http://..., otlp+http://HOST:PORT)")
    scheme = scheme.lower()
    if scheme == "file":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ConfigError(f"{origin}: file output needs a path (file:/var/log/coi/alerts.jsonl)")
        return "file", path, ""
    if scheme in ("http", "https"):
        return "webhook", url, ""
    if scheme in ("otlp+http", "otlp+https", "otlp"):
        real = "https" if scheme == "otlp+https" else "http"
        endpoint = f"{real}:{rest}"
        parsed = urllib.parse.urlsplit(endpoint)
        if not parsed.hostname:
            raise ConfigError(f"{origin}: otlp output needs a host (otlp+http://collector:4318)")
        if parsed.path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/logs"
        return "otlp", endpoint, ""
    if scheme == "syslog" or scheme.startswith("syslog+"):
        transport = scheme.partition("+")[2] or "unix"
        if transport not in SYSLOG_TRANSPORTS:
            raise ConfigError(f"{origin}: syslog transport must be one of {', '.join(SYSLOG_TRANSPORTS)}")
        if transport == "unix":
            path = rest[2:] if rest.startswith("//") else rest
            return "syslog", path or "/dev/log", "unix"
        parsed = urllib.parse.urlsplit(f"x:{rest}")
        if not parsed.hostname:
            raise ConfigError(f"{origin}: syslog output needs HOST:PORT (syslog+{transport}://host:514)")
        default_port = {"udp": 514, "tcp": 601, "tls": 6514}[transport]
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return "syslog", f"{host}:{parsed.port or default_port}", transport
    raise ConfigError(f"{origin}: unknown output {scheme!r} (stdout, file, syslog, syslog+udp, "
                      "syslog+tcp, syslog+tls, http, https, otlp+http, otlp+https)")


def _default_name(kind: str, target: str, transport: str) -> str:
    if kind == "stdout":
        return "stdout"
    if kind == "syslog":
        return f"syslog+{transport}:{target}"
    if kind == "file":
        return f"file:{target}"
    return f"{kind}:{urllib.parse.urlsplit(target).netloc}"


def _rate(value: Any, origin: str) -> Rate | None:
    if value in (None, "", 0, "0"):
        return None
    m = _RATE.match(str(value).strip())
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"{origin}: rate must look like 10/s, 20/m or 100/h, not {value!r}")
    return Rate(int(m.group(1)), _PERIOD[m.group(2)])


def _int(value: Any, key: str, origin: str, *, low: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {key} must be a whole number, not {value!r}") from None
    if isinstance(value, bool) or n < low:
        raise ConfigError(f"{origin}: {key} must be a whole number >= {low}")
    return n


def _float(value: Any, key: str, origin: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {key} must be a number of seconds, not {value!r}") from None
    if x <= 0:
        raise ConfigError(f"{origin}: {key} must be above 0")
    return x


def _size(value: Any, origin: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value).strip())
    if not m:
        raise ConfigError(f"{origin}: max_bytes must be a size like 50M, not {value!r}")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
