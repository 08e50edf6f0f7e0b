"""A key change rollover's set-up (TID rollover 1993/KRN 1 -> 2014/KRN 2): a supply group with
both vending keys, its meters still on the old one, and each meter's old and new decoder key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sts.codec.pan import MeterPan, luhn_check_digit
from tests.fixtures import TEST_VENDING_KEY, Demo, make_demo, meter_key

SGC = "999940"
NEW_KEY = bytes(reversed(TEST_VENDING_KEY))


def pan_for(i: int) -> str:
    body = f"05{50000000 + i:08d}"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


def rollover_setup(service: Any, clock: Any, meters: int = 3) -> tuple[Demo, list[str]]:
    clock.t = datetime(2024, 6, 1, 9, 0)
    demo = make_demo(service, clock)
    reg = demo.registry
    reg.add_sgc(SGC, utility="Demo Utility")
    reg.add_key(SGC, 1, raw=TEST_VENDING_KEY, base_date=1993)
    reg.authorise_vendor("Demo Vendor", SGC)
    pans = [pan_for(i) for i in range(1, meters + 1)]
    for p in pans:
        reg.add_meter(p, sgc=SGC, tariff="Flat")
    reg.add_key(SGC, 2, raw=NEW_KEY, base_date=2014, make_current=False)
    return demo, pans


def old_key(pan: str) -> Any:
    return meter_key(pan, krn=1, base_date=1993, sgc=SGC)


def new_key(pan: str) -> Any:
    return meter_key(pan, krn=2, base_date=2014, sgc=SGC, vending_key=NEW_KEY)
