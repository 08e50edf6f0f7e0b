"""Bulk key change campaigns (e.g. the TID rollover: base date 1993 / KRN 1 to 2014 / KRN 2).

A campaign is a fixed list of meters (one row each).  A run claims the pending meters a chunk
at a time (one transaction per chunk), issues each meter's key change set through the security
module, and stores the transactions, tokens, meter moves, audit entries and the items' new
status in bulk in that same transaction: an interrupted run (even SIGKILL) leaves its chunk
pending, so a resumed run carries on where it stopped and never issues a meter twice (the
transaction's request id, derived from campaign and meter, is unique as a backstop).  Workers
on several hosts share a campaign on PostgreSQL: the claim is `FOR UPDATE SKIP LOCKED`.  What
a key change issues and stores is `sts.vending.usecases.keychange`'s, the same as one meter's
key change.  Creating a
campaign makes its target key the SGC's current key, so a meter that buys before the campaign
reaches it gets the key change with that sale (and the campaign then skips it).
"""

from __future__ import annotations

import csv
import gc
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, insert, literal, select, update

from sts.errors import (
    AlreadyExists,
    InputError,
    StsError,
    UnknownRecord,
)
from sts.vending import audit
from sts.vending.context import ServiceContext, load_key
from sts.vending.issue import IssueResult, KeyChange
from sts.vending.ledger import derived_id
from sts.vending.meters import MeterView, meter_views, read_key
from sts.vending.storage.statements import MARK_ITEM
from sts.vending.storage.tables import campaign_items, campaigns, meters, supply_groups
from sts.vending.storage.tables import vending_keys as vk
from sts.vending.usecases.keychange import (
    after_key_changes,
    audit_details,
    issue_key_changes,
    key_change_rows,
)

# meters per transaction: per chunk a claim, a few bulk statements, the audit head's lock and
# a commit; 5,000 ran 13-18 % faster than 2,000 at 100,000 meters (10,000 no faster), and
# holds SQLite's write lock under a second
DEFAULT_CHUNK = 5000

CSV_FIELDS = ("meter", "status", "receipt_no", "sgc", "krn", "ti", "base_date", "token1",
              "token2", "token3", "token4", "error")


