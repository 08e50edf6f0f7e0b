"""Virtual meter throughput: token entries per second through the core state machine and
through the fleet runner (JSON Lines in and out, thousands of meters).

Tokens are made beforehand by the engine (not timed).  EA07 meters use the sample STA
tables, which cost exactly what the production tables cost.  Run as a script to print JSON.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from sts.engine import generate, wire
from sts.meter import FakeClock, Meter, parse_config
from sts.meter.clock import parse_time
from sts.meter.fleet import Fleet

EA07 = {"pan": "600727000000000009", "dkga": 2, "ea": 7, "table_set": "sample",
        "vending_key": "abababababababab", "kt": 2, "sgc": "123456", "ti": 1, "krn": 1,
        "ken": 255, "base_date": 2014}
EA11 = {"pan": "600727000000000009", "dkga": 4, "ea": 11,
        "vending_key": "abababababababab949494949494949401234567", "kt": 2, "sgc": "123456",
        "ti": 1, "krn": 1, "ken": 255, "base_date": 2014}
START = datetime(2024, 1, 1, 10, 0)
AT = parse_time("2024-06-01T00:00:00")


def _tokens(meter_obj: dict[str, Any], count: int) -> list[str]:
    key = wire.meter_from_json(meter_obj)
    out = []
    for n in range(count):
        when = START + timedelta(minutes=2 * n)  # never the reserved minute 00:01 twice
        request = wire.request_from_json({"class": 0, "subclass": 0, "issued_at":
                                          when.isoformat(), "rnd": n % 16, "units": "1"}, key)
        out.append(generate(key, request).tokens[0].token)
    return out


def _core(meter_obj: dict[str, Any], count: int) -> float:
    tokens = _tokens(meter_obj, count)
    meter = Meter.create(parse_config({**meter_obj, "max_credit": None}), FakeClock(AT))
    started = time.perf_counter()
    for token in tokens:
        meter.enter(token)
    elapsed = time.perf_counter() - started
    assert meter.state.memory.registers["electricity"] == count
    return count / elapsed


def _fleet(meters: int, per_meter: int, wrong_share: float) -> dict[str, float]:
    fleet = Fleet()
    lines: list[str] = []
    per: list[list[str]] = []
    for n in range(meters):
        obj = {**EA07, "vending_key": f"{n + 1:016x}"}
        fleet.add_config(f"m{n}", {**obj, "max_credit": None})
        per.append(_tokens(obj, per_meter))
    rng = random.Random(1)
    for j in range(per_meter):
        for n in range(meters):
            token = per[n][j]
            if rng.random() < wrong_share:
                token = per[(n + 1) % meters][j]  # another meter's token: Reject
            lines.append(json.dumps({"meter": f"m{n}", "token": token}))
    started = time.perf_counter()
    for n in range(meters):  # what the runner does lazily on a meter's first line
        fleet.meter(f"m{n}", AT)
    built = time.perf_counter() - started
    started = time.perf_counter()
    for _ in fleet.run(lines, AT):
        pass
    elapsed = time.perf_counter() - started
    accepted = sum(len(m.state.memory.tids) for m in fleet.meters.values())
    assert accepted == round(len(lines) * (1 - wrong_share)) or wrong_share
    return {"entries_per_s": len(lines) / elapsed, "meters_built_per_s": meters / built,
            "accepted": accepted, "entries": len(lines)}


def run(quick: bool = False) -> dict[str, Any]:
    core_count = 2_000 if quick else 20_000
    meters, per_meter = (200, 10) if quick else (2_000, 15)
    _fleet(10, 2, 0.0)  # warm-up: numpy import and the batch cipher tables (one-time costs)
    fleet = _fleet(meters, per_meter, 0.0)
    mixed = _fleet(meters, per_meter, 0.1)
    return {
        "core_ea07_entries_per_s": round(_core(EA07, core_count)),
        "core_ea11_entries_per_s": round(_core(EA11, core_count // 4)),
        "fleet_entries_per_s": round(fleet["entries_per_s"]),
        "fleet_meters": meters,
        "fleet_entries": fleet["entries"],
        "fleet_accepted": fleet["accepted"],
        "fleet_meters_built_per_s": round(fleet["meters_built_per_s"]),
        "fleet_10pct_reject_entries_per_s": round(mixed["entries_per_s"]),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
