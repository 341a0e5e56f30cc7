"""The host floor: what the session lifecycle, the supervision and the daemon all stand on.

Modules: :mod:`incus` (the Incus client: :mod:`incus_rest` on the standard library, pylxd only
for image uploads; the one place their errors become ours), :mod:`websocket` (an exec's
streams), :mod:`cgroups` (cgroup2 ids, container cgroups, cgroups made for a workload),
:mod:`freezer` (the cgroup2 freezer), :mod:`pause_state` (a session's paused state: its freezer
and the reason in its Incus config), :mod:`paths` (where files live on the host), :mod:`naming`
(session names and slots), :mod:`owner` (the identity of the process that owns a session),
:mod:`status` (the status files of running monitors, process liveness).

The floor imports nothing of the layers above it (:mod:`coi_sentinel.sessions`,
:mod:`coi_sentinel.supervision`, the daemon, probes, rules): only :mod:`coi_sentinel.errors`
and itself (tests/unit/test_import_cycles.py). Nothing here imports pylxd or bcc at import time.
"""
