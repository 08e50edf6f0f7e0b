"""The purchase hot path: raw SQL on the transaction's connection, stored-text answers, the
API key checked inside the sale's transaction, and the workers' listening socket."""

from __future__ import annotations

import json
import socket
import uuid
from decimal import Decimal

from sqlalchemy import select

from sts.vending.storage.statements import HotSQL
from sts.vending.storage.tables import meter_months, meters, transactions, vendors
from tests.fixtures import Demo


def test_placeholders_per_backend() -> None:
    pg, lite = HotSQL(is_sqlite=False), HotSQL(is_sqlite=True)
    assert "%(request_id)s" in pg.insert_txn and ":request_id" not in pg.insert_txn
    assert ":request_id" in lite.insert_txn and "%(" not in lite.insert_txn
    assert "FOR UPDATE OF m" in pg.meter_locked.sql and "FOR UPDATE" not in lite.meter_locked.sql
    assert "FOR UPDATE" not in pg.meter.sql
    # every column of a query has a name, and rows are read by those names
    assert pg.meter.names == lite.meter.names and len(set(pg.meter.names)) == len(pg.meter.names)
    assert all(f" AS {n}" in pg.meter.sql for n in pg.meter.names)
    assert lite.money_in(Decimal("1.5")) == 1_500_000
    assert lite.money_out(1_500_000) == Decimal("1.5")
    assert pg.money_in(Decimal("1.5")) == Decimal("1.5")


def _float(demo: Demo) -> Decimal:
    with demo.service.db.read() as conn:
        return Decimal(conn.scalar(select(vendors.c.float_balance)
                                   .where(vendors.c.name == "Demo Vendor")))


def test_answer_is_the_stored_text_and_totals_move(demo: Demo) -> None:
    pan = demo.meters[0]
    before = _float(demo)
    pid = str(uuid.uuid4())
    first = demo.buy(pan, "40.10", pid=pid, reference="r-1")
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    again = demo.buy(pan, "40.10", pid=pid, reference="r-1")
    assert again.status_code == 200 and again.content == first.content
    other = demo.buy(pan, "40.11", pid=pid, reference="r-1")
    assert other.status_code == 409 and other.json()["code"] == "DUPLICATE_REQUEST"
    answer = first.json()
    assert answer["purchase_id"] == pid and answer["receipt"]["request"] == {"reference": "r-1"}
    with demo.service.db.read() as conn:
        row = conn.execute(select(transactions.c.response, transactions.c.amount,
                                  transactions.c.units, transactions.c.hash,
                                  transactions.c.created_at)
                           .where(transactions.c.request_id == pid)).one()
        month = conn.execute(select(meter_months.c.units)
                             .join(meters, meters.c.id == meter_months.c.meter_id)
                             .where(meters.c.pan == pan)).scalar_one()
        last_hash = conn.scalar(select(meters.c.last_hash).where(meters.c.pan == pan))
    assert row.response == first.text and json.loads(row.response) == answer
    assert row.amount == Decimal("40.10") and row.created_at == demo.clock()
    assert month == row.units and last_hash == row.hash
    assert _float(demo) == before - Decimal("40.10")
    assert demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor")
                           ).json()["tokens"] == answer["tokens"]


def test_key_checked_before_anything_else(demo: Demo) -> None:
    url = f"/v1/purchases/{uuid.uuid4()}"
    unknown = {"meter": "0" * 18, "amount": "10"}
    r = demo.client.post(url, json=unknown, headers={"Authorization": "Bearer stsk_nope"})
    assert r.status_code == 401 and r.json()["code"] == "NOT_AUTHENTICATED"
    r = demo.client.post(url, json=unknown, headers=demo.h("engineer"))
    assert r.status_code == 403 and r.json()["code"] == "NOT_AUTHORISED"
    r = demo.client.post(url, json=unknown, headers=demo.h("vendor"))
    assert r.status_code == 404 and r.json()["code"] == "UNKNOWN_METER"
    r = demo.client.post("/v1/purchases/bad", json=unknown, headers=demo.h("vendor"))
    assert r.status_code == 422 and r.json()["field"] == "purchase_id"


def test_workers_listen_on_a_tcp_socket_without_nagle() -> None:
    from sts.cli.vending import _listen

    sock = _listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP  # what asyncio checks before TCP_NODELAY
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.get_inheritable()
    finally:
        sock.close()


def test_decoder_key_cache_follows_the_key_record() -> None:
    from dataclasses import replace

    from sts.vending.keys.security_module import KeyRecord, MeterIdentity
    from sts.vending.keys.software import SoftwareSecurityModule
    from tests.fixtures import KNOWN_SGC, TEST_VENDING_KEY, known_pan, meter_key

    sm = SoftwareSecurityModule(bytes(range(32)))
    blob = sm.import_key(TEST_VENDING_KEY, sgc=KNOWN_SGC, krn=1, dkga=4)
    rec = KeyRecord(id=1, sgc=KNOWN_SGC, krn=1, key_type="VUDK", dkga=4, ea=7, base_date=2014,
                    table_set="sample", module="software", blob=blob)
    ident = MeterIdentity(known_pan(), 2, 1)
    first = sm.meter_key(rec, ident)
    assert sm.meter_key(rec, ident) is first and first == meter_key(known_pan())
    assert sm.meter_key(rec, replace(ident, ti=2)) == meter_key(known_pan(), ti=2)
    other = sm.import_key(bytes(20), sgc=KNOWN_SGC, krn=1, dkga=4)
    assert sm.meter_key(replace(rec, blob=other), ident) != first
