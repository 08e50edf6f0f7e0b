"""Issue 7, the vending service: every input refused with a clear 4xx naming the field and the
rule; meters named as printed; utility time zones; no token a meter refuses is stored or
charged; a sale never moves a meter to an older key; private SQLite files."""

from __future__ import annotations

import stat
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sts.codec.pan import parse_pan
from sts.codec.tid import tid_at
from sts.engine import decode
from sts.errors import InputError
from sts.vending.storage.database import Database
from sts.vending.storage.tables import meters, transactions, vendors
from tests.fixtures import (
    KNOWN_SGC,
    TEST_VENDING_KEY,
    Demo,
    known_pan,
    meter_key,
    virtual_meter,
)

NEW_KEY = bytes(reversed(TEST_VENDING_KEY))


def printed(pan: str, sep: str = " ") -> str:
    """The meter number as printed on the meter (the DRN), in groups of four."""
    drn = parse_pan(pan).drn
    return sep.join(drn[i:i + 4] for i in range(0, len(drn), 4))


def wrong_check_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def _meter_row(demo: Demo, pan: str) -> Any:
    with demo.service.db.read() as conn:
        return conn.execute(select(meters.c.last_tid, meters.c.key_id, meters.c.last_hash)
                            .where(meters.c.pan == pan)).one()


def _txn_count(demo: Demo) -> int:
    with demo.service.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(transactions)) or 0)


def _error(resp: Any, status: int, code: str, field: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code and body.get("field") == field, body
    assert "Traceback" not in resp.text
    return str(body["message"])


# --- amounts ---------------------------------------------------------------------------------


def test_amounts_are_refused_with_the_rule_never_a_500(demo: Demo) -> None:
    pan = demo.meters[0]
    trial = "/v1/trials"
    msg = _error(demo.buy(pan, "99999999999999999999"), 422, "AMOUNT_TOO_HIGH", "amount")
    assert "digits" in msg
    for bad in ("1e999", "1E+30", "5e1", "1_000", " 50 ", "１０", "٥٠", "+5", "-5", "NaN", ""):
        msg = _error(demo.buy(pan, bad), 422, "INVALID_AMOUNT", "amount")
        assert "plain decimal string" in msg
    _error(demo.client.post(trial, json={"meter": pan, "amount": "9" * 5000},
                            headers=demo.h("vendor")), 422, "INVALID_AMOUNT", "amount")
    _error(demo.client.get(f"/v1/meters/{pan}", params={"amount": "1e999"},
                           headers=demo.h("vendor")), 422, "INVALID_AMOUNT", "amount")
    _error(demo.buy(pan, "10.001"), 422, "INVALID_AMOUNT", "amount")
    assert _txn_count(demo) == 0
    tried = demo.client.post(trial, json={"meter": pan, "amount": "50"},
                             headers=demo.h("vendor")).json()
    assert tried["receipt"]["vat"]["rate"] == "0.15"  # the same on both databases
    assert "VAT 15%" in tried["slip"]  # the rate as people read it
    ok = demo.client.get(f"/v1/meters/{pan}", params={"amount": "50.5"},
                         headers=demo.h("vendor"))
    assert ok.status_code == 200 and ok.json()["quote"]["amount"] == "50.50"


# --- meter numbers ---------------------------------------------------------------------------


def test_meter_named_by_its_printed_number_everywhere(demo: Demo) -> None:
    pan = known_pan()
    drn = parse_pan(pan).drn
    assert len(drn) == 11
    for form in (drn, printed(pan), printed(pan, "-")):
        look = demo.client.get(f"/v1/meters/{form}", headers=demo.h("vendor"))
        assert look.status_code == 200 and look.json()["meter"]["pan"] == pan, look.text
    pid = str(uuid.uuid4())
    sale = demo.buy(printed(pan), "20", pid=pid)
    assert sale.status_code == 201 and sale.json()["receipt"]["meter"]["pan"] == pan
    again = demo.buy(pan, "20", pid=pid)  # the same meter, named by its PAN: the same request
    assert again.status_code == 200 and again.json() == sale.json()
    token = sale.json()["tokens"][0]["token"]
    v = demo.client.post("/v1/tokens/verify", json={"meter": drn, "token": token},
                         headers=demo.h("vendor"))
    assert v.status_code == 200 and v.json()["issued"] is True
    r = demo.client.post("/v1/reprints", json={"meter": printed(pan)}, headers=demo.h("vendor"))
    assert r.status_code == 200 and r.json()["purchase_id"] == pid
    e = demo.client.post(f"/v1/engineering/{uuid.uuid4()}",
                         json={"meter": printed(pan, "-"), "type": "clear_tamper",
                               "reason": "WO-1 tamper"}, headers=demo.h("engineer"))
    assert e.status_code == 201 and e.json()["meter"]["pan"] == pan


def test_wrong_check_digit_is_invalid_meter_number_not_unknown(demo: Demo) -> None:
    pan = known_pan()
    drn = parse_pan(pan).drn
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in drn)
    for bad in (wrong_check_digit(drn), wrong_check_digit(pan), full_width, drn[:-1]):
        msg = _error(demo.client.get(f"/v1/meters/{bad}", headers=demo.h("vendor")), 422,
                     "INVALID_METER_NUMBER", "meter")
        assert msg
        _error(demo.buy(bad, "20"), 422, "INVALID_METER_NUMBER", "meter")
    msg = _error(demo.buy(wrong_check_digit(drn), "20"), 422, "INVALID_METER_NUMBER", "meter")
    assert "check digit" in msg


