"""Four-eyes on money (sts.vending.registry.float_approvals): a float top-up above the
utility's approval amount waits for a second operator of the right role, and moves the
float only when approved; rejected with a reason, it never does.  Audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from sts.errors import ApprovalNeeded, InputError, NotAuthorised
from sts.vending.access.policy import Caller
from sts.vending.registry.admin import Registry
from sts.vending.registry.float_approvals import decide, request_top_up, requests
from sts.vending.storage.tables import audit_log
from tests.fixtures import vendor_float


def _as(demo: Any, username: str) -> Registry:
    return Registry(demo.service.db, demo.service.sm, actor=f"web:{username}", clock=demo.clock)


def _caller(role: str, vendor_id: int | None = None) -> Caller:
    return Caller(key_id=0, role=role, label="test", vendor_id=vendor_id)


def test_a_large_top_up_waits_for_a_second_approver(demo: Any) -> None:
    clerk, boss = _as(demo, "clerk"), _as(demo, "boss")
    before = vendor_float(demo)
    # at or below the demo's 10 000: at once
    small = request_top_up(clerk, "Demo Vendor", "10000", "EFT 100")
    assert small.state == "applied" and small.balance == before + 10000
    big = request_top_up(clerk, "Demo Vendor", "25000", "EFT 200")
    assert big.state == "pending" and big.limit == Decimal("10000.00")
    assert vendor_float(demo) == before + 10000  # nothing moved yet
    # the registry's direct path cannot go around the rule
    with pytest.raises(ApprovalNeeded):
        clerk.top_up("Demo Vendor", "25000", "EFT 201")
    assert [r["id"] for r in requests(demo.service.db)] == [big.request_id]
    assert big.request_id is not None
    # the requester, a vendor-bound supervisor and an auditor may not approve
    with pytest.raises(NotAuthorised):
        decide(clerk, big.request_id, _caller("admin"), approve=True)
    with pytest.raises(NotAuthorised):
        decide(boss, big.request_id, _caller("supervisor", vendor_id=1), approve=True)
    with pytest.raises(NotAuthorised):
        decide(boss, big.request_id, _caller("auditor"), approve=True)
    assert vendor_float(demo) == before + 10000
    done = decide(boss, big.request_id, _caller("admin"), approve=True)
    assert done.state == "approved" and done.balance == before + 35000
    assert vendor_float(demo) == before + 35000
    with pytest.raises(InputError, match="already approved"):
        decide(boss, big.request_id, _caller("admin"), approve=True)
    assert requests(demo.service.db) == []
    with demo.service.db.read() as conn:
        actions = [r.action for r in conn.execute(
            select(audit_log.c.action).where(audit_log.c.subject == "Demo Vendor")
            .order_by(audit_log.c.seq))]
    assert actions[-3:] == ["vendor.top_up_requested", "vendor.top_up_approved",
                            "vendor.top_up"]


def test_a_rejected_top_up_never_moves_the_float(demo: Any) -> None:
    clerk, boss = _as(demo, "clerk"), _as(demo, "boss")
    before = vendor_float(demo)
    req = request_top_up(clerk, "Demo Vendor", "50000.00", "EFT 300")
    assert req.request_id is not None
    with pytest.raises(InputError) as err:
        decide(boss, req.request_id, _caller("admin"), approve=False, reason="")
    assert err.value.field == "reason"
    done = decide(boss, req.request_id, _caller("admin"), approve=False,
                  reason="no such deposit on the bank statement")
    assert done.state == "rejected" and vendor_float(demo) == before
    (row,) = requests(demo.service.db, state="rejected")
    assert row["decided_by"] == "web:boss" and row["reason"].startswith("no such deposit")


def test_no_approval_amount_means_no_four_eyes(demo: Any) -> None:
    clerk = _as(demo, "clerk")
    clerk.set_top_up_approval("Demo Utility", None)
    before = vendor_float(demo)
    assert request_top_up(clerk, "Demo Vendor", "250000", "EFT 400").state == "applied"
    assert vendor_float(demo) == before + 250000


def test_the_cli_top_up_follows_the_same_rule(db_url: str, kek_file: str) -> None:
    """`sts admin vendor topup` above the approval amount records a request (no float moves);
    `topups` lists it; `approval-limit none` lifts the rule."""
    import json

    from click.testing import CliRunner

    from sts.cli.vending import admin

    base = ["--db", db_url, "--kek-file", kek_file]

    def run(*args: str) -> Any:
        result = CliRunner().invoke(admin, [*base, *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    run("demo")
    small = run("vendor", "topup", "Demo Vendor", "500", "--reference", "EFT 1")
    assert small["state"] == "applied" and small["float_balance"] == "1000500.00"
    big = run("vendor", "topup", "Demo Vendor", "20000", "--reference", "EFT 2")
    assert big["state"] == "pending" and big["approval_above"] == "10000.00"
    listed = run("vendor", "topups")["requests"]
    assert [(r["id"], r["amount"], r["state"]) for r in listed] == [
        (big["request"], "20000.00", "pending")]
    assert listed[0]["requested_by"].startswith("cli")
    run("vendor", "approval-limit", "Demo Utility", "none")
    lifted = run("vendor", "topup", "Demo Vendor", "20000", "--reference", "EFT 3")
    assert lifted["state"] == "applied" and lifted["float_balance"] == "1020500.00"
