"""Two tokens for one meter from one command never share a TID (issue 7).

Same-minute tokens get successive TIDs (spec digest §4.2); otherwise the meter answers Used
and the credit is lost.  The rule is in the engine (`generate(..., after_tid=)`,
`generate_many`), so every caller gets it.
"""

from __future__ import annotations

import json
from typing import Any

from sts.cli import cli
from sts.engine import generate_many, wire
from sts.meter import FakeClock, Meter, parse_config
from sts.meter.clock import parse_time
from tests.meter.meter_helpers import make_rig

DEMO_METER = {"pan": "600727000000000009", "dkga": 4, "ea": 7, "table_set": "sample",
              "vending_key": "abababababababab949494949494949401234567", "kt": 2,
              "sgc": "201457", "ti": 1, "krn": 1, "ken": 255, "base_date": 2014}
AT = "2024-02-01T10:00:00"


def _credit(units: str, at: str = AT) -> dict[str, Any]:
    return {"class": 0, "subclass": 0, "issued_at": at, "units": units}


def test_same_minute_requests_get_successive_tids() -> None:
    rig = make_rig()
    key = rig.vend
    requests = [wire.request_from_json(r, key) for r in (
        _credit("1"), _credit("2"),
        {"class": 2, "subclass": 0, "issued_at": AT, "mpl_watts": "5000"})]
    issues = generate_many(key, requests)
    tids = [i.tid for i in issues]
    assert tids[0] is not None and tids[1] == tids[0] + 1 and tids[2] == tids[0] + 2
    for issue in issues:
        assert rig.meter.enter(issue.tokens[0].token).result == "accept"


def test_reserved_minute_is_skipped_when_advancing() -> None:
    key = make_rig().vend
    requests = [wire.request_from_json(_credit(u, "2024-02-01T00:00:00"), key) for u in "12"]
    first, second = (i.tid for i in generate_many(key, requests))
    assert first is not None and second == first + 2  # 00:01 is reserved


def test_key_change_follow_up_after_a_credit_in_the_same_minute() -> None:
    rig = make_rig()
    key = rig.vend
    change = {"class": 2, "subclass": 3, "then": _credit("10"),
              "key_change": {"new_meter": {"krn": 2}, "ro": 0}}
    requests = [wire.request_from_json(_credit("5"), key), wire.request_from_json(change, key)]
    credit, kc = generate_many(key, requests)
    assert credit.tid is not None and kc.tid == credit.tid + 1
    results = [rig.meter.enter(t.token).result for issue in (credit, kc) for t in issue.tokens]
    assert results == ["accept", "key_change_1", "accept", "accept"]


def test_every_demo_token_is_accepted_by_the_demo_meter(capsys: Any) -> None:
    from sts.cli.common import run_guarded

    assert run_guarded(cli, ["demo", "--json", "--at", AT]) == 0
    report = json.loads(capsys.readouterr().out)
    meter = Meter.create(parse_config(DEMO_METER), FakeClock(parse_time(AT)))
    results = [meter.enter(token).result for step in report["steps"] for token in step["tokens"]]
    assert results == ["accept", "key_change_1", "accept", "accept", "accept", "accept"]