# --- time zones ------------------------------------------------------------------------------


def test_tids_count_the_utilitys_local_minutes(demo: Demo) -> None:
    pan = known_pan()
    demo.registry.set_time_zone("Demo Utility", "Africa/Johannesburg")  # UTC+2, no DST
    demo.clock.t = datetime(2025, 3, 3, 10, 0)  # a naive clock is UTC
    sale = demo.buy(pan, "20").json()
    assert sale["tokens"][0]["tid"] == tid_at(datetime(2025, 3, 3, 12, 0), 2014)
    assert sale["receipt"]["date"] == "2025-03-03T12:00:00+02:00"
    # an aware clock is converted, never stripped: 10:30-05:00 is 17:30 in Johannesburg
    demo.clock.t = datetime(2025, 3, 3, 10, 30, tzinfo=timezone(timedelta(hours=-5)))
    sale = demo.buy(pan, "20").json()
    assert sale["tokens"][0]["tid"] == tid_at(datetime(2025, 3, 3, 17, 30), 2014)
    assert decode(sale["tokens"][0]["token"], meter_key(pan)).tid == sale["tokens"][0]["tid"]
    v = demo.client.post("/v1/tokens/verify", json={"meter": pan,
                                                    "token": sale["tokens"][0]["token"]},
                         headers=demo.h("vendor")).json()
    assert v["issue"]["issued_at"] == "2025-03-03T17:30:00+02:00"
    with pytest.raises(InputError) as err:
        demo.registry.set_time_zone("Demo Utility", "Mars/Olympus_Mons")
    assert err.value.field == "time_zone"


# --- engineering limits and refused tokens ------------------------------------------------


def _eng(demo: Demo, body: dict[str, Any], rid: str | None = None) -> Any:
    return demo.client.post(f"/v1/engineering/{rid or uuid.uuid4()}",
                            json={"meter": known_pan(), "reason": "WO-7 field visit"} | body,
                            headers=demo.h("engineer"))


def test_engineering_fields_are_range_checked(demo: Demo) -> None:
    for krn in (2**63, 2**31, 2**64, -1, 0, 10, 10**30):
        msg = _error(_eng(demo, {"type": "key_change", "to_krn": krn}), 422, "INVALID_INPUT",
                     "to_krn")
        assert "1 to 9" in msg
    _error(_eng(demo, {"type": "key_change", "to_ti": 100}), 422, "INVALID_INPUT", "to_ti")
    _error(_eng(demo, {"type": "power_limit", "watts": 2**63}), 422, "INVALID_INPUT", "watts")
    big = _eng(demo, {"type": "clear_tamper", "reason": "x" * 1_000_000})
    assert big.status_code in (413, 422) and big.json().get("field") in ("reason", "body")
    svc = demo.service
    caller = _caller(demo, "engineer")
    with pytest.raises(InputError) as err:
        svc.engineering(str(uuid.uuid4()), {"meter": known_pan(), "type": "clear_tamper",
                                            "reason": "x" * 1_000_000}, caller)
    assert err.value.field == "reason" and "300" in err.value.message
    msg = _error(_eng(demo, {"type": "clear_tamper", "reason": "ab"}), 422, "INVALID_INPUT",
                 "reason")
    assert "3 to 300 characters" in msg
    assert _txn_count(demo) == 0


