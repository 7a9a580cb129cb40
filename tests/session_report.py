"""Lines a test wants in the summary at the end of the run (which kernel tiers ran, the fuzz run's counts):
collected here, printed by conftest.py's pytest_terminal_summary."""

from __future__ import annotations

LINES: list[str] = []


def add(line: str) -> None:
    if line not in LINES:
        LINES.append(line)
