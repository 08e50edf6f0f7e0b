"""A log that cannot be flooded: whoever can publish to the broker decides how many bad
messages arrive, so one line per message would let a single meter fill the disk and bury
everything else.  `RateLimitedLog` writes at most `burst` lines per `window` seconds and says
how many it held back the next time it writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, *, burst: int = 20, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.burst = burst
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._written = 0
        self.suppressed = 0  # lines held back in the current window

    def warning(self, msg: str, *args: object) -> None:
        self.log(logging.WARNING, msg, *args)

    def log(self, level: int, msg: str, *args: object) -> None:
        with self._lock:
            now = self.clock()
            if now - self._start >= self.window:
                self._start, self._written = now, 0
            if self._written >= self.burst:
                self.suppressed += 1
                return
            self._written += 1
            held, self.suppressed = self.suppressed, 0
        if held:
            msg += " (%d similar lines held back)"
            args = (*args, held)
        self.logger.log(level, msg, *args)
