"""`HotSQL.write_many` (campaign chunks: COPY and UPDATE over a JSON array on PostgreSQL)
stores exactly what the same template stores row by row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from sts.vending.storage.statements import INSERT_AUDIT, UPDATE_METER, _bulk_form
from sts.vending.storage.tables import audit_log, meters
from tests.support.keychange import rollover_setup
from tests.vending.test_campaign_chunks import bulk_meters

ODD = "tab\there, new\nline, back\\slash, quote ' \" , é € 😀, \\N"


def _audit_rows(first: int, at: datetime) -> list[dict[str, Any]]:
    return [{"seq": first + i, "at": at, "actor": f"actor {i} {ODD}", "action": "test",
             "subject": ODD[: 10 + i], "details": '{"a":"' + ODD.replace("\n", "\\n") + '"}',
             "prev_hash": "0" * 64, "hash": f"{i:064d}", "request_id": f"req-{i}" if i else None}
            for i in range(3)]


def _stored_audit(service: Any, seqs: range) -> list[tuple[Any, ...]]:
    with service.db.read() as conn:
        return [tuple(r)[1:] for r in conn.execute(
            select(audit_log).where(audit_log.c.seq.in_(list(seqs))).order_by(audit_log.c.seq))]


def test_inserts_equal_row_by_row(service: Any) -> None:
    hot = service.hot
    naive = datetime(2024, 6, 1, 9, 30, 15, 123456)
    aware = datetime(2024, 6, 1, 11, 30, 15, tzinfo=UTC) + timedelta(hours=2)
    for at in (naive, aware):  # an offset: the rows go the usual way, as the driver binds it
        base = 1000 if at is naive else 2000
        with service.db.begin() as conn:
            cur = hot.cursor(conn)
            hot.write_many(cur, {INSERT_AUDIT: _audit_rows(base, at)})
            hot.execute_many(cur, INSERT_AUDIT, _audit_rows(base + 100, at))
            cur.close()
        assert _stored_audit(service, range(base, base + 3)) == _stored_audit(
            service, range(base + 100, base + 103))
    assert [r[0] for r in _stored_audit(service, range(1000, 1001))] == [naive]


def test_updates_equal_row_by_row(service: Any, clock: Any) -> None:
    rollover_setup(service, clock, meters=1)
    pans = bulk_meters(service, clock, 700, 6)
    hot = service.hot
    with service.db.read() as conn:
        ids = [r.id for r in conn.execute(select(meters.c.id).where(meters.c.pan.in_(pans))
                                          .order_by(meters.c.id))]
        key_id = conn.scalar(select(meters.c.key_id).where(meters.c.id == ids[0]))

    def row(i: int, meter_id: int) -> dict[str, Any]:
        return {"id": meter_id, "last_hash": f"{i % 3:064x}", "key_id": key_id, "ti": 7 + i % 3,
                "ken": 200 + i % 3, "tid_epoch": i % 3, "max_epoch": 5, "last_tid": 12345 + i % 3}

    with service.db.begin() as conn:
        cur = hot.cursor(conn)
        hot.write_many(cur, {UPDATE_METER: [row(i, m) for i, m in enumerate(ids[:3])]})
        hot.execute_many(cur, UPDATE_METER, [row(i, m) for i, m in enumerate(ids[3:])])
        cur.close()
    with service.db.read() as conn:
        got = {r.id: tuple(r)[1:] for r in conn.execute(
            select(meters.c.id, meters.c.last_hash, meters.c.key_id, meters.c.ti, meters.c.ken,
                   meters.c.tid_epoch, meters.c.max_epoch, meters.c.last_tid)
            .where(meters.c.id.in_(ids)))}
    assert [got[m] for m in ids[:3]] == [got[m] for m in ids[3:]]
    assert got[ids[1]][2:] == (8, 201, 1, 5, 12346)


def test_bulk_forms() -> None:
    copy = _bulk_form(INSERT_AUDIT)
    assert copy is not None and not isinstance(copy, str)
    assert copy.sql.startswith("COPY audit_log (seq, at, actor")
    assert copy.stamps == ("at",)
    update = _bulk_form(UPDATE_METER)
    assert isinstance(update, str) and "json_to_recordset" in update
    assert _bulk_form("INSERT INTO audit_log (seq) VALUES (:seq) ON CONFLICT DO NOTHING") is None
    assert _bulk_form("UPDATE meters SET ti = ti + 1 WHERE id = :id") is None
