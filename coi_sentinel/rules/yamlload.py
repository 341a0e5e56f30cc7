"""YAML reading for rule files: line numbers kept, duplicate keys rejected, no surprises.

PyYAML's SafeLoader silently keeps the last of two equal keys and reads ``yes``/``no``/``on``/
``off`` as booleans and ``2024-01-01`` as a date. A rule file gets a loader that

- records the line of every mapping, key and value (:class:`LineDict`, :class:`LineList`),
- reports a duplicate key as an error (the first value is kept so loading can go on),
- reads only ``true``/``false`` as booleans and never builds dates,
- turns every YAML error into a diagnostic with ``path:line`` - never a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import Diagnostics
from .model import Source

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_VALUE_TAG = "tag:yaml.org,2002:value"    # YAML 1.1 reads a bare "=" as a "value key"
#: a rule file larger than this is refused before it is read: the YAML parser takes seconds
#: per MiB, and all bundled rules together are under 100 KiB
MAX_FILE_BYTES = 512 * 1024


class LineDict(dict):
    """A mapping that knows its own line and the line of each key and value."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}
        self.value_lines: dict[Any, int] = {}
        #: scalar values: (text as written in the file, line where that text starts)
        self.value_raw: dict[Any, tuple[str, int]] = {}

    def key_line(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)

    def value_line(self, key: Any) -> int:
        return self.value_lines.get(key, self.key_line(key))


class LineList(list):
    """A sequence that knows its own line and the line of each item."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []

    def item_line(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _RuleLoader(yaml.SafeLoader):
    def __init__(self, stream: str, path: str, diags: Diagnostics) -> None:
        super().__init__(stream)
        self.path = path
        self.diags = diags


# YAML 1.1 booleans (yes/no/on/off), timestamps and "=" are resolved as plain strings
_RuleLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG, _VALUE_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RuleLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))


def _line(node: yaml.Node) -> int:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        line += 1   # the text of a block scalar starts under its indicator
    return line


def _raw(node: yaml.ScalarNode) -> tuple[str, int]:
    start, end = node.start_mark, node.end_mark
    if start.buffer is None:
        return "", start.line + 1
    return start.buffer[start.index:end.index], start.line + 1


def _construct_map(loader: _RuleLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            loader.diags.error(Source(loader.path, key_line), "a mapping key must be a plain value")
            continue
        if key in out:
            loader.diags.error(Source(loader.path, key_line),
                               f"duplicate key {key!r} (first at line {out.key_lines[key]})")
            continue
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_line
        out.value_lines[key] = _line(value_node)
        if isinstance(value_node, yaml.ScalarNode):
            out.value_raw[key] = _raw(value_node)
    return out


def _construct_seq(loader: _RuleLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(_line(item))
    return out


_RuleLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_RuleLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_text(text: str, path: str, diags: Diagnostics) -> Any:
    """Parse YAML text; problems go to ``diags``. Returns None when the text is not YAML."""
    try:
        loader = _RuleLoader(text, path, diags)
    except yaml.YAMLError as err:       # the reader refuses control characters at once
        mark = getattr(err, "position", None)
        line = text.count("\n", 0, mark) + 1 if isinstance(mark, int) else 1
        char = getattr(err, "character", None)
        what = f" (character U+{char:04X})" if isinstance(char, int) else ""
        diags.error(Source(path, line), f"invalid YAML: {getattr(err, 'reason', err)}{what}")
        return None
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = err.problem or err.context or "not YAML"
        diags.error(Source(path, line), f"invalid YAML: {what}")
    except yaml.YAMLError as err:
        diags.error(Source(path, 1), f"invalid YAML: {err}")
    except RecursionError:
        diags.error(Source(path, 1), "YAML nesting is too deep")
    finally:
        loader.dispose()
    return None


def load_file(path: Path, diags: Diagnostics, name: str | None = None) -> Any:
    """Read and parse one rule file; unreadable or undecodable files become diagnostics
    (named ``name``, by default the path)."""
    name = name or str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        diags.error(Source(name, 1), f"cannot read the file: {err.strerror or err}")
        return None
    if len(raw) > MAX_FILE_BYTES:
        diags.error(Source(name, 1), f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, the "
                                     "limit for a rule file: split it")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        diags.error(Source(name, line), "the file is not UTF-8 text")
        return None
    return load_text(text, name, diags)
