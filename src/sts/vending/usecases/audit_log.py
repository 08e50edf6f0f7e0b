"""The audit log as auditors read it: entries filtered by actor, action, record and dates, a
page at a time, each with its place in the hash chain and whether its link checks out; and
the filtered entries as CSV rows.

An entry checks out when its hash is the hash of its own content and of the entry before it,
and the entry before it carries that hash (the first links to the genesis).  The whole-chain
check of every entry and every meter's transactions stays `sts.vending.audit.verify`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, func, select

from sts.errors import InputError, StsError
from sts.vending.access.policy import Caller
from sts.vending.audit import GENESIS, entry_hash
from sts.vending.context import ServiceContext
from sts.vending.listing import ListSpec, Page, PageRequest, digits_of, fetch, like_pattern
from sts.vending.meters import meter_pan
from sts.vending.storage.tables import audit_log
from sts.vending.usecases.lists import printed

a = audit_log.c
ENTRIES = ListSpec(sorts={"seq": [a.seq], "actor": [a.actor, a.seq],
                          "action": [a.action, a.seq]}, default="seq", default_desc=True,
                   labels={"seq": "#", "actor": "Who", "action": "What"})
COLUMNS = ["seq", "at", "actor", "action", "subject", "details", "prev_hash", "hash", "checks_out"]
BATCH = 1000


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    record: str = ""
    start: str = ""
    end: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> AuditFilter:
        f = cls(**{k: params.get(k, "").strip() for k in ("actor", "action", "record",
                                                          "start", "end")})
        for name in ("actor", "action", "record"):
            if len(getattr(f, name)) > 120:
                raise InputError(f"{name} has at most 120 characters", field=name)
        f.period()
        return f

    def period(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) of the dates given (the end date inclusive)."""
        def day(name: str) -> datetime | None:
            text = getattr(self, name)
            if not text:
                return None
            try:
                return datetime.strptime(text, "%Y-%m-%d")
            except ValueError:
                raise InputError(f"{name} must be a date (YYYY-MM-DD)", field=name) from None

        start, end = day("start"), day("end")
        if start and end and start > end:
            raise InputError("the start date must not be after the end date", field="start")
        return start, (end + timedelta(days=1) if end else None)

    def subject(self) -> str:
        """The record as stored: a meter number as printed becomes its MeterPAN."""
        digits = digits_of(self.record)
        if digits is not None and len(digits) in (11, 13, 18):
            try:
                return meter_pan(digits, "record")
            except StsError:
                return self.record
        return self.record

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.actor:
            stmt = stmt.where(func.lower(a.actor).like(like_pattern(self.actor), escape="\\"))
        if self.action:
            stmt = stmt.where((a.action == self.action) | a.action.like(
                self.action.replace("\\", "").replace("%", "").replace("_", "") + ".%"))
        if self.record:
            stmt = stmt.where(a.subject == self.subject())
        start, end = self.period()
        if start is not None:
            stmt = stmt.where(a.at >= start)
        if end is not None:
            stmt = stmt.where(a.at < end)
        return stmt

    @property
    def active(self) -> bool:
        return any((self.actor, self.action, self.record, self.start, self.end))

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def _entries(conn: Connection, seqs: list[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(select(audit_log).where(a.seq.in_(seqs))).all()
    before = {s - 1 for s in seqs} - set(seqs)
    prev = {r.seq: r.hash for r in rows}
    if before:
        prev |= {r.seq: r.hash for r in conn.execute(select(a.seq, a.hash)
                                                     .where(a.seq.in_(before)))}
    by_seq = {r.seq: r for r in rows}
    return [_entry(by_seq[s], prev) for s in seqs if s in by_seq]


def _entry(r: Any, prev: Mapping[int, str]) -> dict[str, Any]:
    link = GENESIS if r.seq == 1 else prev.get(r.seq - 1)
    own = entry_hash(r.prev_hash, r.seq, r.at, r.actor, r.action, r.subject, r.details)
    out = {k: getattr(r, k) for k in ("seq", "at", "actor", "action", "subject", "details",
                                      "prev_hash", "hash")}
    out["checks_out"] = own == r.hash and link == r.prev_hash
    pan = r.subject if len(r.subject) == 18 and r.subject.isdigit() else None
    out["meter"] = printed(pan) if pan else None
    return out


def entries(svc: ServiceContext, caller: Caller, params: Mapping[str, str]
            ) -> tuple[Page, AuditFilter]:
    """One page of the audit entries the filter selects, newest first unless sorted."""
    caller.require("audit_log")
    req = PageRequest.parse(params, ENTRIES)
    flt = AuditFilter.parse(params)
    ids = flt.apply(select(a.seq).select_from(audit_log))
    with svc.db.read() as conn:
        page = fetch(conn, ENTRIES, req, ids, filtered=flt.active, load=_entries)
    page.filters = flt.as_query()
    return page, flt


def export(svc: ServiceContext, caller: Caller, params: Mapping[str, str]
           ) -> Iterator[dict[str, Any]]:
    """Every entry the filter selects, oldest first, read a batch at a time (a CSV)."""
    caller.require("audit_log")
    flt = AuditFilter.parse(params)

    def rows() -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            with svc.db.read() as conn:
                seqs = list(conn.scalars(flt.apply(select(a.seq).where(a.seq > after))
                                         .order_by(a.seq).limit(BATCH)))
                batch = _entries(conn, seqs) if seqs else []
            yield from ({k: e[k] for k in COLUMNS} for e in batch)
            if len(seqs) < BATCH:
                return
            after = seqs[-1]

    return rows()
