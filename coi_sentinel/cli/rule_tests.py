"""``coi-sentinel rules test``: run the rule test cases (traces and the alerts they must raise).

Attached to the ``rules`` group by coi_sentinel/cli/rules.py. Needs no root, bcc or kernel.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import click

from .output import echo_json, json_option


@click.command("test")
@click.argument("dirs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--rules", "rule_paths", multiple=True, metavar="PATH", type=click.Path(exists=True),
              help="Rule file or folder added to the bundled rules (repeatable).")
@click.option("--no-bundled", is_flag=True,
              help="Neither the bundled rules nor their cases: only --rules and DIRS.")
@click.option("--strict", is_flag=True,
              help="Also fail every enabled rule that lacks a positive or a negative case "
                   "(unless a `waive` item gives the reason), a detection rate by family "
                   "below 95 %, and any alert on a benign case.")
@json_option
@click.pass_context
def run_tests(ctx: click.Context, dirs: tuple[Path, ...], rule_paths: tuple[str, ...],
              no_bundled: bool, strict: bool, as_json: bool) -> None:
    """Replay every rule test case and check which rules fire, and how often.

    A case file (YAML) names a trace and the alerts expected from it: rule ids and counts, or
    `none` for a benign trace; every rule it does not name must stay quiet. `negative` lists
    the rules a near miss must not raise, `missed` the known gaps. DIRS are folders of case
    files (or files), run after the bundled cases (rules/tests/). Prints pass/fail per rule,
    with the cases that failed it, then a table by family: attack cases detected by a rule of
    their family (the rule file the case file is named after), and alerts on benign cases.
    See docs/rule-tests.md.

    Exit status: 0 every case passed, 1 a case failed, could not run or is malformed (or, with
    --strict, a rule lacks cases, fewer than 95 % of the attack cases are detected by their
    family, or a benign case raised an alert), 2 usage.

    \b
    Examples:
      coi-sentinel rules test --strict
      coi-sentinel rules test --rules my-rules/ my-rules/tests/
      coi-sentinel rules test --no-bundled --rules my-rules/ my-rules/tests/ --json
    """
    from ..replay.cases import bundled_cases_dir, load_suite, run_suite
    from ..rules import load_ruleset

    if no_bundled and not rule_paths:
        raise click.UsageError("--no-bundled needs --rules PATH")
    if no_bundled and not dirs:
        raise click.UsageError("--no-bundled needs a DIR of case files")
    ruleset = load_ruleset([Path(p) for p in rule_paths] or None, replace_bundled=no_bundled)
    case_dirs = ([] if no_bundled else [bundled_cases_dir()]) + list(dirs)
    suite = load_suite(case_dirs)
    report = run_suite(suite, ruleset, strict=strict)
    if as_json:
        for diag in report.diagnostics:
            echo_json({"record": "diagnostic", **diag.to_dict()})
        for case in report.cases:
            echo_json(case.to_dict())
        for rule in report.rules:
            echo_json(rule.to_dict())
        for fam in report.families:
            echo_json(fam.to_dict())
        echo_json(report.summary())
    else:
        _print_report(report)
    ctx.exit(0 if report.ok else 1)


def _print_report(report) -> None:
    for diag in report.diagnostics:
        click.echo(str(diag))
    for case in report.cases:
        if case.problems and all(p.rule is None for p in case.problems):
            for p in case.problems:
                click.echo(f"ERROR {p}")
    click.echo(f"{'RULE':<36} {'POSITIVE':>8} {'NEGATIVE':>8}  RESULT")
    for rule in report.rules:
        pos = _ratio(rule.positive)
        neg = _ratio(rule.negative)
        click.echo(f"{rule.rule:<36} {pos:>8} {neg:>8}  {rule.status}")
        if rule.status == "waived":
            _echo_wrapped(f"waived: {rule.waived}")
        if rule.missed:
            _echo_wrapped(f"known gap: {', '.join(rule.missed)}")
        for p in rule.problems:
            _echo_wrapped(str(p))
    _print_families(report)
    s = report.summary()
    by = ", ".join(f"{k} {v}" for k, v in s["rules_by_status"].items())
    click.echo(f"coi-sentinel: {s['cases']} cases, {s['cases_failed']} failed; {s['rules']} rules: "
               f"{by}; {s['events']} events in {s['seconds']} s"
               + (" (strict)" if report.strict else ""), err=True)
    lost = [c for c in report.cases if c.lost]
    for c in lost:
        click.echo(f"coi-sentinel: {c.case.name}: its trace lost {c.lost} events when recorded",
                   err=True)


def _print_families(report) -> None:
    """Detection by family: attack cases caught by a rule of their own family, benign alerts."""
    from ..replay.cases import DETECTION_FLOOR

    click.echo("")
    click.echo(f"{'FAMILY':<16} {'ATTACKS':>7} {'DETECTED':>8} {'RATE':>7} {'ANY ALERT':>9} "
               f"{'BENIGN':>6} {'ALERTS':>6}")
    for fam in report.families:
        if fam.family == "total":
            click.echo("-" * 65)
        rate = "-" if fam.rate is None else f"{100 * fam.rate:.1f}%"
        click.echo(f"{fam.family:<16} {fam.attacks:>7} {fam.detected:>8} {rate:>7} "
                   f"{fam.any_alert:>9} {fam.benign:>6} {fam.benign_alerts:>6}")
    total = report.total
    for fam in report.families[:-1]:
        if fam.undetected:
            _echo_wrapped(f"{fam.family}: not detected by its family: {', '.join(fam.undetected)}")
    if report.strict and not report.detection_ok:
        click.echo(f"coi-sentinel: strict: detection {total.detected}/{total.attacks} (floor "
                   f"{100 * DETECTION_FLOOR:.0f}%), {total.benign_alerts} alerts on benign cases",
                   err=True)


def _echo_wrapped(text: str) -> None:
    click.echo(textwrap.fill(text, 80, initial_indent="    ", subsequent_indent="      ",
                             break_on_hyphens=False, break_long_words=False))


def _ratio(results: list[tuple[str, bool]]) -> str:
    if not results:
        return "-"
    return f"{sum(ok for _, ok in results)}/{len(results)}"
