"""coi-sentinel: an eBPF security monitor for AI coding agents."""

__version__ = "0.1.0"
