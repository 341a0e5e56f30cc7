"""Threat rules: the YAML rule language, its compiler, and the engine that raises alerts.

    from coi_sentinel.rules import Engine, load_ruleset

    ruleset = load_ruleset(None)                     # bundled rules (add paths to extend)
    engine = Engine(ruleset, on_alert=handle, table=pipeline.table)
    pipeline.add_sink(engine)

The language is documented in docs/rules.md. Module map, in loading order: loader (files ->
RuleSet), yamlload (YAML with lines), schema (items; units for 30s/50MB), merge (append,
override, enabled), parser (condition syntax), fields (the catalogue), resolve (typed
conditions), output (templates), compiler (Python code per event type), kernelset (sensitive
paths for the probe), ruleset (whole-set checks, the compiled set), diagnostics; at run time:
engine, context (what conditions may look up), state (sequences, thresholds), alert; lint.
Other ecosystems: falco (Falco's priorities, syscall names and field names mapped onto ours;
rules/compat/falco.yaml holds its standard macros), sigma (Sigma rules through a pySigma
backend and processing pipeline).
"""

from __future__ import annotations

from ..errors import RuleError, RuleSetInvalid
from .alert import Alert, ProcessInfo
from .context import SessionInfo
from .diagnostics import Diagnostic
from .engine import Engine
from .loader import bundled_dir, check_ruleset, load_ruleset
from .model import ENGINE_VERSION, Severity
from .ruleset import RuleSet
from .state import Limits

__all__ = [
    "Alert", "Diagnostic", "ENGINE_VERSION", "Engine", "Limits", "ProcessInfo", "RuleError",
    "RuleSet", "RuleSetInvalid", "SessionInfo", "Severity", "bundled_dir", "check_ruleset",
    "load_ruleset",
]
