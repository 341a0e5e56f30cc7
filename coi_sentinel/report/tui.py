"""`coi-sentinel top`: the live terminal view (textual), drawn from :mod:`.live`.

Fits 80×24: a title line, the host line (the daemon's events per second by type), the scopes
(one line each: state, events/s, alerts by severity, actions, drops, CPU and memory of the
container's cgroup), the selected scope's events by type and busiest processes, the last
alerts, and the keys. Alerts arrive pushed by the daemon (a subscription) and show at once;
the rest refreshes every ``interval`` seconds.

Keys: ↑/↓ select · / filter by text · s cycle the state filter · a only scopes with alerts ·
enter the process tree · p pause · r resume · k kill (each asks y/n) · q quit.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static, Tree

from ..errors import SentinelError
from ..records import ActionRecord, AlertRecord, Record
from .live import SCOPE_HEADER, Busiest, Frame, ScopeRow, Tracker, alert_line, fmt_rate, scope_line

STATE_STYLE = {"running": "green", "frozen": "bold cyan", "orphan": "bold yellow",
               "killed": "bold red", "gone": "dim", "starting": "dim"}
SEV_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
             "low": "cyan", "info": "dim"}
STATE_FILTERS = (None, "running", "frozen", "orphan")
SCOPE_LINES = 6
ALERT_LINES = 5


class Confirm(ModalScreen[bool]):
    """``Pause coi-…-1? y/n``"""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static { width: 60; height: 5; border: heavy $warning; padding: 1 2; background: $panel; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"),
                Binding("escape", "answer(False)", "no")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(f"{self.question}  [b]y[/b]/[b]n[/b]", id="question")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ProcessTree(Screen):
    """A scope's processes as a tree (``processes`` op): pid, name, events, alerts, command."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "back"), Binding("r", "reload", "reload")]

    def __init__(self, scope: str, source, alerting: dict[int, list[str]] | None = None) -> None:
        super().__init__()
        self.scope = scope
        self.source = source
        #: pid -> rules of the alerts it raised (as far as this view has seen them)
        self.alerting = alerting or {}

    def compose(self) -> ComposeResult:
        yield Static(f" processes of {self.scope}  (r reload · esc back)", id="tree-title")
        yield Tree(self.scope, id="tree")

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        tree: Tree = self.query_one("#tree", Tree)
        tree.clear()
        try:
            procs = self.source.processes(self.scope)
        except SentinelError as err:
            tree.root.add_leaf(f"cannot list: {err}")
            tree.root.expand()
            return
        by_pid = {p["pid"]: p for p in procs if isinstance(p.get("pid"), int)}
        kids: dict[int, list[dict]] = {}
        roots = []
        for p in by_pid.values():
            parent = p.get("ppid")
            if parent in by_pid and parent != p["pid"]:
                kids.setdefault(parent, []).append(p)
            else:
                roots.append(p)

        def label(p: dict[str, Any]) -> Text:
            rules = self.alerting.get(p["pid"], [])
            hot = bool(rules or p.get("alerts"))
            t = Text(f"{p['pid']} ", style="dim")
            t.append(str(p.get("name") or "?"), style="bold red" if hot else "bold")
            t.append(f"  {p.get('events', 0)} ev")
            if rules:
                t.append("  !! " + ", ".join(rules), style="bold red")
            elif p.get("alerts"):
                t.append(f"  {p['alerts']} alert(s)", style="bold red")
            cmd = " ".join(str(p.get("cmdline") or "").split())
            if cmd:
                t.append(f"  {cmd[:200]}", style="dim")
            return t

        stack = [(tree.root, p) for p in sorted(roots, key=lambda p: p["pid"], reverse=True)]
        seen = set()
        while stack:
            node, p = stack.pop()
            if p["pid"] in seen:
                continue
            seen.add(p["pid"])
            children = sorted(kids.get(p["pid"], ()), key=lambda c: c["pid"], reverse=True)
            if children:
                branch = node.add(label(p), expand=True)
                stack.extend((branch, c) for c in children)
            else:
                node.add_leaf(label(p))
        tree.root.expand()


