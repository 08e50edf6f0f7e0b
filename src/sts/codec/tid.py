"""Token identifier: minutes since the key's base date (spec digest §4).

The TID is 24 bits.  For base date 1993 the last minute is 2024-11-24 20:15; the minute
after it (the November 2024 rollover) is an error, never a wrap.  The minute 00:01 of each
day is reserved (SpecialReservedTokenIdentifier), so token generation moves it to 00:02.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sts.codec.describe import describe
from sts.errors import InputError, TidOutOfRange

BASE_DATES: dict[int, datetime] = {
    1993: datetime(1993, 1, 1),
    2014: datetime(2014, 1, 1),
    2035: datetime(2035, 1, 1),
}
TID_MAX = (1 << 24) - 1
MINUTES_PER_DAY = 1440
RESERVED_MINUTE_OF_DAY = 1  # 00:01


def base_datetime(base_date: int) -> datetime:
    try:
        return BASE_DATES[base_date]
    except KeyError:
        raise InputError(
            f"base_date {base_date!r} is not one of 1993, 2014, 2035", field="base_date"
        ) from None


_DATETIME_MAX_CHARS = 40
_ZONE_MAX_CHARS = 64


def parse_time_zone(name: object, *, field: str = "time_zone") -> ZoneInfo:
    """An IANA time zone (e.g. "Africa/Johannesburg", "UTC") for the vending system's clock."""
    if not isinstance(name, str) or not 0 < len(name) <= _ZONE_MAX_CHARS:
        raise InputError(f"{field} must be an IANA time zone name such as \"Africa/Johannesburg\""
                         f" or \"UTC\", got {describe(name)}", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(f"{field} {name!r} is not a known IANA time zone (e.g. "
                         "\"Africa/Johannesburg\", \"UTC\")", field=field) from None


def local_vending_time(dt: datetime, tz: ZoneInfo | None, *, field: str = "issued_at") -> datetime:
    """The naive local wall time of the vending system that a TID counts.

    STS tokens carry no zone: a TID is minutes of the vending system's local time.  An aware
    time is converted into the configured zone `tz`; an aware time with no zone configured is
    an error (dropping its offset would silently shift the TID); a naive time is taken as
    already local.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=None)
    if tz is None:
        raise InputError(
            f"{field} {dt.isoformat()} has a UTC offset but no vending time zone is configured "
            "to convert it into (give time_zone, e.g. \"Africa/Johannesburg\", or a local time "
            "without an offset)",
            field=field,
        )
    return dt.astimezone(tz).replace(tzinfo=None)


def parse_datetime(text: object, *, field: str = "issued_at", tz: ZoneInfo | None = None) -> datetime:
    """`YYYY-MM-DDTHH:MM[:SS]` naive local time (the vectors' convention), or with an offset
    (`Z`, `+02:00`) converted into the vending time zone `tz` (see local_vending_time)."""
    if not isinstance(text, str):
        raise InputError(f"{field} must be an ISO-8601 date-time string, got {describe(text)}",
                         field=field)
    try:
        if len(text) > _DATETIME_MAX_CHARS:
            raise ValueError
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{field} {describe(text)} is not an ISO-8601 date-time (YYYY-MM-DDTHH:MM:SS, "
            "optionally with an offset such as +02:00 or Z)",
            field=field,
        ) from None
    return local_vending_time(value, tz, field=field)


def last_valid_time(base_date: int) -> datetime:
    return base_datetime(base_date) + timedelta(minutes=TID_MAX)


def tid_at(issued_at: datetime, base_date: int, *, reserve: bool = True) -> int:
    """The TID for an issue time: whole minutes, seconds dropped, 00:01 -> 00:02 if `reserve`."""
    base = base_datetime(base_date)
    delta = issued_at - base
    minutes = delta.days * MINUTES_PER_DAY + delta.seconds // 60
    if minutes < 0:
        raise TidOutOfRange(
            f"issued_at {issued_at:%Y-%m-%d %H:%M} is before base date {base_date}-01-01",
            field="issued_at",
        )
    if reserve and minutes % MINUTES_PER_DAY == RESERVED_MINUTE_OF_DAY:
        minutes += 1
    if minutes > TID_MAX:
        raise TidOutOfRange(
            f"issued_at {issued_at:%Y-%m-%d %H:%M} is past the last TID of base date "
            f"{base_date} ({last_valid_time(base_date):%Y-%m-%d %H:%M}); the meter needs a key "
            f"change to a later base date (TID rollover)",
            field="issued_at",
        )
    return minutes


def is_reserved(tid: int) -> bool:
    return tid % MINUTES_PER_DAY == RESERVED_MINUTE_OF_DAY


def time_of(tid: int, base_date: int) -> datetime:
    return base_datetime(base_date) + timedelta(minutes=tid)


def check_tid(tid: object, *, field: str = "tid") -> int:
    if isinstance(tid, bool) or not isinstance(tid, int) or not 0 <= tid <= TID_MAX:
        raise TidOutOfRange(f"{field} {tid!r} is not a 24-bit TID (0..{TID_MAX})", field=field)
    return tid
