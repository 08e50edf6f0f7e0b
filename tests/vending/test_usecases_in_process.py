"""The sale, reversal and float rules called in process, without HTTP: a use case takes the
service context and a caller, so a face is not needed to test a rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sts.errors import AdviceConflict, InsufficientFloat, UnknownRecord
from sts.vending.access.api_keys import authenticate
from sts.vending.access.policy import Caller
from tests.fixtures import Demo, vendor_float


def _caller(demo: Demo, role: str) -> Caller:
    with demo.service.db.read() as conn:
        return authenticate(conn, demo.keys[role])



def test_sale_reversal_and_float_in_process(demo: Demo) -> None:
    svc: Any = demo.service
    seller, boss = _caller(demo, "vendor"), _caller(demo, "supervisor")
    before = vendor_float(demo)
    sale, created = svc.purchase("in-process-0001", {"meter": demo.meters[0], "amount": "75"},
                                 seller)
    assert created and sale["receipt"]["amount"] == "75.00" and sale["tokens"]
    assert vendor_float(demo) == before - 75
    again, created = svc.purchase("in-process-0001", {"meter": demo.meters[0], "amount": "75"},
                                  seller)
    assert not created and again == sale and vendor_float(demo) == before - 75  # exactly once
    with pytest.raises(Exception) as refused:
        svc.reverse("in-process-0001", "lost", seller)  # a cashier may not reverse
    assert getattr(refused.value, "code", "") == "NOT_AUTHORISED"
    out, created = svc.reverse("in-process-0001", "lost", boss)
    assert created and out["amount"] == "-75.00" and vendor_float(demo) == before
    # a reversal advice afterwards answers reversed and moves nothing; a confirmation is refused
    svc.reverse_advice("in-process-0001", "r-1", "switch timed out", seller)  # no error
    assert vendor_float(demo) == before
    with pytest.raises(AdviceConflict):
        svc.confirm_sale("in-process-0001", "c-1", seller)


def test_float_runs_out_in_process(demo: Demo) -> None:
    reg = demo.registry
    reg.add_vendor("Tiny Vendor", float_balance="30", sgcs=["999910"])
    key = reg.add_api_key("vendor", vendor="Tiny Vendor")
    with demo.service.db.read() as conn:
        tiny = authenticate(conn, key)
    svc: Any = demo.service
    svc.purchase("tiny-sale-0001", {"meter": demo.meters[0], "amount": "20"}, tiny)
    with pytest.raises(InsufficientFloat):
        svc.purchase("tiny-sale-0002", {"meter": demo.meters[0], "amount": "20"}, tiny)
    assert vendor_float(demo, "Tiny Vendor") == Decimal("10")
    with pytest.raises(UnknownRecord):  # another vendor's sale: unknown to Tiny Vendor
        svc.get_purchase("tiny-sale-0001", _caller(demo, "vendor"))
