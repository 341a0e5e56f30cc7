"""A session report as Markdown: the same sections as the HTML page, as text and tables
(readable in a terminal, pasteable into a ticket)."""

from __future__ import annotations

from .model import Proc, SessionReport, format_bytes, format_duration

#: at most this many lines of the process tree
MAX_TREE_LINES = 2000


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def render(rep: SessionReport) -> str:
    s = rep.summary
    out = [f"# coi-sentinel report: {s.session}", "", f"**Verdict:** {s.verdict}", ""]
    out += _table(["", ""], [
        ["agent", s.agent], ["workspace", s.workspace], ["network", s.network],
        ["started", s.start_time], ["ended", s.end_time], ["duration", format_duration(s.duration_s)],
        ["events", f"{s.events} ({', '.join(f'{k} {v}' for k, v in s.events_by_type.items())})"],
        ["alerts", ", ".join(f"{n} {k}" for k, n in s.alerts_by_severity.items()) or "none"],
        ["actions", s.actions], ["audit chain", s.chain.text],
        ["host", f"{s.hostname} {s.kernel}"],
    ])
    for problem in s.chain.problems:
        out.append(f"- chain problem: {problem}")
    if s.skipped:
        out.append(f"- damaged lines skipped: {s.skipped}")
    out += ["", f"## Alerts ({len(rep.alerts)})", ""]
    if rep.alerts:
        out += _table(["time", "severity", "rule", "process", "what"], [
            [a.time[11:23] or a.time, a.severity, a.rule, a.process, a.output] for a in rep.alerts])
    else:
        out += ["No rule fired.", ""]
    out += [f"## Actions ({len(rep.actions)})", ""]
    if rep.actions:
        out += _table(["time", "action", "by", "rule", "target", "latency ms", "ok", "detail"], [
            [a.time[11:23] or a.time, a.action, a.by, a.rule, a.target,
             f"{a.latency_ms:.2f}" if a.latency_ms is not None else "", "ok" if a.ok else "FAILED",
             a.detail] for a in rep.actions])
    else:
        out += ["No action was taken.", ""]
    out += [f"## Process tree ({len(rep.procs)} processes)", "", "```"]
    out += _tree(rep)
    out += ["```", "", f"## Network destinations ({len(rep.destinations)})", ""]
    if rep.destinations:
        out += _table(["destination", "connects", "failed", "bytes sent", "by"], [
            [d.label, d.connects, d.failed, format_bytes(d.bytes_sent), ", ".join(list(d.processes)[:6])]
            for d in rep.destinations])
    else:
        out += ["No connection.", ""]
    n_files = sum(len(v) for v in rep.files_by_dir.values())
    out += [f"## Files written ({n_files})", ""]
    for d, rows in rep.files_by_dir.items():
        out.append(f"### {d}/")
        out.append("")
        out += _table(["file", "opens", "writes", "bytes", "other", "by"], [
            [f.path.rsplit("/", 1)[-1], f.opens, f.writes, format_bytes(f.bytes), "; ".join(f.ops),
             ", ".join(list(f.processes)[:4])] for f in rows])
    if not rep.files_by_dir:
        out += ["No file written.", ""]
    out += [f"## Secrets read ({len(rep.secrets)})", ""]
    if rep.secrets:
        out += _table(["file", "process", "command line", "opens", "result"], [
            [s_.path, f"{s_.process} ({s_.pid})", s_.cmdline, s_.count, "read" if s_.ok else "failed"]
            for s_ in rep.secrets])
    else:
        out += ["No sensitive file opened.", ""]
    out += ["## Drops", ""]
    out += [f"- {d}" for d in rep.drops] or ["No event was lost."]
    out += ["", "---", f"Audit log: {', '.join(s.files)}"]
    out += [f"head of chain {cid[:12]}: {h}" for cid, h in s.chain.heads.items()]
    return "\n".join(out) + "\n"


def _tree(rep: SessionReport) -> list[str]:
    lines: list[str] = []
    stack: list[tuple[int, str, bool]] = [(n, "", i == len(rep.roots) - 1)
                                          for i, n in reversed(list(enumerate(rep.roots)))]
    while stack and len(lines) < MAX_TREE_LINES:
        node, prefix, last = stack.pop()
        p = rep.procs[node]
        lines.append(prefix + ("└─ " if last else "├─ ") + _label(p))
        child_prefix = prefix + ("   " if last else "│  ")
        kids = p.children
        stack.extend((c, child_prefix, i == len(kids) - 1) for i, c in reversed(list(enumerate(kids))))
    if stack:
        lines.append(f"… {len(rep.procs) - len(lines)} more")
    return lines


def _label(p: Proc) -> str:
    text = f"{p.name} {p.pid}"
    if p.cmdline and p.cmdline != p.name:
        cmd = p.cmdline.replace("\n", "⏎")
        text += f"  {cmd[:120]}"
    if p.alerts:
        text += "  !! " + ", ".join(p.alerts)
    if p.actions:
        text += "  [" + ", ".join(p.actions) + "]"
    if p.exited:
        text += f"  ({p.exited})"
    return text
