"""The delivery outbox: jobs written in the sale's own transaction, and every state change.

The jobs of a sale, an engineering issue or a key change are written with that transaction's
own writes (`job_writes`, run by the use case through `sts.vending.storage.statements`), so a job exists
exactly when the tokens do: a rolled-back sale leaves no job, a committed one always has its
jobs.  The dispatcher takes due jobs (`claim`), hands them to a carrier and records the
outcome (`finish_*`); a meter's answer lands in `sts.delivery.answers`.

Lifecycle per job: pending -> sent (the carrier holds it: MQTT broker acknowledged) ->
delivered (the last hop we can observe: SMTP server or SMS gateway accepted it, or the meter
acknowledged an incomplete set) -> accepted | rejected (the meter's answer), or failed after
its retries with the last error.  Updates are conditional on the status they leave, so a
fast meter's answer is never overwritten by the dispatcher's slower "sent".  The meters'
answers are applied in `sts.delivery.answers`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from sts.errors import InputError, ReversalNotAllowed, UnknownRecord
from sts.vending import audit
from sts.vending.i18n import N_
from sts.vending.meters import meter_pan
from sts.vending.storage.database import Database
from sts.vending.storage.tables import meters, transactions
from sts.vending.storage.tables_delivery import deliveries, delivery_attempts

CHANNELS = ("sms", "email", "ami")
STATUSES = ("pending", "sent", "delivered", "accepted", "rejected", "failed")
TERMINAL = frozenset({"accepted", "rejected", "failed"})
MAX_CHANNELS = 6
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_LANG = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")


@dataclass(frozen=True)
class ChannelRequest:
    channel: str
    to: str = ""
    lang: str = ""


def parse_deliver(value: Any, field: str = "deliver") -> list[ChannelRequest]:
    """The `deliver` list of a request body, checked; identical entries are folded."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(N_("{where} must be a list of {{channel, to?}} objects"), field=field,
                         where=field)
    if len(value) > MAX_CHANNELS:
        raise InputError(N_("{where} may name at most {n} channels"), field=field,
                         where=field, n=MAX_CHANNELS)
    out: list[ChannelRequest] = []
    for i, item in enumerate(value):
        where = f"{field}.{i}"
        if not isinstance(item, dict):
            raise InputError(N_("{where} must be an object"), field=where, where=where)
        unknown = set(item) - {"channel", "to", "lang"}
        if unknown:
            raise InputError(N_("{where} has unknown field {name}"), field=where,
                             where=where, name=repr(sorted(unknown)[0]))
        req = parse_channel(item.get("channel"), item.get("to"), item.get("lang"), where)
        if req not in out:
            out.append(req)
    return out


def parse_channel(channel: Any, to: Any, lang: Any, where: str = "deliver") -> ChannelRequest:
    if channel not in CHANNELS:
        raise InputError(N_("{where} must be one of {channels}"), field=f"{where}.channel",
                         where=f"{where}.channel", channels=", ".join(CHANNELS))
    if lang is not None and (not isinstance(lang, str) or not _LANG.match(lang)):
        raise InputError(N_("{where} must be a language code such as en or af-ZA"),
                         field=f"{where}.lang", where=f"{where}.lang")
    if channel == "ami":
        if to is not None:
            raise InputError(N_("{where} is not used for ami (the meter is the addressee)"),
                             field=f"{where}.to", where=f"{where}.to")
        return ChannelRequest("ami", "", lang or "")
    if not isinstance(to, str):
        raise InputError(N_("{where} is required for {channel}"), field=f"{where}.to",
                         where=f"{where}.to", channel=channel)
    to = to.strip()
    if channel == "sms":
        to = to.replace(" ", "").replace("-", "")
        if not _PHONE.match(to):
            raise InputError(N_("{where} must be an international number: + and 7-15 digits"),
                             field=f"{where}.to", where=f"{where}.to")
    elif len(to) > 254 or not _EMAIL.match(to):
        raise InputError(N_("{where} must be an e-mail address"), field=f"{where}.to",
                         where=f"{where}.to")
    return ChannelRequest(channel, to, lang or "")


# --- the hook: jobs written with the sale's own writes -------------------------------------------

# Run by the use cases (sale, engineering, key change) with the transaction's other writes
# (`sts.vending.storage.statements.HotSQL.write`: on PostgreSQL in the same statement), so a job exists
# exactly when the tokens do: a rolled-back sale leaves no job, a committed one has its jobs.
INSERT_JOB = """
INSERT INTO deliveries (txn_seq, request_id, meter_id, channel, recipient, lang, status, reason,
    attempts, next_at, actor, created_at, updated_at)
VALUES (:txn_seq, :request_id, :meter_id, :channel, :recipient, :lang, 'pending', '', 0, :now,
    '', :now, :now)
"""


