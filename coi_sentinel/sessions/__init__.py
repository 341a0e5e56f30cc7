"""The session lifecycle: an agent in an Incus system container, from create to gone.

Modules: :mod:`config` (TOML config and workspace trust), :mod:`profiles` (agent profiles from
``sessions/*.yaml``), :mod:`recipes` (a profile's image recipe), :mod:`images` (building and
importing images), :mod:`staging` (credential files), :mod:`acl` (a root-owned workspace made
writable for the agent), :mod:`network` (the network policy in the life of a session),
:mod:`streams` (headless exec), :mod:`terminal` (interactive attach), :mod:`state` (saving and
restoring a state directory), :mod:`session` (the lifecycle that ties them together),
:mod:`keeper` (the process that owns an interactive session).

What every layer needs of the host (the Incus client, cgroups, the freezer, names, paths) is
in :mod:`coi_sentinel.host`; watching a running session is :mod:`coi_sentinel.supervision`,
reached from here only through its hook :mod:`coi_sentinel.supervision.monitor`. Nothing here
imports pylxd or bcc at import time.
"""
