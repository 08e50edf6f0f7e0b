"""Campaigns in chunks: the same key change as one meter's, resumable after SIGKILL mid-chunk,
and concurrent workers on PostgreSQL that never issue a meter twice (SKIP LOCKED claims)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from sts.vending import audit
from sts.vending.service import KeyChange, load_key
from sts.vending.storage.tables import (
    audit_log,
    campaigns,
    meters,
    supply_groups,
    tariffs,
    tokens,
    transactions,
    vending_keys,
)
from sts.vending.usecases import campaign as camp
from sts.vending.usecases.keychange import after_key_changes
from tests.fixtures import virtual_meter
from tests.support.keychange import SGC, new_key, old_key, pan_for, rollover_setup

ROOT = Path(__file__).resolve().parents[2]


def bulk_meters(service: Any, clock: Any, first: int, count: int) -> list[str]:
    """Register meters on KRN 1 in one insert (registration is not under test here)."""
    pans = [pan_for(i) for i in range(first, first + count)]
    with service.db.begin() as conn:
        sid = conn.scalar(select(supply_groups.c.id).where(supply_groups.c.sgc == SGC))
        kid = conn.scalar(select(vending_keys.c.id).where(vending_keys.c.sgc_id == sid,
                                                         vending_keys.c.krn == 1))
        tid = conn.scalar(select(tariffs.c.id).where(tariffs.c.name == "Flat"))
        conn.execute(insert(meters), [
            {"pan": p, "tariff_id": tid, "sgc_id": sid, "key_id": kid, "ti": 1, "kt": 2,
             "ken": 255, "mfr_code": p[6:8], "service": "electricity", "status": "active",
             "status_reason": "", "last_tid": 0, "tid_epoch": 0, "max_epoch": 0,
             "last_hash": "", "created_at": clock()} for p in pans])
    return pans


def key_change_counts(service: Any) -> dict[str, int]:
    """Key change transactions per meter PAN."""
    with service.db.read() as conn:
        rows = conn.execute(select(meters.c.pan, func.count().label("n"))
                            .join(transactions, transactions.c.meter_id == meters.c.id)
                            .where(transactions.c.kind == "key_change")
                            .group_by(meters.c.pan)).all()
    return {r.pan: int(r.n) for r in rows}


def check_tokens(rec: dict[str, Any]) -> None:
    """The set decodes under the old key and carries the new decoder key (KRN 2)."""
    from sts.engine import decode

    first, second = (decode(t, old_key(rec["meter"])) for t in rec["tokens"])
    assert (first.subclass, second.subclass) == (3, 4) and first.fields["krn"] == 2
    carried = first.fields["key_part"] << 32 | second.fields["key_part"]
    assert carried == int.from_bytes(new_key(rec["meter"]).decoder_key, "big")


def test_chunked_run_is_the_per_meter_key_change(service: Any, clock: Any) -> None:
    demo, pans = rollover_setup(service, clock, meters=3)  # pans[0] goes the per-meter way
    pans += bulk_meters(service, clock, 100, 20)
    # the per-meter use case (as an engineer or a sale issues it), for comparison
    with service.db.begin() as conn:
        m = service.load_meter(conn, pans[0], lock=True)
        target = load_key(conn, int(conn.scalar(select(vending_keys.c.id).where(
            vending_keys.c.krn == 2, vending_keys.c.sgc_id == m.sgc_id))))
        single = service.key_change_meter(conn, m, KeyChange(target, 1, True),
                                          request_id="single:key-change", actor="test",
                                          reason="campaign rollover")
    created = camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    assert created["meters"] == len(pans) - 1
    moved = pans[1]  # moved to the target key after the campaign began: the campaign skips it
    with service.db.begin() as conn:
        conn.execute(update(meters).where(meters.c.pan == moved)
                     .values(key_id=target.record.id))
    recs = list(camp.run(service, "rollover", chunk=7))
    assert [r["meter"] for r in recs] == pans[1:]  # meter order, chunk after chunk
    assert recs[0]["status"] == "skipped" and {r["status"] for r in recs[1:]} == {"done"}
    assert camp.status(service, "rollover") == {"campaign": "rollover", "pending": 0,
                                                "done": len(pans) - 2, "failed": 0,
                                                "skipped": 1}
    with service.db.read() as conn:
        stored = {r.request_id: json.loads(r.response) for r in conn.execute(
            select(transactions.c.request_id, transactions.c.response))}
        rows = conn.execute(select(tokens.c.txn_seq, tokens.c.position, tokens.c.kind,
                                   tokens.c.token_class, tokens.c.subclass, tokens.c.tid_epoch,
                                   tokens.c.key_id, tokens.c.ti, tokens.c.ken)
                            .order_by(tokens.c.txn_seq, tokens.c.position)).all()
        after = {r.pan: (r.key_id, r.ti, r.ken, r.tid_epoch, r.max_epoch, r.last_tid != 0)
                 for r in conn.execute(select(meters))}
        audit_entries = conn.scalar(select(func.count()).select_from(audit_log)
                                    .where(audit_log.c.action == "key_change"))
    shape = {k: v for k, v in single.items() if k not in ("request_id", "receipt_no", "meter",
                                                          "tokens")}
    by_seq: dict[int, list[Any]] = {}
    for r in rows:
        by_seq.setdefault(r.txn_seq, []).append(tuple(r)[1:])
    for rec in recs[1:]:
        check_tokens(rec)
        ans = next(v for v in stored.values() if v["receipt_no"] == rec["receipt_no"])
        assert {k: v for k, v in ans.items()
                if k not in ("request_id", "receipt_no", "meter", "tokens")} == shape
        assert [(t["kind"], t["class"], t["subclass"]) for t in ans["tokens"]] == [
            (t["kind"], t["class"], t["subclass"]) for t in single["tokens"]]
        assert by_seq[int(rec["receipt_no"])] == by_seq[int(single["receipt_no"])]
        assert after[rec["meter"]] == after[pans[0]]  # same key, TI, KEN, epochs
        meter = virtual_meter(rec["meter"], clock, krn=1, base_date=1993, sgc=SGC)
        for t in rec["tokens"]:
            meter.enter(t)
        assert meter.state.memory.key.krn == 2
    assert audit_entries == len(pans) - 1  # one per key change, as for one meter
    assert key_change_counts(service) == {p: 1 for p in pans if p != moved}
    csv_text = camp.csv_header() + "".join(camp.to_csv_row(r) for r in recs)
    assert csv_text.count("\n") == len(recs) + 1 and recs[-1]["tokens"][1] in csv_text
    assert list(camp.records(service, "rollover")) == recs  # export: the same records
    assert list(camp.run(service, "rollover")) == recs  # a re-run issues nothing
    assert [t["kind"] for t in demo.buy(pans[5], "10").json()["tokens"]] == ["STD"]
    assert audit.verify(service.db).ok


KILLER = """
import os, signal, sys
sys.path.insert(0, {src!r})
from sts.vending.usecases import campaign as camp
from sts.vending.config import Settings, open_service

