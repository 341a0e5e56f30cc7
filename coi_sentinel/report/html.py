"""A session report as one self-contained HTML page: inline CSS and a few lines of inline
JavaScript (severity filter), no external asset of any kind, so it opens offline and can be
mailed as it is. Every value from the log is escaped.

The markup is meant to be read by tests too: alert rows are ``tr.alert`` with ``data-rule`` and
``data-severity``, process-tree nodes ``li.proc`` with ``data-pid`` (``.alerting`` when the
process raised an alert), action rows ``tr.action`` with ``data-action``.
"""

from __future__ import annotations

from html import escape
from .. import __version__
from .model import (SEVERITY_LABELS, Proc, SessionReport, format_bytes, format_duration)

#: at most this many nodes of the process tree are drawn (the rest are counted)
MAX_TREE_NODES = 5000

CSS = """
:root{--bg:#f7f7f8;--fg:#1d1d1f;--mut:#6b6b70;--card:#fff;--line:#e3e3e6;
--critical:#b3002d;--high:#d9480f;--medium:#c28a00;--low:#2b7bb9;--info:#6b6b70;--debug:#9a9aa0;
--ok:#2f8f46}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{background:#1d1d1f;color:#fff;padding:14px 24px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0;font-weight:600}
header .sub{color:#b8b8bd;font-size:13px}
main{max-width:1180px;margin:0 auto;padding:16px 24px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:14px 0;padding:12px 16px}
h2{font-size:15px;margin:2px 0 10px;display:flex;gap:8px;align-items:baseline}
h2 .n{color:var(--mut);font-weight:400;font-size:13px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--mut);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,"SF Mono",Menlo,Consolas,monospace;font-size:12.5px}
code{word-break:break-all}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600;color:#fff;white-space:nowrap}
tr.sev-critical .badge,button.sev-critical .badge,.badge.sev-critical{background:var(--critical)}
tr.sev-high .badge,button.sev-high .badge,.badge.sev-high{background:var(--high)}
tr.sev-medium .badge,button.sev-medium .badge,.badge.sev-medium{background:var(--medium)}
tr.sev-low .badge,button.sev-low .badge,.badge.sev-low{background:var(--low)}
tr.sev-info .badge,button.sev-info .badge,.badge.sev-info,tr.sev-debug .badge,button.sev-debug .badge,.badge.sev-debug{background:var(--info)}
.verdict{padding:3px 10px;border-radius:5px;font-weight:600}
.v-clean{background:var(--ok)}.v-alerts{background:var(--medium)}.v-stopped{background:var(--critical)}.v-broken{background:#000;outline:2px solid var(--critical)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:8px 18px}
.grid div b{display:block;font-size:12px;color:var(--mut);font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.mut{color:var(--mut)}.bad{color:var(--critical);font-weight:600}.good{color:var(--ok);font-weight:600}
.timeline{width:100%;height:auto;display:block;margin-bottom:8px}
.filters button{border:1px solid var(--line);background:#fff;border-radius:4px;padding:1px 8px;margin-right:4px;cursor:pointer;font-size:12px}
.filters button.off{opacity:.35}
tr.hidden{display:none}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:18px}
ul.tree{padding-left:0}
ul.tree li{margin:1px 0}
ul.tree ul{border-left:1px dashed var(--line);margin-left:6px}
li.proc>details>summary,li.proc>.node{cursor:default;list-style:none}
li.proc>details>summary::-webkit-details-marker{display:none}
li.proc>details>summary::before{content:"\\25B8";color:var(--mut);display:inline-block;width:12px}
li.proc>details[open]>summary::before{content:"\\25BE"}
li.proc>.node::before{content:"\\2022";color:var(--line);display:inline-block;width:12px}
.pname{font-weight:600}
.pid{color:var(--mut);font-size:12px}
li.proc.alerting>details>summary .pname,li.proc.alerting>.node .pname{color:var(--critical)}
li.proc.alerting>details>summary,li.proc.alerting>.node{background:#fff1f0;border-radius:4px}
.tag{font-size:11px;border:1px solid var(--line);border-radius:3px;padding:0 4px;color:var(--mut);margin-left:4px}
.tag.act{border-color:var(--critical);color:var(--critical)}
details.dir>summary{cursor:pointer;padding:3px 0;font-weight:600}
details.dir table{margin:2px 0 8px 14px;width:calc(100% - 14px)}
footer{color:var(--mut);font-size:12px;margin-top:18px}
"""

