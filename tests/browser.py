"""Headless Chromium (the Debian package ``chromium``) for tests that look at pages: the DOM after
scripts ran (``--dump-dom``) and screenshots. Offline: every network feature Chromium has on its
own is turned off, and the pages are local files."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--no-proxy-server"]


def chromium() -> str:
    """The chromium binary, or skip naming what is missing."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("needs headless Chromium: the Debian package chromium (scripts/setup.sh)")
    return path


def _run(args: list[str], profile: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def dump_dom(page: Path, profile: Path, fragment: str = "") -> str:
    """The page's DOM, serialised after its scripts ran (``fragment``: ``#...`` of the URL)."""
    p = _run(["--dump-dom", page.resolve().as_uri() + fragment], profile)
    assert p.returncode == 0 and "<html" in p.stdout, p.stderr[-2000:]
    return p.stdout


def screenshot(page: Path, png: Path, profile: Path, width: int = 1280, height: int = 1600) -> Path:
    p = _run([f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()],
             profile)
    assert p.returncode == 0 and png.is_file() and png.stat().st_size > 10_000, p.stderr[-2000:]
    return png


class Element:
    __slots__ = ("tag", "attrs", "parts", "children", "parent")

    def __init__(self, tag: str, attrs: dict[str, str], parent: "Element | None") -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.parts: list[str | Element] = []
        self.children: list[Element] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def select(self, tag: str, *classes: str, **attrs: str) -> list["Element"]:
        """Descendants with this tag, these classes and attribute values (data_pid= for
        data-pid=)."""
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [e for e in self.iter() if e.tag == tag and set(classes) <= e.classes
                and all(e.attrs.get(k) == v for k, v in want.items())]


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        el = Element(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(el)
        self.cur.parts.append(el)
        if tag not in _VOID:
            self.cur = el

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.parts.append(data)


def parse(dom: str) -> Element:
    parser = _Parser()
    parser.feed(dom)
    parser.close()
    return parser.root


def terminal_png(ansi: str, png: Path, profile: Path, *, title: str, cols: int = 80,
                 rows: int = 24) -> Path:
    """A terminal's screen (``tmux capture-pane -e -p``: text with colour escapes) drawn as a
    PNG: rich renders it as an SVG terminal window, Chromium takes the picture."""
    import io

    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=cols, height=rows, force_terminal=True,
                      color_system="truecolor", file=io.StringIO())
    lines = ansi.rstrip("\n").split("\n")[:rows]
    for line in lines + [""] * (rows - len(lines)):
        console.print(Text.from_ansi(line), no_wrap=True, overflow="crop", end="\n")
    svg = png.with_suffix(".svg")
    svg.write_text(console.export_svg(title=title))
    return screenshot(svg, png, profile, width=1000, height=640)
