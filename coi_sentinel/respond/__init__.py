"""Automated response: what to do when a rule fires (pause, kill, block) and doing it fast."""