def channels_for(wanted: Sequence[ChannelRequest], *, ami: bool) -> list[ChannelRequest]:
    """The channels a transaction is delivered to: those asked for (`parse_deliver`), and
    `ami` first for an AMI-connected meter.  Asking `ami` for another meter is InputError."""
    for i, w in enumerate(wanted):
        if w.channel == "ami" and not ami:
            raise InputError("the meter is not AMI-connected, so ami delivery is not possible",
                             field=f"deliver.{i}.channel")
    out = list(wanted)
    if ami and not any(w.channel == "ami" for w in out):
        out.insert(0, ChannelRequest("ami"))
    return out


def job_writes(request_id: str, *, txn_seq: int, meter_id: int, ami: bool,
               wanted: Sequence[ChannelRequest], now: Any) -> list[tuple[str, dict[str, Any]]]:
    """The writes (`INSERT_JOB`, parameters) of a transaction's delivery jobs; none for a
    meter without AMI when no channel was asked.  `now` is the UTC time as the backend binds
    it (`HotSQL.ts_in`)."""
    return [(INSERT_JOB, {"txn_seq": txn_seq, "request_id": request_id, "meter_id": meter_id,
                          "channel": w.channel, "recipient": w.to, "lang": w.lang, "now": now})
            for w in channels_for(wanted, ami=ami)]


# --- reading ----------------------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    """A stored time (naive UTC) as shown: with its offset."""
    return value.replace(tzinfo=UTC).isoformat() if value is not None else None


def public(row: Any) -> dict[str, Any]:
    """One job as GET /v1/purchases/{id} and the CLI show it."""
    g = row._mapping
    out: dict[str, Any] = {"id": g["id"], "channel": g["channel"]}
    if g["recipient"]:
        out["to"] = g["recipient"]
    out["status"] = g["status"]
    if g["meter_result"]:
        out["meter_result"] = json.loads(g["meter_result"])
    if g["reason"]:
        out["reason"] = g["reason"]
    out["attempts"] = g["attempts"]
    out["created_at"] = _iso(g["created_at"])
    out["updated_at"] = _iso(g["updated_at"])
    for name in ("sent_at", "delivered_at", "done_at"):
        if g[name] is not None:
            out[name] = _iso(g[name])
    if g["resend_of"] is not None:
        out["resend_of"] = g["resend_of"]
    if "pan" in g:
        out["meter"] = g["pan"]
        out["request_id"] = g["request_id"]
    return out


_COLS = [deliveries.c.id, deliveries.c.channel, deliveries.c.recipient, deliveries.c.status,
         deliveries.c.meter_result, deliveries.c.reason, deliveries.c.attempts,
         deliveries.c.created_at, deliveries.c.updated_at, deliveries.c.sent_at,
         deliveries.c.delivered_at, deliveries.c.done_at, deliveries.c.resend_of]


def for_request(conn: Connection, request_id: str) -> list[dict[str, Any]]:
    """The delivery of one purchase (or engineering issue), in the order it was asked."""
    rows = conn.execute(select(*_COLS).where(deliveries.c.request_id == request_id)
                        .order_by(deliveries.c.id))
    return [public(r) for r in rows]


