"""How a training run stops early: on a signal (`StopRequest`), or with a one-line error (`TrainingError`)."""

from __future__ import annotations

import signal
from typing import Optional

from hfagp_common.cli import UserError


class TrainingError(UserError, RuntimeError):
    """A run cannot start or must stop (missing files, non-finite loss)."""


class StopRequest:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step boundary."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


__all__ = ["StopRequest", "TrainingError"]
