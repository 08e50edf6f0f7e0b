"""Helpers for the meter tests: a test meter, a fake clock and a vending side for tokens.

Scenario tests use the standard's *sample* STA tables (built in), so they need no table
file; the vector tests use the production tables from the shared vectors directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sts.engine import MeterKey, generate, wire
from sts.meter import FakeClock, Meter, parse_config
from sts.meter.clock import parse_time
from tests.conftest import load_vectors

START = "2024-03-01T08:00:00"

METER64: dict[str, Any] = {
    "pan": "600727000000000009", "dkga": 2, "ea": 7, "table_set": "sample",
    "vending_key": "abababababababab", "kt": 2, "sgc": "123456", "ti": 1, "krn": 1,
    "ken": 255, "base_date": 2014,
}
METER128: dict[str, Any] = {
    "pan": "600727000000000009", "dkga": 4, "ea": 11,
    "vending_key": "abababababababab949494949494949401234567", "kt": 2, "sgc": "123456",
    "ti": 1, "krn": 1, "ken": 255, "base_date": 2014,
}


@dataclass
class Rig:
    """A meter under test, its fake clock and the vending key that makes its tokens."""

    meter: Meter
    clock: FakeClock
    vend: MeterKey
    meter_obj: dict[str, Any]

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.meter.tick()

    @property
    def text(self) -> str:
        return self.meter.display().text

    def token(self, request: dict[str, Any], key: MeterKey | None = None) -> list[str]:
        key = key or self.vend
        issue = generate(key, wire.request_from_json(request, key))
        return [t.token for t in issue.tokens]

    def credit(self, units: str = "10", at: str = "2024-02-01T10:00:00", subclass: int = 0,
               rnd: int = 5) -> str:
        return self.token({"class": 0, "subclass": subclass, "issued_at": at, "rnd": rnd,
                           "units": units})[0]

    def management(self, subclass: int, at: str = "2024-02-01T10:00:00", **values: Any) -> str:
        return self.token({"class": 2, "subclass": subclass, "issued_at": at, "rnd": 3,
                           **values})[0]

    def wrong_token(self, at: str = "2024-02-01T11:00:00") -> str:
        """A class 0 token for another meter (different vending key): fails the CRC."""
        other = wire.meter_from_json({**self.meter_obj, "vending_key": "0123456789abcdef"
                                      if self.vend.key_bits == 64 else "11" * 20})
        issue = generate(other, wire.request_from_json(
            {"class": 0, "subclass": 0, "issued_at": at, "rnd": 5, "units": "1"}, other))
        return issue.tokens[0].token


def make_rig(meter_obj: dict[str, Any] | None = None, start: str = START,
             tables_file: str | None = None, **config: Any) -> Rig:
    obj = dict(meter_obj or METER64)
    clock = FakeClock(parse_time(start))
    meter = Meter.create(parse_config({**obj, **config}), clock, tables_file=tables_file)
    vend = wire.meter_from_json(obj, tables_file=tables_file)
    return Rig(meter, clock, vend, obj)




def token_vectors() -> list[dict[str, Any]]:
    """Every token line of tokens.jsonl (empty outside CI when the vectors are absent)."""
    return [dict(v) for v in load_vectors("token")]