chunks = 0
real = camp.after_key_changes

def hook(svc, conn, issued):
    global chunks
    real(svc, conn, issued)
    chunks += 1
    if chunks == 3:  # inside the third chunk's transaction, its rows written, not committed
        os.kill(os.getpid(), signal.SIGKILL)

camp.after_key_changes = hook
svc = open_service(Settings(db_url={db!r}, kek_file={kek!r}))
camp.work(svc, "rollover", actor="killed", chunk=10)
"""


@pytest.mark.slow
def test_resume_after_sigkill_issues_nothing_twice(service: Any, settings: Any,
                                                   clock: Any) -> None:
    _demo, pans = rollover_setup(service, clock, meters=1)
    pans += bulk_meters(service, clock, 200, 59)
    camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    script = KILLER.format(src=str(ROOT / "src"), db=settings.db_url, kek=settings.kek_file)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    st = camp.status(service, "rollover")
    assert (st["done"], st["pending"]) == (20, 40)  # two chunks committed, the third not
    assert len(key_change_counts(service)) == 20
    recs = list(camp.run(service, "rollover", chunk=10))  # the resumed run
    assert [r["meter"] for r in recs] == pans and {r["status"] for r in recs} == {"done"}
    assert key_change_counts(service) == {p: 1 for p in pans}
    for rec in recs[::7]:
        check_tokens(rec)
    with service.db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(tokens)) == 2 * len(pans)
    assert audit.verify(service.db).ok


@pytest.mark.postgres
def test_concurrent_workers_claim_disjoint_chunks(settings: Any, clock: Any,
                                                  monkeypatch: Any) -> None:
    from sts.vending.config import open_service

    if settings.db_url.endswith(".sqlite3"):
        pytest.skip("PostgreSQL: SQLite serialises writers")
    service = open_service(settings, clock=clock, run_migrations=True)
    other = open_service(settings, clock=clock)
    try:
        _demo, pans = rollover_setup(service, clock, meters=1)
        pans += bulk_meters(service, clock, 300, 99)
        camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
        holding = threading.Event()
        release = threading.Event()
        real = after_key_changes  # what campaign calls

        def hook(svc: Any, conn: Any, issued: Any) -> None:
            real(svc, conn, issued)
            if threading.current_thread().name == "slow" and not holding.is_set():
                holding.set()  # first chunk claimed and written, transaction still open
                assert release.wait(60)

        monkeypatch.setattr(camp, "after_key_changes", hook)
        counts: dict[str, int] = {}

        def slow() -> None:
            counts["slow"] = camp.work(service, "rollover", actor="slow", chunk=10)

        t = threading.Thread(target=slow, name="slow")
        t.start()
        assert holding.wait(60)
        # the second worker skips the locked chunk and does everything else
        counts["fast"] = camp.work(other, "rollover", actor="fast", chunk=10)
        release.set()
        t.join(60)
        assert counts == {"slow": 10, "fast": 90}
        assert key_change_counts(service) == {p: 1 for p in pans}
        recs = list(camp.records(service, "rollover"))
        assert len(recs) == 100 and {r["status"] for r in recs} == {"done"}
        check_tokens(recs[0])
        check_tokens(recs[-1])
        assert audit.verify(service.db).ok
    finally:
        other.db.dispose()
        service.db.dispose()


@pytest.mark.slow
def test_cli_workers_and_export(settings: Any, service: Any, clock: Any, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from sts.cli.vending import campaign

    _demo, pans = rollover_setup(service, clock, meters=1)
    pans += bulk_meters(service, clock, 400, 29)
    base = ["--db", settings.db_url, "--kek-file", settings.kek_file]
    r = CliRunner().invoke(campaign, [*base, "create", "rollover", "--sgc", SGC, "--to-krn", "2",
                                      "--from-krn", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = tmp_path / "run.jsonl"
    r = CliRunner().invoke(campaign, [*base, "run", "rollover", "--workers", "2", "--chunk", "4",
                                      "--out", str(out), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["done"] == 30
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["meter"] for x in recs] == pans and {x["status"] for x in recs} == {"done"}
    assert key_change_counts(service) == {p: 1 for p in pans}
    csv_out = tmp_path / "export.csv"
    r = CliRunner().invoke(campaign, [*base, "export", "rollover", "--format", "csv", "--out",
                                      str(csv_out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = csv_out.read_text().splitlines()
    assert len(lines) == 31 and lines[0].startswith("meter,status")
    assert recs[3]["tokens"][0] in lines[4]


def test_ami_meters_get_their_delivery_jobs_with_the_chunk(service: Any, clock: Any) -> None:
    from sts.vending.storage.tables_delivery import deliveries

    _demo, pans = rollover_setup(service, clock, meters=1)
    pans += bulk_meters(service, clock, 500, 11)
    ami = set(pans[::3])
    with service.db.begin() as conn:
        conn.execute(update(meters).where(meters.c.pan.in_(ami)).values(ami=True))
    camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    recs = list(camp.run(service, "rollover", chunk=5))
    assert {r["status"] for r in recs} == {"done"}
    with service.db.read() as conn:
        jobs = conn.execute(select(meters.c.pan, deliveries.c.channel, deliveries.c.status,
                                   deliveries.c.txn_seq, deliveries.c.request_id)
                            .join(meters, meters.c.id == deliveries.c.meter_id)).all()
    seqs = {r["meter"]: int(r["receipt_no"]) for r in recs}
    assert sorted(j.pan for j in jobs) == sorted(ami)  # one AMI job per AMI meter, no other
    for j in jobs:
        assert (j.channel, j.status, j.txn_seq) == ("ami", "pending", seqs[j.pan])
        assert j.request_id.startswith("~campaign:")


def test_a_claim_past_pending_items_still_finds_them(service: Any, clock: Any) -> None:
    """A worker's claims start past its last chunk; pending items behind it (another
    worker's rolled-back chunk) are still found before the worker reports nothing left."""
    _demo, pans = rollover_setup(service, clock, meters=1)
    pans += bulk_meters(service, clock, 600, 14)
    camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    with service.db.read() as conn:
        cid = camp._campaign_id(conn, "rollover")
        row = conn.execute(select(campaigns).where(campaigns.c.id == cid)).one()
    cursor = camp._Cursor()
    cursor.after = 10**9  # as if this worker had finished chunks past every pending item
    done = camp._run_chunk(service, cid, row, "rollover", "test", 10, cursor)
    assert done is not None and [r["meter"] for r in done] == pans[:10]
    assert camp.status(service, "rollover")["pending"] == 5
    assert len(camp._run_chunk(service, cid, row, "rollover", "test", 10, cursor) or []) == 5
    assert camp._run_chunk(service, cid, row, "rollover", "test", 10, cursor) is None
    assert key_change_counts(service) == {p: 1 for p in pans}
