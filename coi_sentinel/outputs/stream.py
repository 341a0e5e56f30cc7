"""Outputs that write JSON lines: stdout, and a file rotated by size."""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from .base import Output
from .spec import OutputSpec

DEFAULT_MAX_BYTES = 100 << 20
DEFAULT_BACKUPS = 5


class StdoutOutput(Output):
    batch_size = 256

    def __init__(self, spec: OutputSpec, stream: IO[bytes] | None = None) -> None:
        super().__init__(spec)
        self.stream = stream

    def deliver(self, payloads: list[Any]) -> None:
        out = self.stream if self.stream is not None else sys.stdout.buffer
        out.write(b"".join(p + b"\n" for p in payloads))
        out.flush()


class FileOutput(Output):
    """JSON lines appended to a file (mode 0600); past ``max_bytes`` it is renamed ``.1``,
    older ones shift up to ``.N`` (``backups``) and the oldest goes."""

    batch_size = 256

    def __init__(self, spec: OutputSpec) -> None:
        super().__init__(spec)
        self.path = spec.target
        self.max_bytes: int = spec.opt("max_bytes", DEFAULT_MAX_BYTES)
        self.backups: int = spec.opt("backups", DEFAULT_BACKUPS)
        self._fd: int | None = None
        self._size = 0

    def open(self) -> None:
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def deliver(self, payloads: list[Any]) -> None:
        if self._fd is None:
            self._open()
        chunk: list[bytes] = []
        size = self._size
        for p in payloads:              # a file never grows past max_bytes (but by one line)
            line = p + b"\n"
            if size and size + len(line) > self.max_bytes:
                self._write(chunk)
                chunk = []
                self._rotate()
                size = 0
            chunk.append(line)
            size += len(line)
        self._write(chunk)

    def _write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        assert self._fd is not None
        view = memoryview(b"".join(lines))
        total = len(view)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += total

    def _rotate(self) -> None:
        self.shut()
        if self.backups == 0:
            os.unlink(self.path)
        else:
            for i in range(self.backups - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def reset(self) -> None:
        self.shut()

    def shut(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