#: the severity filter: buttons toggle a severity's rows; ``#severity=critical,high`` in the
#: address shows only those from the start (a link to a report can say what to look at)
JS = """
(function(){
 var on={};
 function apply(){
  document.querySelectorAll('.filters button').forEach(function(b){
   b.classList.toggle('off',!on[b.dataset.sev]);});
  document.querySelectorAll('tr.alert').forEach(function(r){
   r.classList.toggle('hidden',!on[r.dataset.severity]);});
 }
 var m=/severity=([a-z,]+)/.exec(location.hash), want=m?m[1].split(','):null;
 document.querySelectorAll('.filters button').forEach(function(b){
  on[b.dataset.sev]=!want||want.indexOf(b.dataset.sev)>=0;
  b.addEventListener('click',function(){on[b.dataset.sev]=!on[b.dataset.sev];apply();});
 });
 apply();
})();
"""

_SEV_COLORS = {"critical": "#b3002d", "high": "#d9480f", "medium": "#c28a00", "low": "#2b7bb9",
               "info": "#6b6b70", "debug": "#9a9aa0"}


def e(value: object) -> str:
    return escape(str(value), quote=True)


def render(rep: SessionReport) -> str:
    s = rep.summary
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        f"<title>coi-sentinel report: {e(s.session)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>coi-sentinel · {e(s.session)}</h1>"
        f"<span class=\"verdict v-{e(s.verdict_level)}\" id=\"verdict\">{e(s.verdict)}</span>"
        f"<span class=\"sub\">{e(s.start_time)} · {e(format_duration(s.duration_s))}</span></header>",
        "<main>",
        _summary(rep),
        _alerts(rep),
        _actions(rep),
        _tree(rep),
        _network(rep),
        _files(rep),
        _secrets(rep),
        _drops(rep),
        f"<footer>Made by coi-sentinel {e(__version__)} from {len(s.files)} audit log file(s): "
        + ", ".join(f"<code>{e(f)}</code>" for f in s.files)
        + "".join(f"<br>head of chain {e(cid[:12])}: <code>{e(h)}</code>"
                  for cid, h in s.chain.heads.items())
        + "</footer></main>",
        f"<script>{JS}</script></body></html>\n",
    ]
    return "".join(parts)


def _section(sid: str, title: str, count: str, body: str) -> str:
    n = f"<span class=\"n\">{e(count)}</span>" if count else ""
    return f"<section id=\"{sid}\"><h2>{e(title)} {n}</h2>{body}</section>"


def _summary(rep: SessionReport) -> str:
    s = rep.summary
    chain_cls = "good" if s.chain.ok else "bad"
    sev = ", ".join(f"{n} {k}" for k, n in s.alerts_by_severity.items()) or "none"
    top_types = ", ".join(f"{k} {v}" for k, v in list(s.events_by_type.items())[:6])
    items = [
        ("agent", e(s.agent)), ("workspace", f"<code>{e(s.workspace)}</code>"),
        ("network", e(s.network)), ("duration", e(format_duration(s.duration_s))),
        ("started", e(s.start_time)), ("ended", e(s.end_time)),
        ("alerts", e(sev)), ("actions", e(s.actions)),
        ("events", f"{e(s.events)} <span class=\"mut\">{e(top_types)}</span>"),
        ("audit chain", f"<span class=\"{chain_cls}\" id=\"chain\">{e(s.chain.text)}</span>"),
        ("host", e(f"{s.hostname} · {s.kernel}")), ("written by", e(s.source)),
    ]
    body = "<div class=\"grid\">" + "".join(f"<div><b>{k}</b>{v}</div>" for k, v in items) + "</div>"
    if s.chain.problems:
        body += "<ul>" + "".join(f"<li class=\"bad\">{e(p)}</li>" for p in s.chain.problems[:10]) + "</ul>"
    if s.skipped:
        body += (f"<p class=\"bad\">{sum(s.skipped.values())} damaged lines skipped: "
                 + e(", ".join(f"{k} {v}" for k, v in s.skipped.items())) + "</p>")
    return _section("summary", "Summary", "", body)