def create(service: ServiceContext, name: str, *, sgc: str, to_krn: int,
           from_krn: int | None = None, ro: bool | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    db = service.db
    with db.begin() as conn:
        sid = conn.scalar(select(supply_groups.c.id).where(supply_groups.c.sgc == sgc))
        if sid is None:
            raise UnknownRecord(f"SGC {sgc} does not exist", field="sgc")
        to_id = conn.scalar(select(vk.c.id).where(vk.c.sgc_id == sid, vk.c.krn == to_krn))
        if to_id is None:
            raise UnknownRecord(f"SGC {sgc} has no key KRN {to_krn}", field="to_krn")
        from_id = None
        if from_krn is not None:
            from_id = conn.scalar(select(vk.c.id).where(vk.c.sgc_id == sid, vk.c.krn == from_krn))
            if from_id is None:
                raise UnknownRecord(f"SGC {sgc} has no key KRN {from_krn}", field="from_krn")
        if conn.scalar(select(campaigns.c.id).where(campaigns.c.name == name)) is not None:
            raise AlreadyExists(f"campaign {name} already exists", field="name")
        to_key = load_key(conn, int(to_id))
        if ro is None and from_id is not None:
            ro = load_key(conn, int(from_id)).record.base_date != to_key.record.base_date
        cid = conn.execute(insert(campaigns).values(
            name=name, sgc_id=sid, from_key_id=from_id, to_key_id=to_id, ro=bool(ro),
            created_at=now or service.now()).returning(campaigns.c.id)).scalar_one()
        sel = select(literal(cid), meters.c.id, literal("pending"), literal("")).where(
            meters.c.key_id != to_id)
        sel = sel.where(meters.c.key_id == from_id) if from_id is not None else sel.where(
            meters.c.key_id.in_(select(vk.c.id).where(vk.c.sgc_id == sid)))
        # one INSERT ... SELECT in the database: a million items never pass through here
        conn.execute(insert(campaign_items).from_select(
            ["campaign_id", "meter_id", "status", "error"], sel))
        count = conn.scalar(select(func.count()).select_from(campaign_items)
                            .where(campaign_items.c.campaign_id == cid))
        # the target becomes the SGC's current key: meters the campaign has not reached yet
        # get the same key change with their next sale
        conn.execute(update(supply_groups).where(supply_groups.c.id == sid)
                     .values(current_key_id=to_id))
    if not db.is_sqlite:
        # fresh statistics, so each claim walks the items' index from its cursor (stale ones
        # can make it read every item past the cursor and sort them, chunk after chunk)
        with db.begin() as conn:
            conn.exec_driver_sql("ANALYZE campaign_items")
    return {"campaign": name, "meters": int(count or 0), "to_krn": to_krn, "ro": bool(ro)}


def status(service: ServiceContext, name: str) -> dict[str, Any]:
    with service.db.read() as conn:
        cid = _campaign_id(conn, name)
        rows = conn.execute(select(campaign_items.c.status, func.count().label("n"))
                            .where(campaign_items.c.campaign_id == cid)
                            .group_by(campaign_items.c.status))
        counts = {r.status: int(r.n) for r in rows}
    return {"campaign": name, **{k: counts.get(k, 0) for k in ("pending", "done", "failed", "skipped")}}


def _campaign_id(conn: Any, name: str) -> int:
    cid = conn.scalar(select(campaigns.c.id).where(campaigns.c.name == name))
    if cid is None:
        raise UnknownRecord(f"no campaign {name}", field="name")
    return int(cid)


def _record(pan: str, state: str, response: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"meter": pan, "status": state, "error": error}
    if response is not None:
        to = response["key_change"]["to"]
        out.update(receipt_no=response["receipt_no"], sgc=to["sgc"], krn=to["krn"], ti=to["ti"],
                   base_date=to["base_date"], rollover=response["key_change"]["rollover"],
                   tokens=[t["token"] for t in response["tokens"]])
    return out


def _answer(text: str) -> dict[str, Any]:
    """A stored key change answer.  orjson reads it as json does (its integers are small:
    orjson would read one past 64 bits as a float); json reads anything orjson refuses."""
    try:
        out: dict[str, Any] = orjson.loads(text)
    except orjson.JSONDecodeError:
        out = json.loads(text)
    return out


# a page of items straight off the items' key, then each one's meter and answer by its key
# (whatever the statistics say: stale ones after a run planned a scan of every item or meter
# for each page); a page small enough that PostgreSQL does not compile it (JIT)
_RECORDS = ("SELECT ci.meter_id, (SELECT m.pan FROM meters m WHERE m.id = ci.meter_id), "
            "ci.status, ci.error, (SELECT t.response FROM transactions t WHERE t.seq = ci.txn_seq) "
            "FROM (SELECT meter_id, status, error, txn_seq FROM campaign_items "
            "WHERE campaign_id = :cid AND meter_id > :after ORDER BY meter_id LIMIT :n) AS ci "
            "ORDER BY ci.meter_id")


def records(service: ServiceContext, name: str, *, page: int = 2000) -> Iterator[dict[str, Any]]:
    """The record of every meter the campaign has finished (done, failed or skipped), in meter
    order, read a page of items at a time (`sts campaign export`, and the start of `run`)."""
    hot = service.hot
    after = -1
    with service.db.read() as conn:
        cid = _campaign_id(conn, name)
    while True:
        with service.db.read() as conn:
            cur = hot.cursor(conn)
            try:
                cur.execute(hot.sql(_RECORDS), {"cid": cid, "after": after, "n": page})
                rows = cur.fetchall()
            finally:
                cur.close()
        for _meter_id, pan, state, error, response in rows:
            if state != "pending":
                yield _record(pan, state, _answer(response) if response else None, error)
        if len(rows) < page:
            return
        after = rows[-1][0]


def run(service: ServiceContext, name: str, *, actor: str = "campaign",
        limit: int | None = None, chunk: int = DEFAULT_CHUNK,
        progress: Callable[[int, int], None] | None = None,
        stopping: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Yield one record per meter: the ones finished before first (from the database), then
    the ones this run issues, a chunk at a time as each chunk commits.  Stops after `limit`
    new issues when given.  Several runs (processes, hosts) may work on one campaign at once:
    each claims its own chunks; a run yields only what it issued (`records` has them all).
    When `stopping()` turns true (SIGTERM) no further chunk is claimed: the run ends after the
    chunk it is issuing commits, holding no claim."""
    if chunk < 1:
        raise InputError("chunk must be at least 1 meter", field="chunk")
    with service.db.read() as conn:
        cid = _campaign_id(conn, name)
        camp = conn.execute(select(campaigns).where(campaigns.c.id == cid)).one()
        total = int(conn.scalar(select(func.count()).select_from(campaign_items)
                                .where(campaign_items.c.campaign_id == cid)) or 0)
    count = 0
    for rec in records(service, name):
        count += 1
        yield rec
        if progress:
            progress(count, total)
    issued = 0
    cursor = _Cursor()
    while (limit is None or issued < limit) and not stopping():
        size = chunk if limit is None else min(chunk, limit - issued)
        done = _run_chunk(service, cid, camp, name, actor, size, cursor)
        if done is None:
            return
        for rec in done:
            count += 1
            issued += rec["status"] == "done"
            yield rec
        if progress:
            progress(count, total)


def work(service: ServiceContext, name: str, *, actor: str = "campaign",
         chunk: int = DEFAULT_CHUNK, progress: Callable[[int], None] | None = None,
         stopping: Callable[[], bool] = lambda: False) -> int:
    """Issue chunks until none is left to claim or `stopping()` (one campaign worker; run
    several processes or hosts against one PostgreSQL to share a campaign); the meters this
    worker finished."""
    if chunk < 1:
        raise InputError("chunk must be at least 1 meter", field="chunk")
    with service.db.read() as conn:
        cid = _campaign_id(conn, name)
        camp = conn.execute(select(campaigns).where(campaigns.c.id == cid)).one()
    n = 0
    cursor = _Cursor()
    while not stopping() and \
            (done := _run_chunk(service, cid, camp, name, actor, chunk, cursor)) is not None:
        n += len(done)
        if progress:
            progress(n)
    return n


# SQLite's page cache for a campaign worker's connection (per connection; the default is
# 2 MB): a chunk touches the transactions', tokens' and items' indexes across a growing file,
# and re-reading their pages from the OS cost a fifth of the wall time at 100,000 meters
_SQLITE_CACHE = "PRAGMA cache_size = -131072"  # KiB: 128 MiB
_CLAIM = ("SELECT meter_id FROM campaign_items WHERE campaign_id = :cid AND status = 'pending' "
          "AND meter_id > :after ORDER BY meter_id LIMIT :n")
# the sequence looked up once per statement, not once per number
_SEQS_PG = ("SELECT nextval(s.id) FROM (SELECT pg_get_serial_sequence('transactions', 'seq')"
            "::regclass AS id) AS s, generate_series(1, :n)")
_SEQ_SQLITE = "SELECT coalesce(max(seq), 0) FROM transactions"


def _seqs(service: ServiceContext, cur: Any, n: int) -> list[int]:
    """`n` receipt numbers (SQLite: the write lock is held, so max + 1 onwards is free)."""
    hot = service.hot
    if n == 0:
        return []
    if hot.is_sqlite:
        cur.execute(hot.sql(_SEQ_SQLITE), {})
        top = int(cur.fetchone()[0])
        return list(range(top + 1, top + 1 + n))
    cur.execute(hot.sql(_SEQS_PG), {"n": n})
    return [int(r[0]) for r in cur.fetchall()]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a chunk is made: its tens of thousands of fresh
    objects would otherwise set off full collections over everything the process holds
    (a third of a chunk's time); reference counting still frees them, and collection
    resumes between chunks."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Cursor:
    """Where a worker's next claim starts: past its last chunk, so a claim does not walk the
    items already finished (a million, late in a large campaign).  Pending items behind it
    (a chunk another worker rolled back) are found by one claim from the start before the
    worker reports nothing left."""

    def __init__(self) -> None:
        self.after = -1


def _run_chunk(service: ServiceContext, cid: int, camp: Any, name: str, actor: str,
               size: int, cursor: _Cursor) -> list[dict[str, Any]] | None:
    """Claim up to `size` pending meters, issue their key change sets and store everything
    (transactions, tokens, meters, items, audit) in one transaction; None when nothing is
    left to claim.  The claim locks the items (PostgreSQL: SKIP LOCKED, so concurrent workers
    take disjoint chunks; SQLite: the write lock), and the items are marked in the same
    transaction, so a crash leaves the chunk pending and a meter is never issued twice."""
    with _gc_paused():
        done = _chunk(service, cid, camp, name, actor, size, cursor.after)
        if done is None and cursor.after >= 0:
            cursor.after = -1
            done = _chunk(service, cid, camp, name, actor, size, -1)
    if done is not None:
        cursor.after = done[0]
        return done[1]
    return None


def _chunk(service: ServiceContext, cid: int, camp: Any, name: str, actor: str, size: int,
           after: int) -> tuple[int, list[dict[str, Any]]] | None:
    """One chunk from the first pending meter past `after`: (its last meter id, records)."""
    hot = service.hot
    reason = f"campaign {name}"
    with service.db.begin() as conn:
        cur = hot.cursor(conn)
        try:
            if hot.is_sqlite:
                cur.execute(_SQLITE_CACHE)
            claim = hot.sql(_CLAIM + ("" if hot.is_sqlite else " FOR UPDATE SKIP LOCKED"))
            cur.execute(claim, {"cid": cid, "n": size, "after": after})
            ids = [int(r[0]) for r in cur.fetchall()]
            if not ids:
                return None
            rows = hot.meters_by_id.all(cur, {"ids": hot.ids_param(ids), "vendor_id": None})
            target = read_key(hot, cur, camp.to_key_id)
            now = service.now()
            marks: dict[int, dict[str, Any]] = {
                i: {"cid": cid, "meter_id": i, "status": "failed", "txn_seq": None,
                    "error": "the meter is no longer registered"} for i in ids}
            out: dict[int, dict[str, Any]] = {}
            made: list[tuple[MeterView, KeyChange, IssueResult, str]] = []
            todo: list[tuple[MeterView, KeyChange]] = []
            changes: dict[int, KeyChange] = {}
            for m in meter_views(rows, hot):
                if m.key.record.id == target.record.id:  # moved by a sale in the meantime
                    marks[m.id].update(status="skipped", error="")
                    out[m.id] = _record(m.pan, "skipped", None)
                    continue
                ti = m.tariff.ti if m.tariff.ti is not None else m.ti
                kc = changes.get(ti)
                if kc is None:  # one (immutable) KeyChange per TI: a chunk shares them
                    kc = changes[ti] = KeyChange(target, ti, bool(camp.ro))
                todo.append((m, kc))
            # an outage (SecurityModuleUnavailable) stops the run; the chunk stays pending
            for (m, kc), res in zip(todo, issue_key_changes(service, todo, now), strict=True):
                if isinstance(res, StsError):
                    marks[m.id].update(error=res.message[:300])
                    out[m.id] = _record(m.pan, "failed", None, res.message)
                    continue
                # outside the clients' id grammar: a client's id can never take a meter's place
                made.append((m, kc, res, derived_id("campaign", f"{cid}:{m.id}")))
            writes: dict[str, list[dict[str, Any]]] = {}
            issued: list[tuple[MeterView, dict[str, Any]]] = []
            entries: list[tuple[str, dict[str, Any]]] = []
            for (m, kc, res, rid), seq in zip(made, _seqs(service, cur, len(made)), strict=True):
                resp, w = key_change_rows(service, m, kc, res, seq=seq, request_id=rid,
                                          reason=reason, now=now)
                for template, params in w:
                    writes.setdefault(template, []).append(params)
                marks[m.id].update(status="done", txn_seq=seq, error="")
                out[m.id] = _record(m.pan, "done", resp)
                issued.append((m, resp))
                entries.append((m.pan, audit_details(rid, kc)))
            writes[MARK_ITEM] = list(marks.values())
            hot.write_many(cur, writes)
        finally:
            cur.close()
        after_key_changes(service, conn, issued)
        # last: the audit head is one row every writer locks until its commit
        audit.append_many(service.db, conn, at=now, actor=actor, action="key_change",
                          entries=entries)
    for i in ids:
        if i not in out:
            out[i] = {"meter": "", "status": "failed", "error": marks[i]["error"]}
    return max(ids), [out[i] for i in ids]


def to_csv_row(rec: dict[str, Any]) -> str:
    row = {k: rec.get(k, "") for k in CSV_FIELDS}
    for i, t in enumerate(rec.get("tokens") or [], 1):
        row[f"token{i}"] = t
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n").writerow(row)
    return buf.getvalue()


def csv_header() -> str:
    return ",".join(CSV_FIELDS) + "\n"
