"""No import cycles in the package, and the packages keep their layers: every import counts,
function-local and TYPE_CHECKING ones included (a cycle hidden behind an import inside a
function is still a cycle of design).

Layers (docs/daemon.md, "Packages"): ``coi_sentinel.host`` is the floor and imports only itself
and the exception tree; the lifecycle (``sessions``) reaches the supervision only through the
monitoring hook ``supervision.monitor``; the supervision and the daemon never import the
lifecycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2] / "coi_sentinel"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """Package modules that ``path`` imports (a package counts as its ``__init__``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import submodule` needs the submodule, `from pkg import name` the package
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): imports(p, modules) for p in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


# ---------------------------------------------------------------- layers (docs/daemon.md, "Packages")
FLOOR = "coi_sentinel.host"
LIFECYCLE = "coi_sentinel.sessions"
SUPERVISION = "coi_sentinel.supervision"
#: the one module of the supervision that the lifecycle may import: the monitoring hook
SEAM = "coi_sentinel.supervision.monitor"
#: what the floor may import besides itself
FLOOR_MAY = {"coi_sentinel.errors"}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    """Imports that cross the layers the wrong way, one line each."""
    out = []
    for m, deps in sorted(g.items()):
        for d in sorted(deps):
            if _in(m, FLOOR) and not (_in(d, FLOOR) or d in FLOOR_MAY):
                out.append(f"{m} -> {d}: the floor imports only itself and {sorted(FLOOR_MAY)}")
            elif _in(m, LIFECYCLE) and _in(d, SUPERVISION) and d != SEAM:
                out.append(f"{m} -> {d}: the lifecycle reaches the supervision only through {SEAM}")
            elif (_in(m, SUPERVISION) or _in(m, "coi_sentinel.daemon")) and _in(d, LIFECYCLE):
                out.append(f"{m} -> {d}: the supervision and the daemon never import the lifecycle")
    return out


def test_the_layer_check_sees_each_kind_of_crossing():
    g = {"coi_sentinel.host.a": {"coi_sentinel.sessions.s", "coi_sentinel.errors"},
         "coi_sentinel.sessions.s": {"coi_sentinel.supervision.guardian", SEAM, FLOOR + ".a"},
         "coi_sentinel.supervision.guardian": {"coi_sentinel.sessions.config"},
         "coi_sentinel.daemon.server": {"coi_sentinel.sessions.acl", SEAM},
         SEAM: {FLOOR + ".a"}}
    assert layer_violations(g) == [
        "coi_sentinel.daemon.server -> coi_sentinel.sessions.acl: the supervision and the daemon "
        "never import the lifecycle",
        "coi_sentinel.host.a -> coi_sentinel.sessions.s: the floor imports only itself and "
        "['coi_sentinel.errors']",
        "coi_sentinel.sessions.s -> coi_sentinel.supervision.guardian: the lifecycle reaches the "
        f"supervision only through {SEAM}",
        "coi_sentinel.supervision.guardian -> coi_sentinel.sessions.config: the supervision and the "
        "daemon never import the lifecycle",
    ]


def test_the_packages_keep_their_layers():
    g = graph()
    assert {FLOOR, LIFECYCLE, SUPERVISION, SEAM} <= set(g), "a layer package is missing"
    bad = layer_violations(g)
    assert not bad, "imports across the layers:\n" + "\n".join(bad)
