"""The supervision of a running session: who watches it, and what happens when that stops.

Modules: :mod:`monitor` (the monitoring hook a session calls, the one seam with the
lifecycle), :mod:`daemon_monitor` (the monitor as a client of the host's daemon),
:mod:`guardian` (the process that freezes a session whose daemon died or stalled),
:mod:`paused` (whether and how a paused session resumes).

Above :mod:`coi_sentinel.host`, beside :mod:`coi_sentinel.sessions` (the lifecycle), which it
never imports; the lifecycle reaches it only through :mod:`monitor` (docs/daemon.md,
"Packages").
"""
