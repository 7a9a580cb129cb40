"""Native libraries' log lines on file descriptor 2, which Python's own logging settings do not reach."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Sends whatever is written to file descriptor 2 meanwhile (TensorFlow's absl lines about oneDNN and CUDA
    probing, printed before any of its log settings apply) to a scratch file. Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
