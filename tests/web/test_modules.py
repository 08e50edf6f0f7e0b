"""The vending modules behind the pages, without a browser, on SQLite and PostgreSQL:
operators (argon2, lockout, sessions, throttling), floats (top-ups, statement), reports,
class 1 test tokens and the simulator's persistence."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from sts.engine import decode
from sts.errors import InputError, NotAuthenticated, RateLimited
from sts.vending import floats, reports, testtokens
from sts.vending.access import operators
from sts.vending.registry import operators as operator_admin
from sts.vending.storage.tables_office import operator_credentials, sim_meter_states
from sts.vending.usecases.simulator import Simulator


@pytest.mark.slow
def test_sign_in_lockout_sessions(demo: Any) -> None:
    db, clock = demo.service.db, demo.clock
    operator_admin.add_operator(demo.registry, "till7", "vendor", "a long enough secret",
                           vendor="Demo Vendor")
    with db.read() as conn:
        stored = conn.scalar(sa.select(operator_credentials.c.password_hash))
    assert stored.startswith("$argon2id$") and "secret" not in stored
    with pytest.raises(InputError):
        operator_admin.add_operator(demo.registry, "short", "admin", "too short")
    with pytest.raises(InputError):  # a cashier must belong to a vendor
        operator_admin.add_operator(demo.registry, "nov", "vendor", "a long enough secret")

    op, token = operators.sign_in(db, "till7", "a long enough secret", address="a", now=clock())
    assert op.role == "vendor" and op.vendor == "Demo Vendor"
    assert operators.session(db, token, now=clock()) == op
    caller = operators.caller(db, op, now=clock())
    assert caller.vendor_id == op.vendor_id and caller.label == "web:till7"
    assert operators.caller(db, op, now=clock()).key_id == caller.key_id  # one row, reused

    for _ in range(5):
        with pytest.raises(NotAuthenticated) as err:
            operators.sign_in(db, "till7", "wrong", address="a", now=clock())
    assert "locked" in err.value.message
    with pytest.raises(NotAuthenticated, match="locked"):
        operators.sign_in(db, "till7", "a long enough secret", address="a", now=clock())
    clock.advance(minutes=16)
    _, token2 = operators.sign_in(db, "till7", "a long enough secret", address="a",
                                    now=clock())
    # idle sessions end; sign-out ends a session
    clock.advance(minutes=31)
    assert operators.session(db, token2, now=clock()) is None
    _, token3 = operators.sign_in(db, "till7", "a long enough secret", address="a", now=clock())
    operators.sign_out(db, token3, now=clock())
    assert operators.session(db, token3, now=clock()) is None
    # disabled operators cannot sign in, and their sessions end
    _, token4 = operators.sign_in(db, "till7", "a long enough secret", address="a", now=clock())
    operator_admin.set_active(demo.registry, "till7", False)
    assert operators.session(db, token4, now=clock()) is None
    with pytest.raises(NotAuthenticated, match="disabled"):
        operators.sign_in(db, "till7", "a long enough secret", address="a", now=clock())
    # unknown users are refused the same way, and an address is throttled
    with pytest.raises(NotAuthenticated, match="wrong username or password"):
        operators.sign_in(db, "nobody", "whatever123", address="b", now=clock(), limit=3)
    with pytest.raises(RateLimited):
        for _ in range(3 + 1):
            with pytest.raises(NotAuthenticated):
                operators.sign_in(db, "nobody", "whatever123", address="c", now=clock(),
                                  limit=3)


def test_top_ups_and_statement(demo: Any) -> None:
    reg, db, clock = demo.registry, demo.service.db, demo.clock
    start = clock()
    assert reg.top_up("Demo Vendor", "250.50", "EFT 1") == Decimal("1000250.50")
    for amount, ref, field in (("-5", "x123", "amount"), ("10", "", "reference"),
                               ("abc", "ref1", "amount")):
        with pytest.raises(InputError) as err:
            reg.top_up("Demo Vendor", amount, ref)
        assert err.value.field == field
    sale = demo.buy(amount="100")
    assert sale.status_code == 201, sale.text
    pid = sale.url.path.rsplit("/", 1)[-1]
    assert demo.client.post(f"/v1/purchases/{pid}/reversals",
                            json={"reason": "never delivered"},
                            headers=demo.h("supervisor")).status_code == 201
    clock.advance(minutes=1)
    st = floats.statement(db, "Demo Vendor", start, clock())
    assert st["opening"] == "1000000.00" and st["closing"] == "1000250.50"
    assert [ln["kind"] for ln in st["lines"]] == ["top_up", "sale", "reversal"]
    assert st["totals"] == {"top_up": "250.50", "adjustment": "0.00", "sale": "-100.00",
                            "reversal": "100.00"}
    assert [ln["balance"] for ln in st["lines"]] == ["1000250.50", "1000150.50", "1000250.50"]
    # a page of it carries the running balance on; the sums are the whole period's
    second = floats.statement(db, "Demo Vendor", start, clock(), page=2, size=2)
    assert second["lines"] == st["lines"][2:] and second["count"] == 3
    assert second["closing"] == st["closing"] and second["totals"] == st["totals"]
    recon = reports.reconciliation(db, start, clock())["rows"][0]
    assert recon["opening"] == "1000000.00" and recon["closing"] == recon["float_now"]
    assert recon["top_ups"] == "250.50" and recon["sales"] == "100.00"
    # a movement after the period changes neither its lines nor its opening or closing
    reg.top_up("Demo Vendor", "10", "EFT 2")
    assert floats.statement(db, "Demo Vendor", start, clock()) == st


def test_sales_report_totals_and_csv(demo: Any) -> None:
    db, clock = demo.service.db, demo.clock
    start = clock()
    for amount, meter in (("100", demo.meters[0]), ("57.50", demo.meters[1])):
        assert demo.buy(meter=meter, amount=amount).status_code == 201
    clock.advance(minutes=1)
    for by in reports.GROUPS:
        out = reports.sales(db, start, clock(), by)
        assert out["total"]["amount"] == "157.50" and out["total"]["sales"] == 2
        vat = sum(Decimal(r["vat"]) for r in out["rows"])
        assert str(vat) == out["total"]["vat"]
    text = reports.to_csv([{"key": "=cmd()", "amount": "-1.00"}])
    assert text.splitlines() == ["key,amount", "'=cmd(),-1.00"]
    with pytest.raises(InputError):
        reports.sales(db, clock(), start, "day")


def test_class_1_tokens_in_both_forms(demo: Any) -> None:
    out = testtokens.for_meter(demo.meters[0])
    assert out["form"] == 2 and len(out["tokens"]) == 18
    for row in out["tokens"]:
        two, four = decode(row["token_2"]), decode(row["token_4"])
        assert (two.token_class, two.subclass, two.fields["mfr_code"]) == (1, 0, "04")
        assert (four.token_class, four.subclass, four.fields["mfr_code"]) == (1, 1, "0004")
        assert two.fields["control"] == four.fields["control"] == 1 << row["bit"]


def test_simulator_keeps_the_meter_without_its_key(demo: Any) -> None:
    sim = Simulator(demo.service, _operator_id(demo))
    sale = demo.buy(amount="50").json()
    token = sale["tokens"][0]["token"]
    first = sim.view(demo.meters[0])
    assert first["registers"]["electricity"] == "0.00" and first["relay"] == "open"
    for digit in token[:19]:
        sim.press(demo.meters[0], digit)
    out = sim.press(demo.meters[0], token[19])
    assert out["display"]["counter"] == 20
    out = sim.press(demo.meters[0], "enter")
    assert out["result"]["result"] == "accept" and out["relay"] == "closed"
    assert sim.enter(demo.meters[0], token)["result"]["result"] == "used"
    with demo.service.db.read() as conn:
        state = json.loads(conn.scalar(sa.select(sim_meter_states.c.state)))
    assert "decoder_key" not in state["key"]
    out = sim.set_load(demo.meters[0], 2000)
    credit = Decimal(out["registers"]["electricity"])
    out = sim.advance(demo.meters[0], 1800)
    assert Decimal(out["registers"]["electricity"]) == credit - 1  # 2 kW for half an hour
    with pytest.raises(InputError):
        sim.press(demo.meters[0], "x")


def test_key_change_tokens_come_first_with_instructions(demo: Any) -> None:
    from sts.vending.receipts import instructions
    from sts.vending.registry.admin import DEMO_SGC

    demo.registry.add_key(DEMO_SGC, 2)  # the supply group moves to KRN 2
    due = reports.key_change_due(demo.service.db)
    assert {d["meter"] for d in due} >= set(demo.meters) and due[0]["to_krn"] == 2
    sale = demo.buy(meter=demo.meters[2], amount="20").json()
    kinds = [t["kind"] for t in sale["tokens"]]
    assert kinds == ["KCT", "KCT", "STD"]
    text = instructions(sale["tokens"])
    assert text.startswith("Enter these two key change tokens first")
    assert instructions(sale["tokens"][2:]).startswith("Enter the token")


def test_simulator_timeouts_and_keypad_lockout(demo: Any) -> None:
    sim, pan = Simulator(demo.service, _operator_id(demo)), demo.meters[3]
    token = demo.buy(meter=pan, amount="10").json()["tokens"][0]["token"]
    for digit in "12345":
        out = sim.press(pan, digit)
    assert out["display"]["text"] == "1234-5" and out["display"]["counter"] == 5
    out = sim.advance(pan, 21)  # 20 s without a key: back to the default display
    assert out["display"]["counter"] is None and "kWh" in out["display"]["text"]
    out = sim.enter(pan, token)
    assert out["display"]["text"] == "Accept"
    assert "kWh" in sim.advance(pan, 3.5)["display"]["text"]  # then the amount for 5 s
    # wrong tokens lock the keypad; a good token is then not even tried
    for _ in range(3):
        wrong = sim.enter(pan, "12345678901234567890")["result"]
    assert wrong["result"] == "reject"
    token2 = demo.buy(meter=pan, amount="10").json()["tokens"][0]["token"]
    assert sim.enter(pan, token2)["result"]["result"] == "lockout"
    assert sim.advance(pan, 11)["keypad"]["lockout_remaining"] == 0
    assert sim.enter(pan, token2)["result"]["result"] == "accept"


@pytest.mark.slow
def test_cli_demo_prints_one_account_per_role_and_operator_add(db_url: str,
                                                               kek_file: str) -> None:
    from click.testing import CliRunner

    from sts.cli.vending import admin
    from sts.vending.registry.admin import DEMO_VENDOR
    from sts.vending.storage.database import Database

    base = ["--db", db_url, "--kek-file", kek_file]
    out = CliRunner().invoke(admin, [*base, "demo", "--json"], catch_exceptions=False)
    accounts = json.loads(out.output)["operators"]
    assert set(accounts) == {"vendor", "supervisor", "engineer", "admin", "auditor"}
    added = CliRunner().invoke(admin, [*base, "operator", "add", "cashier2", "vendor",
                                       "--vendor", DEMO_VENDOR, "--json"],
                               catch_exceptions=False)
    assert added.exit_code == 0, added.output
    new = json.loads(added.output)
    db = Database(db_url)
    try:
        for role, acc in accounts.items():
            op, _ = operators.sign_in(db, acc["username"], acc["password"], address="t",
                                      now=operators_now())
            assert op.role == role
        op, _ = operators.sign_in(db, "cashier2", new["password"], address="t",
                                  now=operators_now())
        assert op.vendor == DEMO_VENDOR
    finally:
        db.dispose()


def operators_now() -> Any:
    from datetime import datetime

    return datetime.now()


def test_catalogue_tariff_moves_and_search(demo: Any) -> None:
    from sts.vending.registry import catalogue

    reg, db = demo.registry, demo.service.db
    blocks = catalogue.parse_blocks("50:1.20; 350:2.10\n3.40")
    assert blocks == [("50", "1.20"), ("350", "2.10"), (None, "3.40")]
    reg.add_tariff("Lifeline", blocks=blocks, vat_rate="0.15", free_units="50")
    listed = {t["name"]: t for t in catalogue.list_tariffs(db)}
    assert listed["Lifeline"]["blocks"][0] == {"up_to": "50", "price": "1.2"}
    catalogue.set_meter_tariff(reg, demo.meters[4], "Lifeline")
    found = catalogue.search_meters(db, "customer 5")
    assert [m["pan"] for m in found] == [demo.meters[4]] and found[0]["tariff"] == "Lifeline"
    with pytest.raises(InputError):  # blocks must rise
        catalogue.update_tariff(reg, "Lifeline", blocks=[("50", "1"), ("20", "2"), (None, "3")],
                                vat_rate="0", fixed_monthly="0", debt_share="0",
                                free_units="0", min_amount="0", max_amount=None,
                                description="")
    catalogue.update_tariff(reg, "Lifeline", blocks=[(None, "4")], vat_rate="0",
                            fixed_monthly="0", debt_share="0", free_units="0",
                            min_amount="0", max_amount=None, description="flat 4")
    out = demo.service.trial({"meter": demo.meters[4], "amount": "40"}, _vendor_caller(demo))
    assert out["receipt"]["units"] == "10.0"


def _vendor_caller(demo: Any) -> Any:
    from sts.vending.access.api_keys import authenticate

    with demo.service.db.read() as conn:
        return authenticate(conn, demo.keys["vendor"])


def test_rejected_deliveries_report(demo: Any) -> None:
    """A token the meter refused (its answer, as the dispatcher stores it) is listed in the
    reports page and its CSV; a supervisor of another vendor does not see it."""
    from sqlalchemy import update

    from sts.delivery import answers
    from sts.vending import outbox
    from sts.vending.access.policy import Caller
    from sts.vending.storage.tables_delivery import deliveries
    from sts.web.common import COOKIE

    db, clock = demo.service.db, demo.clock
    sale = demo.buy(amount="20")
    assert sale.status_code == 201, sale.text
    pid = sale.json()["purchase_id"]
    with db.read() as conn:
        jobs = outbox.for_request(conn, pid)
    assert [j["channel"] for j in jobs] == ["ami"]  # the demo meters are AMI-connected
    refusal = {"id": str(jobs[0]["id"]), "results": [
        {"position": 0, "result": "old", "code": "Old", "display": "Old",
         "token_status": "VALIDATION_FAILED"}]}
    with db.begin() as conn:  # the tokens went out (a meter answers only what it was sent)
        conn.execute(update(deliveries).where(deliveries.c.id == jobs[0]["id"])
                     .values(status="sent", sent_at=demo.service.now()))
    with db.begin() as conn:
        assert answers.apply_meter_status(db, conn, demo.meters[0], refusal,
                                          demo.service.now()) == "rejected"
    operator_admin.add_operator(demo.registry, "boss", "admin", "a long enough secret")
    _op, token = operators.sign_in(db, "boss", "a long enough secret", address="a", now=clock())
    rows = demo.service.rejected_deliveries(Caller(0, "admin", "boss", None))
    assert [(r["request_id"], r["meter"], r["channel"]) for r in rows] == \
        [(pid, demo.meters[0], "ami")]
    assert "Old" in rows[0]["reason"]
    other = Caller(0, "supervisor", "sup", 10**6)  # a supervisor of another vendor
    assert demo.service.rejected_deliveries(other) == []
    from sts.vending.usecases import deliveries as delivery_usecases

    assert delivery_usecases.rejected_page(demo.service, other, {}).rows == []
    assert [r["request_id"] for r in delivery_usecases.rejected_page(
        demo.service, Caller(0, "admin", "boss", None), {}).rows] == [pid]

    demo.client.cookies.set(COOKIE, token)
    try:
        page = demo.client.get("/reports")
        assert page.status_code == 200 and pid in page.text and "Old" in page.text
        # a page of them, searched by what people type (sts.vending.listing)
        assert re.search(r'id="rejected-count" role="status">1–1 of 1 deliveries<', page.text)
        from sts.vending.usecases.lists import printed

        assert pid in demo.client.get("/reports", params={"q": printed(demo.meters[0])}).text
        assert pid not in demo.client.get("/reports", params={"q": "nothing like it"}).text
        assert demo.client.get("/reports", params={"sort": "meter"}).status_code == 422
        csv_text = demo.client.get("/reports?table=rejected-deliveries&format=csv").text
        operator_admin.add_operator(demo.registry, "till9", "vendor", "a long enough secret",
                               vendor="Demo Vendor")
        _, till = operators.sign_in(db, "till9", "a long enough secret", address="a",
                                    now=clock())
        demo.client.cookies.set(COOKIE, till)
        slip = demo.client.get(f"/pos/sale/{pid}")  # the cashier's sale page: its delivery
        assert slip.status_code == 200 and 'id="delivery"' in slip.text, slip.text[:300]
        assert "Meter (AMI)" in slip.text and "rejected" in slip.text
    finally:
        demo.client.cookies.clear()
    lines = csv_text.strip().splitlines()
    assert lines[0] == ",".join(["id", "updated_at", "request_id", "meter", "channel", "to",
                                 "attempts", "reason"])
    assert len(lines) == 2 and pid in lines[1] and "Old" in lines[1]


def test_simulator_first_inputs_at_once_all_count(demo: Any) -> None:
    """Several first key presses to a meter nobody has touched yet (two tills, a double tap):
    each waits for the one before it, none fails, and every digit is on the display."""
    from concurrent.futures import ThreadPoolExecutor

    sim, pan = Simulator(demo.service, _operator_id(demo)), demo.meters[-1]
    with demo.service.db.read() as conn:
        assert conn.scalar(sa.select(sim_meter_states.c.pan)
                           .where(sim_meter_states.c.pan == pan)) is None
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(lambda _: sim.press(pan, "7"), range(4)))
    counters = sorted(out["display"]["counter"] for out in outs)
    assert counters == [1, 2, 3, 4]
    assert sim.view(pan)["display"]["text"] == "7777"


def _operator_id(demo: Any, username: str = "demo-engineer") -> int:
    """The simulator keeps a meter per operator: the demo engineer's."""
    from sqlalchemy import select

    from sts.vending.storage.tables import operators

    with demo.service.db.read() as conn:
        return int(conn.scalar(select(operators.c.id).where(operators.c.username == username)))


def test_simulator_keeps_a_meter_per_operator(demo: Any) -> None:
    """Two trainees on the same meter: one's keys, credit and clock never reach the other."""
    pan = demo.meters[2]
    one = Simulator(demo.service, _operator_id(demo, "demo-engineer"))
    two = Simulator(demo.service, _operator_id(demo, "demo-auditor"))
    one.advance(pan, 3600)
    for digit in "1234":
        one.press(pan, digit)
    assert one.view(pan)["display"]["text"] == "1234"
    other = two.view(pan)
    assert other["display"]["counter"] is None and "1234" not in other["display"]["text"]
    assert other["offset"] == 0 and one.view(pan)["offset"] == 3600
    assert one.view(pan)["display"]["meaning"].startswith("Digits being typed")
    one.reset(pan)  # forgetting one's meter leaves the other's alone
    two.press(pan, "9")
    assert two.view(pan)["display"]["text"] == "9" and one.view(pan)["display"]["counter"] is None