def list_deliveries(conn: Connection, *, status: str | None = None, channel: str | None = None,
                    meter: str | None = None, request_id: str | None = None,
                    vendor_id: int | None = None, after_id: int = 0, limit: int = 100,
                    newest_first: bool = False) -> list[dict[str, Any]]:
    """Jobs for operators (`GET /v1/deliveries`, `sts deliver list`), oldest first (pages
    by `after_id`); `newest_first` for a report of the latest (`sts.web.reports`)."""
    if status is not None and status not in STATUSES:
        raise InputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    if channel is not None and channel not in CHANNELS:
        raise InputError(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if not 1 <= limit <= 1000:
        raise InputError("limit must be 1..1000", field="limit")
    d = deliveries.c
    stmt = (select(*_COLS, d.request_id, meters.c.pan)
            .join(meters, meters.c.id == d.meter_id).where(d.id > after_id))
    if status is not None:
        stmt = stmt.where(d.status == status)
    if channel is not None:
        stmt = stmt.where(d.channel == channel)
    if meter is not None:
        stmt = stmt.where(meters.c.pan == meter_pan(meter))
    if request_id is not None:
        stmt = stmt.where(d.request_id == request_id)
    if vendor_id is not None:
        stmt = stmt.join(transactions, transactions.c.seq == d.txn_seq).where(
            transactions.c.vendor_id == vendor_id)
    order = d.id.desc() if newest_first else d.id
    return [public(r) for r in conn.execute(stmt.order_by(order).limit(limit))]


def by_ids(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    """The jobs of `ids` in that order, as operators see them (a page of a list)."""
    rows = conn.execute(select(*_COLS, deliveries.c.request_id, meters.c.pan)
                        .join(meters, meters.c.id == deliveries.c.meter_id)
                        .where(deliveries.c.id.in_(ids))).all()
    by_id = {r.id: public(r) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


# --- resend -------------------------------------------------------------------------------------

def resend(db: Database, conn: Connection, request_id: str, channel: Any, to: Any, lang: Any,
           *, actor: str, vendor_id: int | None, now: datetime) -> dict[str, Any]:
    """A new job for the same tokens to a channel (the "I lost my SMS" case), audited.
    `vendor_id` limits the caller to one vendor's sales (the access policy's scope).  Without
    `to`, the channel's last recipient is used."""
    t = transactions.c
    txn = conn.execute(select(t.seq, t.kind, t.status, t.vendor_id, t.meter_id, meters.c.pan,
                              meters.c.ami)
                       .join(meters, meters.c.id == t.meter_id)
                       .where(t.request_id == request_id)).first()
    if txn is None or txn.kind == "reversal" or (
            vendor_id is not None and txn.vendor_id != vendor_id):
        raise UnknownRecord(f"no purchase {request_id}", field="purchase_id")
    if txn.status != "completed":
        raise ReversalNotAllowed("the purchase is reversed: its tokens are cancelled",
                                 field="purchase_id")
    d = deliveries.c
    previous = conn.execute(select(d.id, d.recipient, d.lang)
                            .where(d.request_id == request_id, d.channel == channel)
                            .order_by(d.id.desc()).limit(1)).first()
    if to is None and previous is not None and channel != "ami":
        to = previous.recipient
    if lang is None and previous is not None and previous.lang:
        lang = previous.lang
    req = parse_channel(channel, to, lang, "deliver")
    if req.channel == "ami" and not txn.ami:
        raise InputError("the meter is not AMI-connected, so ami delivery is not possible",
                         field="deliver.channel")
    new_id = conn.execute(insert(deliveries).values(
        txn_seq=txn.seq, request_id=request_id, meter_id=txn.meter_id, channel=req.channel,
        recipient=req.to, lang=req.lang, status="pending", reason="", attempts=0, next_at=now,
        resend_of=previous.id if previous is not None else None, actor=actor, created_at=now,
        updated_at=now).returning(deliveries.c.id)).scalar_one()
    audit.append(db, conn, at=now.replace(microsecond=0), actor=actor, action="delivery.resend",
                 subject=request_id, details={"channel": req.channel, "to": req.to,
                                              "delivery": new_id, "meter": txn.pan})
    row = conn.execute(select(*_COLS).where(deliveries.c.id == new_id)).one()
    return public(row)


# --- the dispatcher's side ------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """A claimed job with what a carrier needs to build its message."""

    id: int
    request_id: str
    channel: str
    recipient: str
    lang: str
    status: str
    attempts: int
    pan: str
    txn_kind: str
    response: dict[str, Any]


def any_due(conn: Connection, now: datetime) -> bool:
    """A cheap read (no write lock, no row locks) before claiming: is anything due?"""
    d = deliveries.c
    return conn.execute(select(d.id).where(d.status.in_(("pending", "sent")), d.next_at <= now)
                        .limit(1)).first() is not None


def claim(db: Database, conn: Connection, now: datetime, *, lease: timedelta,
          limit: int) -> list[Job]:
    """Take up to `limit` due jobs for `lease`.  Due: pending (or an AMI job sent but not
    answered whose re-send time has come) with `next_at` passed and no live lease.  An AMI
    job waits while an older AMI job of the same meter is still pending, so a meter gets its
    tokens in issue order (key change tokens before the credit)."""
    d = deliveries
    older = aliased(deliveries)
    blocked = exists(select(older.c.id).where(
        older.c.meter_id == d.c.meter_id, older.c.channel == "ami",
        older.c.status == "pending", older.c.id < d.c.id))
    ids_stmt = (select(d.c.id)
                .where(or_(d.c.status == "pending",
                           and_(d.c.status == "sent", d.c.channel == "ami")),
                       d.c.next_at <= now,
                       or_(d.c.lease_until.is_(None), d.c.lease_until < now),
                       or_(d.c.channel != "ami", ~blocked))
                .order_by(d.c.id).limit(limit))
    if not db.is_sqlite:
        ids_stmt = ids_stmt.with_for_update(of=d, skip_locked=True)
    ids = [r.id for r in conn.execute(ids_stmt)]
    if not ids:
        return []
    conn.execute(update(d).where(d.c.id.in_(ids)).values(lease_until=now + lease))
    rows = conn.execute(
        select(d.c.id, d.c.request_id, d.c.channel, d.c.recipient, d.c.lang, d.c.status,
               d.c.attempts, meters.c.pan, transactions.c.kind, transactions.c.status
               .label("txn_status"), transactions.c.response)
        .join(meters, meters.c.id == d.c.meter_id)
        .join(transactions, transactions.c.seq == d.c.txn_seq)
        .where(d.c.id.in_(ids)).order_by(d.c.id))
    jobs: list[Job] = []
    for r in rows:
        if r.txn_status != "completed":  # reversed before it went out: never send it
            _finish(conn, r.id, now, status="failed", outcome="failed",
                    detail="the purchase was reversed; its tokens are cancelled",
                    from_statuses=("pending", "sent"))
            continue
        jobs.append(Job(r.id, r.request_id, r.channel, r.recipient, r.lang, r.status,
                        r.attempts, r.pan, r.kind, json.loads(r.response)))
    return jobs


_BATCH_KEY = "sts_delivery_attempts"


@contextmanager
def batched_attempts(conn: Connection) -> Iterator[None]:
    """Collect the attempt rows written inside the block and insert them in one statement
    (the dispatcher records a whole batch of outcomes in one transaction)."""
    rows: list[dict[str, Any]] = []
    conn.info[_BATCH_KEY] = rows
    try:
        yield
    finally:
        conn.info.pop(_BATCH_KEY, None)
    if rows:
        conn.execute(insert(delivery_attempts), rows)


def attempt(conn: Connection, delivery_id: int, now: datetime, outcome: str,
             detail: str) -> None:
    row = {"delivery_id": delivery_id, "at": now, "outcome": outcome, "detail": detail[:500]}
    batch = conn.info.get(_BATCH_KEY)
    if batch is not None:
        batch.append(row)
    else:
        conn.execute(insert(delivery_attempts).values(**row))


def _finish(conn: Connection, delivery_id: int, now: datetime, *, status: str, outcome: str,
            detail: str, from_statuses: Sequence[str], next_at: datetime | None = None,
            count: bool = True) -> bool:
    values: dict[str, Any] = {"status": status, "lease_until": None, "updated_at": now}
    if count:
        values["attempts"] = deliveries.c.attempts + 1
    if next_at is not None:
        values["next_at"] = next_at
    if status == "sent":
        values["sent_at"] = now
    elif status == "delivered":
        values["delivered_at"] = now
    if status in TERMINAL:
        values["done_at"] = now
    if status == "failed" or outcome == "error":
        values["reason"] = detail[:500]
    elif outcome in ("sent", "delivered"):
        values["reason"] = ""  # an earlier attempt's error no longer applies
    done = conn.execute(update(deliveries)
                        .where(deliveries.c.id == delivery_id,
                               deliveries.c.status.in_(from_statuses))
                        .values(**values))
    if not done.rowcount and count:
        # the meter answered before this outcome was written: keep its status, count the send
        later: dict[str, Any] = {"attempts": deliveries.c.attempts + 1, "lease_until": None}
        if status == "sent":
            later["sent_at"] = now
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**later))
    attempt(conn, delivery_id, now, outcome, detail)
    return bool(done.rowcount)


def finish_sent(conn: Connection, job: Job, now: datetime, *, status: str, detail: str,
                answer_by: datetime | None) -> None:
    """The carrier took the message: `sent` (AMI: the broker has it; answer expected by
    `answer_by`, else it is sent again) or `delivered` (SMTP / SMS gateway accepted it)."""
    if status == "sent":
        _finish(conn, job.id, now, status="sent", outcome="sent", detail=detail,
                from_statuses=("pending", "sent"), next_at=answer_by)
    else:
        _finish(conn, job.id, now, status="delivered", outcome="delivered", detail=detail,
                from_statuses=("pending", "sent"))


def finish_error(conn: Connection, job: Job, now: datetime, *, detail: str,
                 retry_at: datetime | None) -> None:
    """An attempt failed: try again at `retry_at`, or (None) give up as failed."""
    keep = job.status if job.status in ("pending", "sent") else "pending"
    if retry_at is None:
        _finish(conn, job.id, now, status="failed", outcome="failed", detail=detail,
                from_statuses=("pending", "sent"))
    else:
        _finish(conn, job.id, now, status=keep, outcome="error", detail=detail,
                from_statuses=("pending", "sent"), next_at=retry_at)


def release(conn: Connection, job_ids: Sequence[int]) -> None:
    """Give claimed jobs back untouched (dispatcher stopping)."""
    if job_ids:
        conn.execute(update(deliveries).where(deliveries.c.id.in_(list(job_ids)))
                     .values(lease_until=None))
