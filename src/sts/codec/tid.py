"""Token identifier: minutes since the key's base date (spec digest §4).

The TID is 24 bits.  For base date 1993 the last minute is 2024-11-24 20:15; the minute
after it (the November 2024 rollover) is an error, never a wrap.  The minute 00:01 of each
day is reserved (SpecialReservedTokenIdentifier), so token generation moves it to 00:02.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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


def parse_datetime(text: str, *, field: str = "issued_at") -> datetime:
    """`YYYY-MM-DDTHH:MM[:SS]`, naive local time (the vectors' convention)."""
    if not isinstance(text, str):
        raise InputError(f"{field} must be an ISO-8601 date-time string", field=field)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{field} {text!r} is not an ISO-8601 date-time (YYYY-MM-DDTHH:MM:SS)", field=field
        ) from None
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)  # TIDs carry no zone: the wall time counts
    return value


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
