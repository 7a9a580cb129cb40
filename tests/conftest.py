import sys
from pathlib import Path

# The test helpers (op_cases.py) live beside the tests; the package itself is the installed one.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import session_report


def pytest_terminal_summary(terminalreporter) -> None:
    for line in session_report.LINES:
        terminalreporter.write_line(line)