def _timeline(rep: SessionReport) -> str:
    """An SVG strip: one lane per severity present, a mark per alert at its time offset."""
    rows = [a for a in rep.alerts if a.offset_s is not None]
    if not rows:
        return ""
    lanes = [label for _r, label in SEVERITY_LABELS if any(a.severity == label for a in rows)]
    span = max(rep.summary.duration_s or 0.0, max(a.offset_s or 0.0 for a in rows), 1e-3)
    width, left, lane_h = 1000, 80, 18
    height = lane_h * len(lanes) + 22
    out = [f"<svg class=\"timeline\" viewBox=\"0 0 {width} {height}\" role=\"img\" "
           f"aria-label=\"alerts over time\">"]
    for i, label in enumerate(lanes):
        y = 4 + i * lane_h
        out.append(f"<text x=\"0\" y=\"{y + 12}\" font-size=\"12\" fill=\"{_SEV_COLORS[label]}\">{label}</text>"
                   f"<line x1=\"{left}\" x2=\"{width - 6}\" y1=\"{y + 8}\" y2=\"{y + 8}\" stroke=\"#e3e3e6\"/>")
        for a in rows:
            if a.severity != label:
                continue
            x = left + (width - left - 12) * (a.offset_s or 0.0) / span
            out.append(f"<circle cx=\"{x:.1f}\" cy=\"{y + 8}\" r=\"5\" fill=\"{_SEV_COLORS[label]}\">"
                       f"<title>{e(a.time)} {e(a.rule)}</title></circle>")
    y = height - 4
    out.append(f"<text x=\"{left}\" y=\"{y}\" font-size=\"11\" fill=\"#6b6b70\">0 s</text>"
               f"<text x=\"{width - 6}\" y=\"{y}\" font-size=\"11\" fill=\"#6b6b70\" text-anchor=\"end\">"
               f"{e(format_duration(span))}</text></svg>")
    return "".join(out)


