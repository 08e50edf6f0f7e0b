"""Bulk key change campaigns (e.g. the TID rollover: base date 1993 / KRN 1 to 2014 / KRN 2).

A campaign is a fixed list of meters (one row each).  Running it issues, per meter and in its
own transaction, the key change set and moves the meter to the new key; the item is marked done
in that same transaction, and the transaction's request id is derived from campaign and meter,
so an interrupted run resumes where it stopped and can never issue a meter twice.  Creating a
campaign makes its target key the SGC's current key, so a meter that buys before the campaign
reaches it gets the key change with that sale (and the campaign then skips it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from sts.errors import AlreadyExists, SecurityModuleUnavailable, StsError, UnknownRecord
from sts.vending.issue import KeyChange
from sts.vending.ledger import stored
from sts.vending.models import campaign_items, campaigns, meters, supply_groups, transactions
from sts.vending.models import vending_keys as vk
from sts.vending.service import VendingService, load_key

CSV_FIELDS = ("meter", "status", "receipt_no", "sgc", "krn", "ti", "base_date", "token1",
              "token2", "token3", "token4", "error")


def create(service: VendingService, name: str, *, sgc: str, to_krn: int,
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
        sel = select(meters.c.id).where(meters.c.key_id != to_id)
        sel = sel.where(meters.c.key_id == from_id) if from_id is not None else sel.where(
            meters.c.key_id.in_(select(vk.c.id).where(vk.c.sgc_id == sid)))
        ids = [r.id for r in conn.execute(sel.order_by(meters.c.id))]
        # the target becomes the SGC's current key: meters the campaign has not reached yet
        # get the same key change with their next sale
        conn.execute(update(supply_groups).where(supply_groups.c.id == sid)
                     .values(current_key_id=to_id))
        if ids:
            conn.execute(insert(campaign_items),
                         [{"campaign_id": cid, "meter_id": i, "status": "pending", "error": ""}
                          for i in ids])
    return {"campaign": name, "meters": len(ids), "to_krn": to_krn, "ro": bool(ro)}


def status(service: VendingService, name: str) -> dict[str, Any]:
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


def run(service: VendingService, name: str, *, actor: str = "campaign",
        limit: int | None = None,
        progress: Callable[[int, int], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one record per meter: the ones done before first (from the database), then the
    pending ones as they are issued.  Stops after `limit` new issues when given."""
    db = service.db
    ci = campaign_items.c
    with db.read() as conn:
        cid = _campaign_id(conn, name)
        camp = conn.execute(select(campaigns).where(campaigns.c.id == cid)).one()
        done_rows = conn.execute(
            select(meters.c.pan, ci.status, ci.error, transactions.c.response)
            .join(meters, meters.c.id == ci.meter_id)
            .outerjoin(transactions, transactions.c.seq == ci.txn_seq)
            .where(ci.campaign_id == cid, ci.status != "pending").order_by(ci.meter_id)).all()
        pending = conn.execute(
            select(ci.meter_id, meters.c.pan).join(meters, meters.c.id == ci.meter_id)
            .where(ci.campaign_id == cid, ci.status == "pending").order_by(ci.meter_id)).all()
    total = len(done_rows) + len(pending)
    count = 0
    for r in done_rows:
        count += 1
        yield _record(r.pan, r.status, json.loads(r.response) if r.response else None, r.error)
        if progress:
            progress(count, total)
    issued = 0
    for p in pending:
        if limit is not None and issued >= limit:
            return
        rid = f"campaign:{cid}:{p.meter_id}"
        try:
            with db.begin() as conn:
                m = service.load_meter(conn, p.pan, lock=True)
                state = conn.scalar(select(ci.status).where(ci.campaign_id == cid,
                                                            ci.meter_id == p.meter_id))
                target = load_key(conn, camp.to_key_id)
                if state == "pending" and m.key.record.id == target.record.id:
                    state = "skipped"  # moved by a sale in the meantime
                    conn.execute(update(campaign_items)
                                 .where(ci.campaign_id == cid, ci.meter_id == p.meter_id)
                                 .values(status="skipped"))
                if state != "pending":  # another runner or a sale got here first
                    cur = service.hot.cursor(conn)
                    try:
                        earlier = stored(service.hot, cur, rid)
                    finally:
                        cur.close()
                    rec = _record(p.pan, str(state),
                                  json.loads(earlier.response) if earlier else None)
                else:
                    ti = m.tariff.ti if m.tariff.ti is not None else m.ti
                    kc = KeyChange(target, ti, camp.ro)
                    resp = service.key_change_meter(conn, m, kc, request_id=rid, actor=actor,
                                                    reason=f"campaign {name}")
                    conn.execute(update(campaign_items)
                                 .where(ci.campaign_id == cid, ci.meter_id == p.meter_id)
                                 .values(status="done", txn_seq=int(resp["receipt_no"])))
                    rec = _record(p.pan, "done", resp)
                    issued += 1
        except SecurityModuleUnavailable:
            raise  # an outage stops the run; the meter stays pending for the resumed run
        except StsError as exc:
            with db.begin() as conn:
                conn.execute(update(campaign_items)
                             .where(ci.campaign_id == cid, ci.meter_id == p.meter_id)
                             .values(status="failed", error=exc.message[:300]))
            rec = _record(p.pan, "failed", None, exc.message)
        count += 1
        yield rec
        if progress:
            progress(count, total)


def to_csv_row(rec: dict[str, Any]) -> str:
    row = {k: rec.get(k, "") for k in CSV_FIELDS}
    for i, t in enumerate(rec.get("tokens") or [], 1):
        row[f"token{i}"] = t
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n").writerow(row)
    return buf.getvalue()


def csv_header() -> str:
    return ",".join(CSV_FIELDS) + "\n"
