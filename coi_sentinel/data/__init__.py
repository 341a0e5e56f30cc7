"""Resource packages of the wheel: ``bpf``, ``rules`` and ``sessions`` (see coi_sentinel.assets)."""