def _alerts(rep: SessionReport) -> str:
    if not rep.alerts:
        return _section("alerts", "Alerts", "0", "<p class=\"mut\">No rule fired.</p>")
    present = [label for _r, label in SEVERITY_LABELS if any(a.severity == label for a in rep.alerts)]
    filters = "<div class=\"filters\">" + "".join(
        f"<button type=\"button\" data-sev=\"{label}\" class=\"sev-{label}\">"
        f"<span class=\"badge\">{label}</span> {sum(a.severity == label for a in rep.alerts)}</button>"
        for label in present) + "</div>"
    rows = []
    for i, a in enumerate(rep.alerts):
        off = f"+{a.offset_s:.3f} s" if a.offset_s is not None else ""
        anc = " ← ".join(_clip(_flat(x), 80) for x in a.ancestry[:4])
        rows.append(
            f"<tr class=\"alert sev-{a.severity}\" id=\"alert-{i}\" data-rule=\"{e(a.rule)}\" "
            f"data-severity=\"{a.severity}\" data-pid=\"{e(a.pid or '')}\">"
            f"<td class=\"mono\">{e(a.time[11:23] or a.time)}<br><span class=\"mut\">{e(off)}</span></td>"
            f"<td><span class=\"badge\">{e(a.severity)}</span></td>"
            f"<td><b>{e(a.rule)}</b><br><span class=\"mut\">{e(a.source)}</span></td>"
            f"<td>{e(a.output)}<br><code>{e(_clip(_flat(a.process), 300))}</code>"
            + (f"<br><span class=\"mut\">← {e(anc)}</span>" if anc else "") + "</td></tr>")
    table = ("<table id=\"alert-table\"><thead><tr><th>time</th><th>severity</th><th>rule</th>"
             "<th>what</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return _section("alerts", "Alerts", str(len(rep.alerts)), _timeline(rep) + filters + table)


def _actions(rep: SessionReport) -> str:
    if not rep.actions:
        return _section("actions", "Actions", "0", "<p class=\"mut\">No action was taken.</p>")
    rows = []
    for a in rep.actions:
        lat = f"{a.latency_ms:.2f}" if a.latency_ms is not None else ""
        ok = "<span class=\"good\">ok</span>" if a.ok else "<span class=\"bad\">FAILED</span>"
        rows.append(
            f"<tr class=\"action\" data-action=\"{e(a.action)}\" data-by=\"{e(a.by)}\">"
            f"<td class=\"mono\">{e(a.time[11:23] or a.time)}</td><td><b>{e(a.action)}</b></td>"
            f"<td>{e(a.by)}</td><td>{e(a.rule)}</td><td><code>{e(a.target)}</code></td>"
            f"<td class=\"num latency\">{lat}</td><td>{ok}</td><td>{e(a.detail)}</td></tr>")
    table = ("<table id=\"action-table\"><thead><tr><th>time</th><th>action</th><th>by</th>"
             "<th>rule</th><th>target</th><th class=\"num\">latency ms</th><th></th><th>detail</th>"
             "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    return _section("actions", "Actions", str(len(rep.actions)), table)


def _tree(rep: SessionReport) -> str:
    procs = rep.procs
    if not procs:
        return _section("processes", "Process tree", "0", "<p class=\"mut\">No process seen.</p>")
    hot: dict[int, bool] = {}

    def has_alert(node: int) -> bool:
        if node not in hot:
            hot[node] = False          # a guard against cycles while computing
            p = procs[node]
            hot[node] = bool(p.alerts or p.actions) or any(has_alert(c) for c in p.children)
        return hot[node]

    drawn = 0
    out: list[str] = ["<ul class=\"tree\" id=\"process-tree\">"]
    # iterative walk (deep trees must not hit the recursion limit): (node, closing?)
    stack: list[tuple[int, bool]] = [(n, False) for n in reversed(rep.roots)]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.append("</ul></details></li>")
            continue
        if drawn >= MAX_TREE_NODES:
            continue
        drawn += 1
        p = procs[node]
        cls = "proc" + (f" alerting sev-{_rank_label(p.max_rank)}" if p.alerts else "")
        label = _proc_label(p)
        if p.children:
            opened = " open" if has_alert(node) or len(procs) <= 60 else ""
            out.append(f"<li class=\"{cls}\" data-pid=\"{p.pid}\" data-node=\"{p.node}\">"
                       f"<details{opened}><summary>{label}</summary><ul>")
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(p.children))
        else:
            out.append(f"<li class=\"{cls}\" data-pid=\"{p.pid}\" data-node=\"{p.node}\">"
                       f"<span class=\"node\">{label}</span></li>")
    out.append("</ul>")
    if drawn < len(procs):
        out.append(f"<p class=\"mut\">{len(procs) - drawn} more processes not drawn.</p>")
    n_alerting = sum(1 for p in procs.values() if p.alerts)
    return _section("processes", "Process tree",
                    f"{len(procs)} processes, {n_alerting} alerting", "".join(out))


def _rank_label(rank: int) -> str:
    return dict(SEVERITY_LABELS).get(rank, "high")


def _proc_label(p: Proc) -> str:
    tags = "".join(f"<span class=\"badge sev-{_rank_label(p.max_rank)}\" title=\"alert\">{e(r)}</span> "
                   for r in p.alerts)
    tags += "".join(f"<span class=\"tag act\">{e(a)}</span>" for a in p.actions)
    if p.exited:
        tags += f"<span class=\"tag\">{e(p.exited)}</span>"
    cmd = p.cmdline if p.cmdline and p.cmdline != p.name else ""
    return (f"<span class=\"pname\">{e(p.name or '?')}</span> <span class=\"pid\">{p.pid}</span> "
            + (f"<code class=\"cmd\">{e(_clip(_flat(cmd), 160))}</code> " if cmd else "") + tags)


def _some(names: dict[str, int], n: int) -> str:
    """The first ``n`` names, and how many more."""
    text = ", ".join(list(names)[:n])
    return text + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _flat(text: str) -> str:
    """A command line on one line: newlines (a `sh -c` script) shown as ⏎."""
    return " ⏎ ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _network(rep: SessionReport) -> str:
    if not rep.destinations:
        return _section("network", "Network destinations", "0", "<p class=\"mut\">No connection.</p>")
    rows = "".join(
        f"<tr class=\"dest\" data-dest=\"{e(d.label)}\"><td><code>{e(d.label)}</code></td>"
        f"<td class=\"num\">{d.connects}</td><td class=\"num\">{d.failed or ''}</td>"
        f"<td class=\"num\" data-bytes=\"{d.bytes_sent}\">{e(format_bytes(d.bytes_sent))}</td>"
        f"<td class=\"num\">{d.send_calls or ''}</td><td>{e(_some(d.processes, 6))}"
        + (" <span class=\"tag act\">killed in kernel</span>" if d.killed else "") + "</td></tr>"
        for d in rep.destinations)
    table = ("<table><thead><tr><th>destination</th><th class=\"num\">connects</th>"
             "<th class=\"num\">failed</th><th class=\"num\">bytes sent</th><th class=\"num\">sends</th>"
             "<th>by</th></tr></thead><tbody>" + rows + "</tbody></table>")
    return _section("network", "Network destinations", str(len(rep.destinations)), table)


def _files(rep: SessionReport) -> str:
    if not rep.files_by_dir:
        return _section("files", "Files written", "0", "<p class=\"mut\">No file written.</p>")
    total = sum(len(v) for v in rep.files_by_dir.values())
    many = len(rep.files_by_dir) > 25
    blocks = []
    for d, rows in rep.files_by_dir.items():
        size = sum(f.bytes for f in rows)
        body = "".join(
            f"<tr class=\"file\"><td><code>{e(f.path.rsplit('/', 1)[-1])}</code></td>"
            f"<td class=\"num\">{f.opens}</td><td class=\"num\">{f.writes}</td>"
            f"<td class=\"num\">{e(format_bytes(f.bytes))}</td><td>{e('; '.join(f.ops))}"
            + (f" <span class=\"bad\">{f.failed} failed</span>" if f.failed else "")
            + f"</td><td>{e(_some(f.processes, 4))}</td></tr>" for f in rows)
        blocks.append(
            f"<details class=\"dir\"{'' if many else ' open'} data-dir=\"{e(d)}\"><summary><code>{e(d)}/</code> "
            f"<span class=\"mut\">{len(rows)} file(s), {e(format_bytes(size))}</span></summary>"
            "<table><thead><tr><th>file</th><th class=\"num\">opens</th><th class=\"num\">writes</th>"
            "<th class=\"num\">bytes</th><th>other</th><th>by</th></tr></thead><tbody>"
            + body + "</tbody></table></details>")
    return _section("files", "Files written", f"{total} in {len(rep.files_by_dir)} directories",
                    "".join(blocks))


def _secrets(rep: SessionReport) -> str:
    if not rep.secrets:
        return _section("secrets", "Secrets read", "0", "<p class=\"mut\">No sensitive file opened.</p>")
    rows = "".join(
        f"<tr class=\"secret\"><td><code>{e(s.path)}</code></td><td>{e(s.process)} "
        f"<span class=\"pid\">{s.pid}</span></td><td><code>{e(_clip(s.cmdline, 200))}</code></td>"
        f"<td class=\"num\">{s.count}</td><td>{'read' if s.ok else '<span class=mut>failed</span>'}</td>"
        f"<td class=\"mono\">{e(s.time[11:23])}</td></tr>" for s in rep.secrets)
    table = ("<table><thead><tr><th>file</th><th>process</th><th>command line</th>"
             "<th class=\"num\">opens</th><th></th><th>first</th></tr></thead><tbody>" + rows
             + "</tbody></table>")
    return _section("secrets", "Secrets read", str(len(rep.secrets)), table)


def _drops(rep: SessionReport) -> str:
    if not rep.drops:
        return _section("drops", "Drops", "0", "<p class=\"good\">No event was lost.</p>")
    return _section("drops", "Drops", str(len(rep.drops)),
                    "<ul>" + "".join(f"<li class=\"bad\">{e(d)}</li>" for d in rep.drops) + "</ul>")