class TopApp(App):
    """The live view. ``source`` is a :class:`~.live.DaemonSource` (or anything with its
    methods: status, processes, control, follow, feed, on_item, close)."""

    TITLE = "coi-sentinel top"
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $primary; color: $text; }
    #host { height: 1; color: $text-muted; }
    #scopes { height: 8; }
    #detail { height: 6; border-top: solid $primary-darken-2; }
    #alerts { height: 6; border-top: solid $primary-darken-2; }
    #keys { height: 1; dock: bottom; background: $primary-darken-2; }
    #filter { dock: bottom; height: 3; display: none; }
    #filter.shown { display: block; }
    """
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("up", "move(-1)", show=False), Binding("down", "move(1)", show=False),
        # priority: run when the key arrives, so keys typed right after it reach the box
        Binding("slash", "filter", "filter", priority=True), Binding("s", "state_filter", "state"),
        Binding("a", "alerts_only", "alerts only"), Binding("enter,t", "tree", "tree"),
        Binding("p", "control('pause')", "pause"), Binding("r", "control('resume')", "resume"),
        Binding("k", "control('kill')", "kill"),
    ]

    def __init__(self, source, *, interval: float = 1.0) -> None:
        super().__init__()
        self.source = source
        self.interval = interval
        self.tracker = Tracker()
        self.busiest = Busiest()
        self.frame: Frame | None = None
        self.selected: str | None = None
        self.text_filter = ""
        self.state_filter: str | None = None
        self.alerts_only = False
        self.message = ""
        #: (received, scope, alert) newest last: the subscription's, then status' last_alerts
        self.alerts: list[tuple[float, str, AlertRecord]] = []
        self._alert_keys: set[tuple] = set()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="title")
            yield Static(id="host")
            yield Static(id="scopes")
            yield Static(id="detail")
            yield Static(id="alerts")
        yield Input(placeholder="filter: part of a name, state or tool (enter; esc clears)",
                    id="filter", disabled=True)
        yield Static(" ↑↓ select  / filter  s state  a alerts  ⏎ tree  p pause  r resume  k kill  q quit",
                     id="keys")

    def on_mount(self) -> None:
        self.source.on_item = lambda stream, scope, data: self.call_from_thread(
            self._pushed, stream, scope, data)
        try:
            self.source.follow()
        except SentinelError as err:
            self.message = f"no live alerts: {err}"
        self.refresh_status()
        self.set_interval(self.interval, self.refresh_status)

    # ---------------------------------------------------------------- data
    def refresh_status(self) -> None:
        try:
            status = self.source.status()
        except SentinelError as err:
            self.message = str(err)
            self._draw()
            return
        self.frame = self.tracker.update(status)
        for s in self.frame.scopes:
            for a in s.last_alerts:
                self._add_alert(s.name, a)
        rows = self.visible()
        if rows and self.selected not in [s.name for s in rows]:
            self.selected = rows[0].name
        self._draw()

    def _pushed(self, stream: str, scope: str, data: Record) -> None:
        if isinstance(data, AlertRecord):
            self._add_alert(scope, data)
            self._draw()
        elif isinstance(data, ActionRecord):
            self.message = f"{scope}: {data.action.value} by {data.by}" + (f" ({data.rule})" if data.rule else "")
            self.refresh_status()

    def _add_alert(self, scope: str, a: AlertRecord) -> None:
        key = (scope, a.rule, a.ts_ns, a.time)
        if key in self._alert_keys:
            return
        self._alert_keys.add(key)
        self.alerts.append((time.time(), scope, a))
        del self.alerts[:-50]

    def visible(self) -> list[ScopeRow]:
        if self.frame is None:
            return []
        out = []
        needle = self.text_filter.lower()
        for s in self.frame.scopes:
            if self.state_filter and s.state != self.state_filter:
                continue
            if self.alerts_only and not s.alert_total:
                continue
            if needle and not any(needle in x.lower() for x in (s.name, s.state, s.tool, s.kind)):
                continue
            out.append(s)
        return out

    def current(self) -> ScopeRow | None:
        for s in self.visible():
            if s.name == self.selected:
                return s
        return None

    # ---------------------------------------------------------------- drawing
    def _draw(self) -> None:
        width = max(40, self.size.width or 80)
        f = self.frame
        title = Text(" coi-sentinel top", style="bold")
        if f is not None:
            d = f.daemon
            n = len(f.scopes)
            title.append(f" │ {n} scope{'s' * (n != 1)} │ {fmt_rate(d.rate)} ev/s │ drops {d.drops} │ "
                         f"kills {d.kills} │ {d.rules} rules │ daemon {d.pid}")
        title.truncate(width)
        self.query_one("#title", Static).update(title)
        host = Text(" host: ")
        if f is not None and f.daemon.rates:
            host.append(" ".join(f"{k} {fmt_rate(v)}/s" for k, v in list(f.daemon.rates.items())[:6]))
        else:
            host.append("idle", style="dim")
        filters = [x for x in (f"/{self.text_filter}" if self.text_filter else "",
                               self.state_filter or "", "alerts" if self.alerts_only else "") if x]
        if filters:
            host.append("  filter: " + " ".join(filters), style="bold yellow")
        host.truncate(width)
        self.query_one("#host", Static).update(host)
        self.query_one("#scopes", Static).update(self._scopes_text(width))
        self.query_one("#detail", Static).update(self._detail_text(width))
        self.query_one("#alerts", Static).update(self._alerts_text(width))

    def _scopes_text(self, width: int) -> Text:
        t = Text(" " + SCOPE_HEADER[: width - 1] + "\n", style="bold reverse")
        rows = self.visible()
        if not rows:
            t.append(" no session" + (" matches the filter" if self.frame and self.frame.scopes else "")
                     + (f"  ({self.message})" if self.message else ""), style="dim")
            return t
        names = [s.name for s in rows]
        at = names.index(self.selected) if self.selected in names else 0
        start = max(0, min(at - SCOPE_LINES + 1, len(rows) - SCOPE_LINES))
        for s in rows[start:start + SCOPE_LINES]:
            line = (">" if s.name == self.selected else " ") + scope_line(s)
            row = Text(line[:width], style="reverse" if s.name == self.selected else "")
            i = 1 + 21
            row.stylize(STATE_STYLE.get(s.state, ""), i, i + 8)
            if s.alerts:
                top = next(k for k in ("critical", "high", "medium", "low", "info") if s.alerts.get(k))
                row.stylize(SEV_STYLE[top], 1 + 45, 1 + 56)
            t.append_text(row)
            t.append("\n")
        return t

    def _detail_text(self, width: int) -> Text:
        s = self.current()
        if s is None:
            return Text(self.message or "", style="dim")
        t = Text(f" {s.name}", style="bold")
        t.append(f" {s.kind} · ")
        t.append(s.state, style=STATE_STYLE.get(s.state, ""))
        t.append(f" · {s.tool or '?'} · net {s.network or '?'} · {s.events} events")
        t.truncate(width)
        t.append("\n")
        rates = " ".join(f"{k} {fmt_rate(v)}" for k, v in list(s.rates.items())[:7]) or "no events now"
        t.append((" ev/s: " + rates)[:width] + "\n", style="dim")
        try:
            procs = self.busiest.update(s.name, self.source.processes(s.name))[:2 if self.message else 3]
        except SentinelError as err:
            procs = []
            t.append(f" processes: {err}"[:width] + "\n", style="dim")
        for p in procs:
            cmd = " ".join(p.cmdline.split())
            line = f" {p.pid:>7} {p.name[:12]:<12} {fmt_rate(p.rate):>6}/s {p.events:>7} ev  {cmd}"
            t.append(line[:width] + "\n", style="bold red" if p.alerts else "")
        if self.message:
            t.append(f" {self.message}"[:width], style="bold yellow")
        return t

    def _alerts_text(self, width: int) -> Text:
        t = Text(" LAST ALERTS\n", style="bold")
        if not self.alerts:
            t.append(" none", style="dim")
            return t
        for received, scope, a in self.alerts[-(ALERT_LINES - 1):][::-1]:
            label = a.severity.label
            t.append(" " + alert_line(scope, a, width - 2, received), style=SEV_STYLE.get(label, ""))
            t.append("\n")
        return t

    # ---------------------------------------------------------------- keys
    def action_move(self, step: int) -> None:
        rows = self.visible()
        if not rows:
            return
        names = [s.name for s in rows]
        at = names.index(self.selected) if self.selected in names else 0
        self.selected = names[max(0, min(len(names) - 1, at + step))]
        self._draw()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.disabled = False
        box.add_class("shown")
        box.value = self.text_filter
        self.screen.set_focus(box)      # now, not box.focus()'s callback after the queued keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # '/' is text in the open box, and nothing on the tree or a question
        if action != "filter":
            return True
        return len(self.screen_stack) == 1 and not self.query_one("#filter", Input).has_class("shown")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.text_filter = event.value.strip()
        event.input.remove_class("shown")
        event.input.disabled = True
        self.set_focus(None)
        self.refresh_status()

    def on_key(self, event) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_class("shown"):
            box.remove_class("shown")
            box.disabled = True
            self.text_filter = ""
            self.set_focus(None)
            self.refresh_status()
            event.stop()

    def action_state_filter(self) -> None:
        i = STATE_FILTERS.index(self.state_filter)
        self.state_filter = STATE_FILTERS[(i + 1) % len(STATE_FILTERS)]
        self.refresh_status()

    def action_alerts_only(self) -> None:
        self.alerts_only = not self.alerts_only
        self.refresh_status()

    def action_tree(self) -> None:
        s = self.current()
        if s is not None:
            alerting: dict[int, list[str]] = {}
            for _t, scope, a in self.alerts:
                if scope == s.name and a.process is not None:
                    rules = alerting.setdefault(a.process.pid, [])
                    if a.rule not in rules:
                        rules.append(a.rule)
            self.push_screen(ProcessTree(s.name, self.source, alerting))

    def action_control(self, op: str) -> None:
        s = self.current()
        if s is None:
            return
        name = s.name

        def done(yes: bool | None) -> None:
            if not yes:
                self.message = f"{op} {name}: cancelled"
                self._draw()
                return
            try:
                state = self.source.control(op, name)
                self.message = f"{op} {name}: {state}"
            except SentinelError as err:
                self.message = f"{op} {name}: {err}"
            self.refresh_status()

        self.push_screen(Confirm(f"{op.capitalize()} {name}?"), done)

    def on_unmount(self) -> None:
        self.source.close()
