"""The session layer: an agent in a monitored Incus system container.

Modules: :mod:`naming` (container names and slots), :mod:`paths` (XDG files), :mod:`config`
(TOML config and workspace trust), :mod:`profiles` (agent profiles from ``sessions/*.yaml``),
:mod:`staging` (credential files), :mod:`incus` (the pylxd client and error translation),
:mod:`streams` (headless exec), :mod:`terminal` (interactive attach), :mod:`images` (building
and importing images), :mod:`state` (saving and restoring a state directory), :mod:`monitor`
(the monitoring hook) and :mod:`daemon_monitor` (the host daemon watching the session),
:mod:`response` (the ``[response]`` settings), :mod:`guardian` (the process that pauses a
session whose monitor died), :mod:`paused` (the frozen state and resume), :mod:`notices` (the
action blocks on the terminal), :mod:`session` (the lifecycle that ties them together),
:mod:`keeper` (the process that owns an interactive session). Nothing here imports pylxd or
bcc at import time.
"""
