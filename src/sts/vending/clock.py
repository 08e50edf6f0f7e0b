"""Vending time: the service clock runs in UTC; each utility's tokens count its local minutes.

STS TIDs count minutes of the vending system's local wall time and carry no zone, so every
token-issuing use case converts "now" into the meter's utility time zone (an IANA name on the
utility, default UTC).  A clock may return an aware time (converted, never stripped) or a
naive one, which is taken as UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from sts.codec.tid import parse_time_zone

Clock = Callable[[], datetime]
DEFAULT_TIME_ZONE = "UTC"


def wall_clock() -> datetime:
    return datetime.now(UTC)


def utc(t: datetime) -> datetime:
    """`t` as naive UTC, whole seconds (an aware time is converted, a naive one is UTC)."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.replace(microsecond=0)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or InputError naming the rule (`sts.codec.tid`)."""
    return parse_time_zone(name)


def local(now_utc: datetime, zone_name: str) -> datetime:
    """Aware local time in the utility's zone for a naive UTC instant."""
    return now_utc.replace(tzinfo=UTC).astimezone(zone(zone_name))


def wall(t: datetime) -> datetime:
    """The naive wall time of an aware local time (what TIDs and the database hold)."""
    return t.replace(tzinfo=None)