def _caller(demo: Demo, role: str) -> Any:
    from sts.vending.access.api_keys import authenticate

    with demo.service.db.read() as conn:
        return authenticate(conn, demo.keys[role])


def test_a_token_the_meter_refuses_is_never_issued(demo: Demo) -> None:
    pan = known_pan()
    before = _meter_row(demo, pan)
    r = _eng(demo, {"type": "clear_credit", "register": 99})
    assert 400 <= r.status_code < 500 and r.json()["field"] == "register", r.text
    assert _meter_row(demo, pan) == before and _txn_count(demo) == 0  # no TID burnt
    ok = _eng(demo, {"type": "clear_credit", "register": 0})
    assert ok.status_code == 201
    v = demo.client.post("/v1/tokens/verify", json={"meter": pan,
                                                    "token": ok.json()["tokens"][0]["token"]},
                         headers=demo.h("engineer")).json()
    assert v["decoded"] is not None and "error" not in v


# --- key changes never go backwards ---------------------------------------------------------


def test_sale_never_moves_a_meter_to_an_older_key(demo: Demo) -> None:
    pan = known_pan()
    meter = virtual_meter(pan, demo.clock)
    demo.registry.add_key(KNOWN_SGC, 2, raw=NEW_KEY, base_date=2014, make_current=False)
    kc = _eng(demo, {"type": "key_change", "to_krn": 2})
    assert kc.status_code == 201, kc.text
    for t in kc.json()["tokens"]:
        assert meter.enter(t["token"]).result in ("accept", "key_change_1", "key_change_2")
    assert meter.state.memory.key.krn == 2
    demo.clock.advance(minutes=2)
    look = demo.client.get(f"/v1/meters/{pan}", headers=demo.h("vendor")).json()
    assert look["key_change_due"] is False and look["meter"]["krn"] == 2
    sale = demo.buy(pan, "20").json()
    assert [t["kind"] for t in sale["tokens"]] == ["STD"]  # no key change back to KRN 1
    assert sale["receipt"]["meter"]["krn"] == 2
    assert meter.enter(sale["tokens"][0]["token"]).result == "accept"
    # a key added later and made current still moves the meter forward with a sale
    demo.registry.add_key(KNOWN_SGC, 3, raw=TEST_VENDING_KEY, base_date=2014)
    demo.clock.advance(minutes=2)
    sale = demo.buy(pan, "20").json()
    assert [t["kind"] for t in sale["tokens"]] == ["KCT", "KCT", "STD"]
    assert sale["receipt"]["key_change"]["to"]["krn"] == 3
    for t in sale["tokens"]:
        assert meter.enter(t["token"]).result in ("accept", "key_change_1", "key_change_2")
    assert meter.state.memory.key.krn == 3


def test_sale_text_fields_are_limited(demo: Demo) -> None:
    caller = _caller(demo, "vendor")
    for name, value in (("reference", "r" * 65), ("pay_type", "p" * 21), ("reference", 5)):
        with pytest.raises(InputError) as err:
            demo.service.purchase(str(uuid.uuid4()), {"meter": demo.meters[0], "amount": "20",
                                                      name: value}, caller)
        assert err.value.field == name
    assert _txn_count(demo) == 0


# --- reprint numbers -------------------------------------------------------------------------


def test_reprint_receipt_numbers_out_of_range(demo: Demo) -> None:
    for no in ("9999999999", "2147483648"):
        _error(demo.client.post("/v1/reprints", json={"receipt_no": no},
                                headers=demo.h("vendor")), 404, "UNKNOWN_RECORD", "receipt_no")
    r = demo.client.post("/v1/reprints", json={"receipt_no": "1" * 20}, headers=demo.h("vendor"))
    assert r.status_code == 422 and r.json()["field"] == "receipt_no"


def test_float_untouched_by_refused_sales(demo: Demo) -> None:
    with demo.service.db.read() as conn:
        before = Decimal(conn.scalar(select(vendors.c.float_balance)))
    for amount in ("1e999", "99999999999999999999", "0"):
        assert demo.buy(demo.meters[0], amount).status_code == 422
    with demo.service.db.read() as conn:
        assert Decimal(conn.scalar(select(vendors.c.float_balance))) == before


# --- files -----------------------------------------------------------------------------------


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "private.sqlite3"
    db = Database(str(path))
    try:
        with db.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with db.read() as conn:
            conn.exec_driver_sql("SELECT * FROM t").all()
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            for f in files:
                assert f.exists(), f
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))
    finally:
        db.dispose()
