"""Time for the meter: an injected clock, and simulated wall time as float seconds.

The machine never reads the system clock.  It asks its `Clock` for "now" (seconds since
1970-01-01 00:00 of naive local wall time, the vectors' convention) whenever an input
arrives, and catches up with everything that happened in between.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sts.codec.tid import parse_datetime
from sts.errors import InputError

EPOCH = datetime(1970, 1, 1)


class Clock(Protocol):
    def now(self) -> float: ...


class FakeClock:
    """A clock that moves only when told to: tests, the CLI (`--at`) and the fleet runner."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise InputError(f"cannot advance by a negative time ({seconds} s)", field="seconds")
        self.t += seconds
        return self.t

    def set(self, t: float) -> None:
        self.t = float(t)


def to_seconds(when: datetime) -> float:
    if when.tzinfo is not None:
        when = when.replace(tzinfo=None)  # wall time counts, as for TIDs
    return (when - EPOCH).total_seconds()


def to_datetime(t: float) -> datetime:
    return EPOCH + timedelta(seconds=t)


def parse_time(text: str, *, field: str = "at") -> float:
    """Simulated wall time from ISO-8601 text (a zone, if given, is dropped)."""
    return to_seconds(parse_datetime(text, field=field))


def iso(t: float) -> str:
    return to_datetime(t).isoformat(timespec="seconds" if t == int(t) else "microseconds")
