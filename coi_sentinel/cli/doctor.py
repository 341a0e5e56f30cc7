"""``coi-sentinel doctor``: what this host can monitor, with a verdict."""

from __future__ import annotations

import click

from ..errors import SentinelError
from .output import echo_json, json_option


@click.command()
@json_option
@click.option("--no-load", is_flag=True, help="Only the host checks; do not try to load the probes.")
def doctor(as_json: bool, no_load: bool) -> None:
    """Check the host and say which probes load and what is covered.

    As a normal user it checks what it can and says what needs root; as root it compiles and
    attaches every probe family and reports each hook, then detaches. Exit code 0 when the
    watcher can run (possibly with some hooks not covered), 1 when it cannot.

    \b
    Examples:
      coi-sentinel doctor
      sudo coi-sentinel doctor --json
    """
    from ..probes import features
    from ..probes.hooks import PURPOSE
    from ..probes.loader import ProbeSet

    checks = features.host_checks()
    report: dict = {"kernel": features.kernel_info(), "checks": [c.to_dict() for c in checks],
                    "probes": None, "optional": {}}
    can_load = all(c.ok for c in checks if c.required)
    load_error = None
    if can_load and not no_load:
        probes = ProbeSet()
        try:
            cov = probes.load()
            report["probes"] = cov.to_dict()
            report["optional"] = _optional_features(probes)
        except SentinelError as err:
            load_error = str(err)
        finally:
            probes.close()
    ok = can_load and load_error is None
    if not can_load:
        verdict = "cannot monitor: " + "; ".join(f"{c.name}: {c.detail}" for c in checks if c.required and not c.ok)
    elif load_error:
        verdict = f"cannot monitor: {load_error}"
    elif no_load:
        verdict = "host checks pass (probes not loaded: --no-load)"
    else:
        missing = report["probes"]["missing"]
        verdict = "ready: every hook attached" if not missing else f"ready, {missing} hooks not covered (see above)"
    report["verdict"] = verdict
    report["ok"] = ok
    if as_json:
        echo_json(report)
    else:
        click.echo(f"kernel {report['kernel']['release']} ({report['kernel']['machine']})")
        for c in checks:
            mark = "ok " if c.ok else ("-- " if not c.required else "NO ")
            line = f"  [{mark}] {c.name:<15} {c.detail}"
            if not c.ok and c.fix:
                line += f"\n        -> {c.fix}"
            click.echo(line)
        if report["probes"]:
            click.echo("probe families:")
            for fam, info in report["probes"]["families"].items():
                dispatched = info.get("dispatched", {})
                n_ok, n_bad = len(info["attached"]) + len(dispatched), len(info["missing"])
                click.echo(f"  [{'ok ' if not n_bad else 'part' if n_ok else 'NO '}] {fam:<6} "
                           f"{n_ok}/{n_ok + n_bad} hooks  {PURPOSE[fam]}")
                for tp, why in info["missing"].items():
                    click.echo(f"          not covered: {tp} ({why})")
                for tp, by in info.get("substituted", {}).items():
                    click.echo(f"          {tp.split(':')[1]}: no tracepoint; {by}")
                if dispatched:
                    names = ", ".join(tp.split(":")[1].removeprefix("sys_enter_") for tp in dispatched)
                    click.echo(f"          entries by number in raw sys_enter: {names}")
            for note in report["probes"].get("notes", []):
                click.echo(f"  note: {note}")
        for name, (avail, why) in report["optional"].items():
            click.echo(f"  [{'ok ' if avail else '-- '}] {name:<15} {why}")
        click.echo(f"verdict: {verdict}")
    if not ok:
        raise SystemExit(1)


def _optional_features(probes) -> dict[str, tuple[bool, str]]:
    """Kernel features coi-sentinel could use beyond tracepoints: probed, reported, not needed."""
    out: dict[str, tuple[bool, str]] = {}
    out["ringbuf"] = (True, "BPF ring buffers (in use)")
    for name, kind in (("bpf-lsm", "lsm"), ("fentry", "fentry")):
        out[name] = _try_program(kind)
    return out


def _try_program(kind: str) -> tuple[bool, str]:
    from ..probes.loader import try_optional_program

    return try_optional_program(kind)
