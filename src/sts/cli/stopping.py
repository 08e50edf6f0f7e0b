"""How `sts serve` stops without losing a sale (issue 21, point 6).

On SIGTERM uvicorn closes the listening socket (a new connection is refused before anything
is read), asks every open connection to close after its current response, and waits for the
requests in flight to finish, at most `--graceful-timeout` seconds.  It then raises SIGTERM
again with the handlers it found; the one installed here turns that into a normal exit, so
the command's own clean-up runs (the delivery dispatcher finishes its batch and gives back
the leases of jobs it had not yet handed to a carrier) and the process exits 0.

A request still running when the timeout ends is cancelled: its database transaction either
committed (the sale stands; the client, which saw no answer, repeats the purchase id and gets
the same sale) or did not (nothing was written).  Either way nothing is half done.
"""

from __future__ import annotations

import signal
from types import FrameType

DEFAULT_GRACEFUL_TIMEOUT = 30  # seconds the requests in flight get to finish


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM ends the command with exit code 0 through the normal unwinding (`finally`
    blocks run); uvicorn replaces it while serving and raises it again once drained."""
    signal.signal(signal.SIGTERM, _stop)


class StopRequested:
    """SIGTERM turned into a flag a long job polls between units of work (a campaign between
    its chunks: the chunk being issued commits, no further one is claimed, exit 0)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested
