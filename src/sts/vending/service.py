"""The vending service: lookups, sales, trials, reprints, reversals, engineering tokens, token
verification and key changes.  The REST API and the CLI are thin faces over this class.

Exactly once: a sale is one database transaction that first looks for its request id, then
locks the meter row, looks again, allocates TIDs from the meter row, makes the tokens, and
stores tokens, receipt and every balance change before committing.  A crash before the commit
leaves nothing; a repeat after it gets the stored answer.  The unique request id and
UNIQUE(meter, epoch, tid) are the database's backstops for both rules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Row, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from sts.codec.tid import TID_MAX, is_reserved, tid_at
from sts.delivery import outbox as delivery_outbox
from sts.engine import TokenRequest
from sts.errors import (
    CrcError,
    DuplicateRequest,
    InputError,
    InsufficientFloat,
    KeyCreditLimit,
    MeterBlocked,
    NotAuthenticated,
    NotAuthorised,
    ReversalNotAllowed,
    StsError,
    UnknownMeter,
    UnknownRecord,
    VendKeyExpired,
)
from sts.vending import audit, hotsql, receipts
from sts.vending.auth import Caller, hash_key
from sts.vending.db import Database
from sts.vending.hotsql import HotSQL
from sts.vending.keys import KeyRecord, MeterIdentity, SecurityModule
from sts.vending.models import (
    customers,
    meter_months,
    meters,
    supply_groups,
    tariffs,
    tokens,
    transactions,
    utilities,
    vending_keys,
    vendor_sgcs,
    vendors,
)
from sts.vending.ratelimit import hit as rate_hit
from sts.vending.tariff import (
    ZERO,
    Block,
    Quote,
    Tariff,
    money,
    parse_amount,
    quote,
    units_str,
)

Clock = Callable[[], datetime]
SERVICES = ("electricity", "water", "gas", "time")
UNIT_NAMES = {"electricity": "kWh", "water": "kl", "gas": "m3", "time": "min"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")
ENGINEERING_TYPES = ("clear_tamper", "clear_credit", "power_limit", "phase_unbalance",
                     "key_change", "test")
GENESIS = audit.GENESIS


def wall_clock() -> datetime:
    return datetime.now().replace(microsecond=0)


def check_request_id(value: str, field_name: str) -> str:
    if not REQUEST_ID.match(value):
        raise InputError(f"{field_name} must be 8-64 letters, digits or ._:- (a UUID is best)",
                         field=field_name)
    return value


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def request_hash(obj: Any) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


# --- what a meter row brings -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    record: KeyRecord
    ken: int
    credit_limit: Decimal | None


@dataclass(frozen=True)
class MeterView:
    id: int
    pan: str
    status: str
    status_reason: str
    service: str
    kt: int
    ti: int
    ken: int
    mfr_code: str
    last_tid: int
    tid_epoch: int
    max_epoch: int
    last_hash: str
    key: KeyInfo
    sgc_id: int
    current_key_id: int | None
    tariff_id: int
    tariff: Tariff
    customer: dict[str, Any] | None
    customer_id: int | None
    debt_balance: Decimal
    utility: dict[str, str]

    @property
    def sgc(self) -> str:
        return self.key.record.sgc

    def identity(self) -> MeterIdentity:
        return MeterIdentity(self.pan, self.kt, self.ti, self.ken, self.mfr_code)

    def describe(self) -> dict[str, Any]:
        k = self.key.record
        return {"pan": self.pan, "sgc": k.sgc, "krn": k.krn, "ti": self.ti, "kt": self.kt,
                "ea": k.ea, "dkga": k.dkga, "base_date": k.base_date, "ken": self.ken,
                "mfr_code": self.mfr_code, "service": self.service, "status": self.status}


_KEY_COLS = (vending_keys.c.id, vending_keys.c.krn, vending_keys.c.key_type, vending_keys.c.dkga,
             vending_keys.c.ea, vending_keys.c.base_date, vending_keys.c.table_set,
             vending_keys.c.module, vending_keys.c.blob, vending_keys.c.issued_until,
             vending_keys.c.kct_until, vending_keys.c.ken, vending_keys.c.credit_limit)


def _key_info(row: Any, sgc: str, prefix: str = "") -> KeyInfo:
    g = row._mapping
    rec = KeyRecord(
        id=g[prefix + "id"], sgc=sgc, krn=g[prefix + "krn"], key_type=g[prefix + "key_type"],
        dkga=g[prefix + "dkga"], ea=g[prefix + "ea"], base_date=g[prefix + "base_date"],
        table_set=g[prefix + "table_set"], module=g[prefix + "module"], blob=g[prefix + "blob"],
        issued_until=g[prefix + "issued_until"], kct_until=g[prefix + "kct_until"],
    )
    return KeyInfo(rec, g[prefix + "ken"], g[prefix + "credit_limit"])


def load_key(conn: Connection, key_id: int) -> KeyInfo:
    row = conn.execute(
        select(*_KEY_COLS, supply_groups.c.sgc)
        .join(supply_groups, supply_groups.c.id == vending_keys.c.sgc_id)
        .where(vending_keys.c.id == key_id)
    ).first()
    if row is None:
        raise UnknownRecord(f"vending key {key_id} does not exist", field="key")
    return _key_info(row, row.sgc)


_METER_QUERY = (
    select(
        meters.c.id.label("m_id"), meters.c.pan, meters.c.status, meters.c.status_reason,
        meters.c.service, meters.c.kt, meters.c.ti.label("m_ti"), meters.c.ken.label("m_ken"),
        meters.c.mfr_code, meters.c.last_tid, meters.c.tid_epoch, meters.c.max_epoch,
        meters.c.last_hash, meters.c.sgc_id, meters.c.tariff_id, meters.c.customer_id,
        *[c.label("k_" + c.name) for c in _KEY_COLS],
        supply_groups.c.sgc, supply_groups.c.current_key_id,
        tariffs.c.name.label("t_name"), tariffs.c.description.label("t_description"),
        tariffs.c.ti.label("t_ti"), tariffs.c.blocks, tariffs.c.vat_rate,
        tariffs.c.fixed_monthly, tariffs.c.debt_share, tariffs.c.free_units,
        tariffs.c.min_amount, tariffs.c.max_amount,
        customers.c.account_no, customers.c.name.label("c_name"),
        customers.c.address.label("c_address"), customers.c.debt_balance,
        utilities.c.name.label("u_name"), utilities.c.address.label("u_address"),
        utilities.c.vat_reg_num, utilities.c.currency,
    )
    .select_from(meters)
    .join(vending_keys, vending_keys.c.id == meters.c.key_id)
    .join(supply_groups, supply_groups.c.id == vending_keys.c.sgc_id)
    .join(tariffs, tariffs.c.id == meters.c.tariff_id)
    .join(utilities, utilities.c.id == supply_groups.c.utility_id)
    .outerjoin(customers, customers.c.id == meters.c.customer_id)
)


def _meter_view(row: Any) -> MeterView:
    tariff = Tariff(
        name=row.t_name, description=row.t_description, ti=row.t_ti,
        blocks=Tariff.blocks_from_json(row.blocks), vat_rate=row.vat_rate,
        fixed_monthly=row.fixed_monthly, debt_share=row.debt_share, free_units=row.free_units,
        min_amount=row.min_amount, max_amount=row.max_amount,
    )
    customer = None
    if row.customer_id is not None:
        customer = {"account_no": row.account_no, "name": row.c_name, "address": row.c_address}
    return MeterView(
        id=row.m_id, pan=row.pan, status=row.status, status_reason=row.status_reason,
        service=row.service, kt=row.kt, ti=row.m_ti, ken=row.m_ken, mfr_code=row.mfr_code,
        last_tid=row.last_tid, tid_epoch=row.tid_epoch, max_epoch=row.max_epoch,
        last_hash=row.last_hash, key=_key_info(row, row.sgc, "k_"), sgc_id=row.sgc_id,
        current_key_id=row.current_key_id, tariff_id=row.tariff_id, tariff=tariff,
        customer=customer, customer_id=row.customer_id,
        debt_balance=row.debt_balance if row.debt_balance is not None else ZERO,
        utility={"name": row.u_name, "address": row.u_address, "vat_reg_num": row.vat_reg_num,
                 "currency": row.currency},
    )


@dataclass(frozen=True)
class VendorView:
    id: int
    name: str
    address: str


@lru_cache(maxsize=256)
def _blocks(text: str) -> tuple[Block, ...]:
    """A tariff's parsed blocks, by their JSON text (immutable, so safe to share)."""
    return Tariff.blocks_from_json(text)


# --- token plans ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One token to make: class, subclass, values; the TID is allocated at issue time."""

    kind: str  # STD / FBE / ENG / TEST
    token_class: int
    subclass: int
    values: dict[str, Any]
    units: Decimal | None = None
    label: str = ""


@dataclass(frozen=True)
class KeyChange:
    new_key: KeyInfo
    new_ti: int
    ro: bool


@dataclass
class IssueResult:
    tokens: list[dict[str, Any]]  # rows for the token table (without txn_seq)
    key_id: int
    ti: int
    ken: int
    tid_epoch: int
    max_epoch: int
    last_tid: int
    prev_key: dict[str, Any] = field(default_factory=dict)

    def public(self) -> list[dict[str, Any]]:
        out = []
        for t in self.tokens:
            item: dict[str, Any] = {"token": t["token"], "class": t["token_class"],
                                    "subclass": t["subclass"], "tid": t["tid"],
                                    "kind": t["kind"], "description": t["description"]}
            if t["units"] is not None:
                item["units"] = units_str(t["units"])
            if t.get("label"):
                item["label"] = t["label"]
            out.append(item)
        return out


def next_tid(now_tid: int, last_tid: int) -> int:
    """The next free TID: this minute, or the minute after the last one used; never 00:01."""
    tid = max(now_tid, last_tid + 1)
    if is_reserved(tid):
        tid += 1
    if tid > TID_MAX:
        raise VendKeyExpired("the meter's TID range is used up: it needs a key change",
                             field="tid")
    return tid


class VendingService:
    def __init__(self, db: Database, sm: SecurityModule, *, clock: Clock = wall_clock,
                 lookup_limit: int = 600) -> None:
        self.db = db
        self.sm = sm
        self.clock = clock
        self.lookup_limit = lookup_limit  # per API key per minute, across all processes
        self.hot = HotSQL(db.is_sqlite)
        dbapi = db.engine.dialect.loaded_dbapi
        self._integrity_errors: tuple[type[Exception], ...] = (IntegrityError,
                                                                dbapi.IntegrityError)

    # --- helpers ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def load_meter(self, conn: Connection, pan: str, *, lock: bool) -> MeterView:
        if not isinstance(pan, str) or not pan.isdigit() or len(pan) != 18:
            raise InputError("meter must be the 18-digit meter number", field="meter")
        stmt = _METER_QUERY.where(meters.c.pan == pan)
        if lock and not self.db.is_sqlite:
            stmt = stmt.with_for_update(of=meters)
        row = conn.execute(stmt).first()
        if row is None:
            raise UnknownMeter(f"meter {pan} is not registered", field="meter")
        return _meter_view(row)

    def _next_seq(self, conn: Connection) -> int:
        if self.db.is_sqlite:
            return int(conn.scalar(select(func.coalesce(func.max(transactions.c.seq), 0) + 1))
                       or 1)
        return int(conn.scalar(
            text("SELECT nextval(pg_get_serial_sequence('transactions', 'seq'))")) or 0)

    def _month_state(self, conn: Connection, meter_id: int, month: str) -> Any:
        return conn.execute(
            select(meter_months.c.units, meter_months.c.fixed_paid, meter_months.c.free_units)
            .where(meter_months.c.meter_id == meter_id, meter_months.c.month == month)
        ).first()

    def _upsert_month(self, conn: Connection, meter_id: int, month: str, units: Decimal,
                      fixed: Decimal, free: Decimal) -> None:
        ins = (sqlite.insert(meter_months) if self.db.is_sqlite
               else postgresql.insert(meter_months))
        stmt = ins.values(meter_id=meter_id, month=month, units=units, fixed_paid=fixed,
                          free_units=free)
        stmt = stmt.on_conflict_do_update(
            index_elements=[meter_months.c.meter_id, meter_months.c.month],
            set_={"units": meter_months.c.units + stmt.excluded.units,
                  "fixed_paid": meter_months.c.fixed_paid + stmt.excluded.fixed_paid,
                  "free_units": meter_months.c.free_units + stmt.excluded.free_units},
        )
        conn.execute(stmt)

    def _quote(self, conn: Connection, m: MeterView, amount: Decimal, now: datetime) -> Quote:
        month = now.strftime("%Y-%m")
        st = self._month_state(conn, m.id, month)
        return quote(m.tariff, amount,
                     month_units=st.units if st else ZERO,
                     fixed_paid=st.fixed_paid if st else ZERO,
                     free_issued=st.free_units if st else ZERO,
                     debt_balance=m.debt_balance)

    def key_change_due(self, conn: Connection, m: MeterView) -> KeyChange | None:
        target_id = m.current_key_id if m.current_key_id is not None else m.key.record.id
        target_ti = m.tariff.ti if m.tariff.ti is not None else m.ti
        if target_id == m.key.record.id and target_ti == m.ti:
            return None
        new = m.key if target_id == m.key.record.id else load_key(conn, target_id)
        return KeyChange(new, target_ti, new.record.base_date != m.key.record.base_date)

    @staticmethod
    def _check_key_valid(key: KeyInfo, now: datetime, *, kct: bool = False) -> None:
        rec = key.record
        until = (rec.kct_until or rec.issued_until) if kct else rec.issued_until
        if until is not None and now > until:
            what = "key change tokens" if kct else "tokens"
            raise VendKeyExpired(
                f"vending key SGC {rec.sgc} KRN {rec.krn} may issue {what} only until "
                f"{until:%Y-%m-%d %H:%M}", field="meter")

    def _issue(self, m: MeterView, planned: list[Planned], kc: KeyChange | None,
               now: datetime) -> IssueResult:
        """Allocate TIDs and make the tokens (KCTs first, then `planned` in order)."""
        prev_key = {"key_id": m.key.record.id, "ti": m.ti, "ken": m.ken,
                    "tid_epoch": m.tid_epoch, "last_tid": m.last_tid}
        key, ti, ken = m.key, m.ti, m.ken
        epoch, last_tid, max_epoch = m.tid_epoch, m.last_tid, m.max_epoch
        rows: list[dict[str, Any]] = []

        def row(tok: Any, kind: str, key_id: int, kt: int, ti_: int, ken_: int,
                units: Decimal | None, label: str) -> None:
            rows.append({"token": tok.token, "token_class": tok.token_class,
                         "subclass": tok.subclass, "tid": tok.tid, "tid_epoch": epoch,
                         "units": units, "kind": kind, "description": tok.description,
                         "key_id": key_id, "kt": kt, "ti": ti_, "ken": ken_, "label": label})

        def request(p: Planned) -> TokenRequest:
            nonlocal last_tid
            if p.token_class == 1:
                return TokenRequest(p.token_class, p.subclass, p.values)
            tid = next_tid(tid_at(now, key.record.base_date), last_tid)
            last_tid = tid
            return TokenRequest(p.token_class, p.subclass, p.values, tid=tid)

        queue = list(planned)
        if kc is not None:
            self._check_key_valid(m.key, now, kct=True)
            old_ident = m.identity()
            new_ken = kc.new_key.ken
            new_ident = replace(old_ident, ti=kc.new_ti, ken=new_ken)
            then = None
            kct_epoch = epoch
            if kc.ro:
                max_epoch += 1
                epoch, last_tid = max_epoch, 0
            key, ti, ken = kc.new_key, kc.new_ti, new_ken
            first = queue.pop(0) if queue else None
            if first is not None:
                if first.token_class != 1:
                    self._check_key_valid(key, now)
                then = request(first)
            issue = self.sm.key_change(m.key.record, old_ident, key.record, new_ident,
                                       ro=kc.ro, then=then)
            kcts = issue.tokens[: len(issue.tokens) - (1 if then is not None else 0)]
            for n, tok in enumerate(kcts, 1):
                row(tok, "KCT", m.key.record.id, m.kt, m.ti, m.ken, None, f"KEY CHANGE TOKEN {n}")
                rows[-1]["tid_epoch"] = kct_epoch
            if first is not None:
                row(issue.tokens[-1], first.kind, key.record.id, m.kt, ti, ken, first.units,
                    first.label)
        ident = MeterIdentity(m.pan, m.kt, ti, ken, m.mfr_code)
        for p in queue:
            if p.token_class != 1:
                self._check_key_valid(key, now)
            issue = self.sm.issue(key.record, ident, request(p))
            row(issue.tokens[0], p.kind, key.record.id, m.kt, ti, ken, p.units, p.label)
        return IssueResult(rows, key.record.id, ti, ken, epoch, max_epoch, last_tid, prev_key)

    def _store(self, conn: Connection, *, seq: int, request_id: str, kind: str, m: MeterView,
               caller: Caller | None, rhash: str, response: dict[str, Any], now: datetime,
               res: IssueResult | None, month: str = "", amount: Decimal = ZERO,
               vat: Decimal = ZERO, charges: Decimal = ZERO, debt: Decimal = ZERO,
               units: Decimal = ZERO, reverses: int | None = None, reason: str = "",
               last_hash: str | None = None) -> str:
        """Insert the transaction and its tokens, and move the meter row on."""
        body = canonical(response)
        prev = (last_hash if last_hash is not None else m.last_hash) or GENESIS
        digest = audit.txn_hash(prev, request_id, kind, body)
        conn.execute(transactions.insert().values(
            seq=seq, request_id=request_id, kind=kind, meter_id=m.id,
            vendor_id=caller.vendor_id if caller else None,
            api_key_id=caller.key_id if caller and caller.key_id > 0 else None,
            request_hash=rhash, amount=amount, vat=vat, charges=charges, debt=debt, units=units,
            month=month, status="completed", reverses=reverses, reason=reason,
            prev_key=canonical(res.prev_key) if res else "", response=body, created_at=now,
            prev_hash=prev, hash=digest))
        values: dict[str, Any] = {"last_hash": digest}
        if res is not None:
            if res.tokens:
                conn.execute(tokens.insert(), [
                    {k: v for k, v in t.items() if k != "label"}
                    | {"txn_seq": seq, "meter_id": m.id, "position": i, "status": "issued",
                       "created_at": now}
                    for i, t in enumerate(res.tokens)
                ])
            values.update(key_id=res.key_id, ti=res.ti, ken=res.ken, tid_epoch=res.tid_epoch,
                          max_epoch=res.max_epoch, last_tid=res.last_tid)
        conn.execute(update(meters).where(meters.c.id == m.id).values(**values))
        return digest

    def _stored(self, conn: Connection, request_id: str) -> Any:
        return conn.execute(
            select(transactions.c.seq, transactions.c.kind, transactions.c.request_hash,
                   transactions.c.response, transactions.c.status, transactions.c.vendor_id)
            .where(transactions.c.request_id == request_id)
        ).first()

    @staticmethod
    def _repeat(stored: Row[Any], kind: str, rhash: str, request_id: str) -> dict[str, Any]:
        if stored.kind != kind or stored.request_hash != rhash:
            raise DuplicateRequest(
                f"request id {request_id} was already used for a different request",
                field="id")
        out: dict[str, Any] = json.loads(stored.response)
        return out

    def _vendor(self, conn: Connection, caller: Caller, sgc_id: int) -> Row[Any]:
        if caller.vendor_id is None:
            raise NotAuthorised("this API key is not bound to a vendor, so it cannot sell",
                                field="authorization")
        row = conn.execute(
            select(vendors.c.id, vendors.c.name, vendors.c.address, vendors.c.status,
                   vendors.c.float_balance,
                   select(vendor_sgcs.c.sgc_id)
                   .where(vendor_sgcs.c.vendor_id == vendors.c.id,
                          vendor_sgcs.c.sgc_id == sgc_id).exists().label("authorised"))
            .where(vendors.c.id == caller.vendor_id)
        ).one()
        if row.status != "active":
            raise NotAuthorised("the vendor is suspended", field="authorization")
        if not row.authorised:
            raise NotAuthorised("the vendor is not authorised for this meter's supply group",
                                field="meter")
        return row

    # --- lookup, trial, purchase ------------------------------------------------------------

    def lookup(self, pan: str, caller: Caller, amount: str | None = None) -> dict[str, Any]:
        caller.require("lookup")
        now = self.now()
        with self.db.begin() as conn:
            rate_hit(self.db, conn, f"lookup:{caller.key_id}", now, self.lookup_limit)
            m = self.load_meter(conn, pan, lock=False)
            kc = self.key_change_due(conn, m)
            month = now.strftime("%Y-%m")
            st = self._month_state(conn, m.id, month)
            out: dict[str, Any] = {
                "meter": m.describe(),
                "customer": m.customer,
                "utility": m.utility,
                "tariff": {"name": m.tariff.name, "description": m.tariff.description},
                "min_amount": money(m.tariff.min_amount),
                "max_amount": money(m.tariff.max_amount) if m.tariff.max_amount else None,
                "arrears": money(m.debt_balance),
                "can_vend": m.status == "active",
                "key_change_due": kc is not None,
                "free_units_due": units_str(m.tariff.free_units)
                if m.tariff.free_units > 0 and not (st and st.free_units > 0) else "0.0",
            }
            if m.status != "active":
                out["blocked_reason"] = m.status_reason
            if kc is not None:
                out["new_key"] = {"sgc": kc.new_key.record.sgc, "krn": kc.new_key.record.krn,
                                  "ti": kc.new_ti, "base_date": kc.new_key.record.base_date,
                                  "rollover": kc.ro}
            if amount is not None:
                out["quote"] = self._quote(conn, m, parse_amount(amount), now).as_dict()
        return out

    def _plan_sale(self, m: MeterView, q: Quote) -> list[Planned]:
        sub = SERVICES.index(m.service)
        plan = [Planned("STD", 0, sub, {"units": units_str(q.units)}, q.units, "CREDIT TOKEN")]
        if q.free_units > 0:
            plan.append(Planned("FBE", 0, sub, {"units": units_str(q.free_units)}, q.free_units,
                                "FREE BASIC UNITS"))
        return plan

    def _receipt(self, *, m: MeterView, q: Quote, vendor: Any, receipt_no: str,
                 now: datetime, kc: KeyChange | None, tokens_out: list[dict[str, Any]],
                 trial: bool = False) -> dict[str, Any]:
        charges = []
        if q.fixed_charge > 0:
            charges.append({"description": "Fixed monthly charge", "amount": money(q.fixed_charge)})
        debt = []
        if q.debt > 0:
            debt.append({"description": "Debt recovery", "amount": money(q.debt),
                         "balance": money(q.debt_after)})
        r: dict[str, Any] = {
            "receipt_no": receipt_no, "date": now.isoformat(), "trial": trial,
            "utility": m.utility,
            "vendor": {"name": vendor.name, "address": vendor.address} if vendor else None,
            "meter": m.describe(), "customer": m.customer,
            "tariff": {"name": m.tariff.name, "description": m.tariff.description},
            "amount": money(q.amount), "units": units_str(q.units),
            "unit": UNIT_NAMES[m.service],
            "energy_amount": money(q.energy_amount), "energy_net": money(q.energy_net),
            "steps": [{"units": str(s.units.quantize(Decimal("0.0001"))), "price": str(s.price),
                       "amount": money(s.amount)} for s in q.steps],
            "vat": {"rate": str(m.tariff.vat_rate), "amount": money(q.vat)},
            "charges": charges, "debt": debt, "free_units": units_str(q.free_units),
            "key_change": None,
            "tokens": tokens_out,
        }
        if kc is not None:
            old = m.key.record
            r["meter"] = m.describe() | {"sgc": kc.new_key.record.sgc, "krn": kc.new_key.record.krn,
                                         "ti": kc.new_ti, "base_date": kc.new_key.record.base_date}
            r["key_change"] = {
                "from": {"sgc": old.sgc, "krn": old.krn, "ti": m.ti, "base_date": old.base_date},
                "to": {"sgc": kc.new_key.record.sgc, "krn": kc.new_key.record.krn,
                       "ti": kc.new_ti, "base_date": kc.new_key.record.base_date},
                "rollover": kc.ro,
            }
        return r

    def trial(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """The full answer of a sale, without tokens; nothing is stored."""
        caller.require("purchase")
        pan, amount = body.get("meter"), parse_amount(body.get("amount"))
        now = self.now()
        with self.db.begin() as conn:
            m = self.load_meter(conn, str(pan), lock=False)
            if m.status != "active":
                raise MeterBlocked(f"meter {m.pan} is blocked: {m.status_reason}", field="meter")
            vendor = self._vendor(conn, caller, m.sgc_id)
            q = self._quote(conn, m, amount, now)
            kc = self.key_change_due(conn, m)
            toks: list[dict[str, Any]] = []
            if kc is not None:
                n = 4 if m.key.record.ea == 11 else 2
                toks += [{"token": None, "kind": "KCT", "class": 2, "subclass": s,
                          "description": "key change token"} for s in (3, 4, 8, 9)[:n]]
            for p in self._plan_sale(m, q):
                toks.append({"token": None, "kind": p.kind, "class": p.token_class,
                             "subclass": p.subclass, "units": units_str(p.units or ZERO),
                             "description": p.label.lower()})
            receipt = self._receipt(m=m, q=q, vendor=vendor, receipt_no="", now=now, kc=kc,
                                    tokens_out=toks, trial=True)
            conn.rollback()
        return {"trial": True, "receipt": receipt, "tokens": toks,
                "slip": receipts.slip(receipt, [], title="TRIAL - NOT A TAX INVOICE")}

    def purchase(self, purchase_id: str, body: dict[str, Any],
                 caller: Caller) -> tuple[dict[str, Any], bool]:
        """(answer, created): a new sale, or the stored answer for a repeated id."""
        text, created = self._purchase(purchase_id, body, caller, None)
        out: dict[str, Any] = json.loads(text)
        return out, created

    def purchase_json(self, purchase_id: str, body: dict[str, Any],
                      api_key: str) -> tuple[str, bool]:
        """The REST face of `purchase`: the API key is checked inside the sale's transaction
        (no second connection), and the answer is the stored JSON text itself."""
        return self._purchase(purchase_id, body, None, api_key)

    def _purchase(self, purchase_id: str, body: dict[str, Any], caller: Caller | None,
                  api_key: str | None) -> tuple[str, bool]:
        """A sale on the hot path (`sts.vending.hotsql`): auth, meter lock with everything the
        sale reads, one read after the lock, the writes, commit."""
        h = self.hot
        rhash = ""
        try:
            with self.db.begin() as conn:
                cur = h.cursor(conn)
                try:
                    if caller is None:
                        caller = self._authenticate_raw(cur, api_key or "")
                    caller.require("purchase")
                    check_request_id(purchase_id, "purchase_id")
                    pan = body.get("meter")
                    if not isinstance(pan, str):
                        raise InputError("meter is required (the 18-digit meter number)",
                                         field="meter")
                    amount = parse_amount(body.get("amount"))
                    extra = {k: body[k] for k in ("reference", "pay_type")
                             if body.get(k) is not None}
                    rhash = request_hash({"meter": pan, "amount": str(amount), **extra,
                                          "vendor": caller.vendor_id})
                    if not pan.isdigit() or len(pan) != 18:
                        raise InputError("meter must be the 18-digit meter number",
                                         field="meter")
                    # lock the meter first, then look for the id: a twin that held the lock
                    # before us has committed by now, so its answer is visible
                    cur.execute(h.meter, {"pan": pan, "vendor_id": caller.vendor_id})
                    row = cur.fetchone()
                    if row is None:
                        raise UnknownMeter(f"meter {pan} is not registered", field="meter")
                    m = self._hot_meter_view(row)
                    now = self.now()
                    month = now.strftime("%Y-%m")
                    cur.execute(h.after_lock, {"request_id": purchase_id, "meter_id": m.id,
                                               "month": month})
                    after = cur.fetchone()
                    if after[0] is not None:
                        return self._repeat_text(after[1], after[2], after[3], "sale", rhash,
                                                 purchase_id), False
                    sold = self._sell(conn, cur, purchase_id, m, row, after, amount, rhash,
                                      caller, extra, now, month)
                    # DELIVERY OUTBOX HOOK (sts.delivery): jobs in the sale's own transaction
                    delivery_outbox.enqueue(conn, purchase_id, body.get("deliver"), now)
                    return sold, True
                finally:
                    cur.close()
        except self._integrity_errors:
            # a concurrent twin with the same id committed first: answer as a repeat
            with self.db.read() as conn:
                stored = self._stored(conn, purchase_id)
            if stored is None:
                raise
            return self._repeat_text(stored.kind, stored.request_hash, stored.response, "sale",
                                     rhash, purchase_id), False

    def _authenticate_raw(self, cur: Any, key: str) -> Caller:
        digest = hash_key(key)
        cur.execute(self.hot.auth, {"digest": digest})
        row = cur.fetchone()
        if row is None or not hmac.compare_digest(row[4], digest) or row[5] is not None:
            raise NotAuthenticated("unknown or revoked API key", field="authorization")
        return Caller(row[0], row[1], row[2], row[3])

    @staticmethod
    def _repeat_text(kind: str, stored_hash: str, response: str, want: str, rhash: str,
                     request_id: str) -> str:
        if kind != want or stored_hash != rhash:
            raise DuplicateRequest(
                f"request id {request_id} was already used for a different request",
                field="id")
        return response

    def _hot_meter_view(self, r: Any) -> MeterView:
        mo, ts = self.hot.money_out, self.hot.ts_out

        def dec(value: Any) -> Decimal:
            out = mo(value)
            return out if out is not None else ZERO

        tariff = Tariff(
            name=r[31], description=r[32], ti=r[33], blocks=_blocks(r[34]),
            vat_rate=dec(r[35]), fixed_monthly=dec(r[36]), debt_share=dec(r[37]),
            free_units=dec(r[38]), min_amount=dec(r[39]), max_amount=mo(r[40]),
        )
        key = KeyInfo(KeyRecord(
            id=r[16], sgc=r[29], krn=r[17], key_type=r[18], dkga=r[19], ea=r[20],
            base_date=r[21], table_set=r[22], module=r[23], blob=bytes(r[24]),
            issued_until=ts(r[25]), kct_until=ts(r[26])), r[27], mo(r[28]))
        customer = None
        if r[15] is not None:
            customer = {"account_no": r[41], "name": r[42], "address": r[43]}
        return MeterView(
            id=r[0], pan=r[1], status=r[2], status_reason=r[3], service=r[4], kt=r[5], ti=r[6],
            ken=r[7], mfr_code=r[8], last_tid=r[9], tid_epoch=r[10], max_epoch=r[11],
            last_hash=r[12], key=key, sgc_id=r[13], current_key_id=r[30], tariff_id=r[14],
            tariff=tariff, customer=customer, customer_id=r[15],
            debt_balance=dec(r[44]),
            utility={"name": r[45], "address": r[46], "vat_reg_num": r[47], "currency": r[48]},
        )

    def _sell(self, conn: Connection, cur: Any, purchase_id: str, m: MeterView, row: Any,
              after: Any, amount: Decimal, rhash: str, caller: Caller, extra: dict[str, Any],
              now: datetime, month: str) -> str:
        h = self.hot
        mi, mo = h.money_in, h.money_out
        if m.status != "active":
            raise MeterBlocked(f"meter {m.pan} is blocked: {m.status_reason}", field="meter")
        if caller.vendor_id is None:
            raise NotAuthorised("this API key is not bound to a vendor, so it cannot sell",
                                field="authorization")
        vendor = VendorView(row[49], row[50], row[51])
        if row[52] != "active":
            raise NotAuthorised("the vendor is suspended", field="authorization")
        if row[54] is None:
            raise NotAuthorised("the vendor is not authorised for this meter's supply group",
                                field="meter")
        float_balance = mo(row[53]) or ZERO
        if float_balance < amount:
            raise InsufficientFloat(
                f"the vendor's float ({money(float_balance)}) does not cover "
                f"{money(amount)}", field="amount")
        q = quote(m.tariff, amount,
                  month_units=mo(after[4]) or ZERO, fixed_paid=mo(after[5]) or ZERO,
                  free_issued=mo(after[6]) or ZERO,
                  debt_balance=m.debt_balance)
        kc = self.key_change_due(conn, m)
        res = self._issue(m, self._plan_sale(m, q), kc, now)
        credit_key = kc.new_key if kc is not None else m.key
        if credit_key.credit_limit is not None:
            cur.execute(h.key_credit, {"id": credit_key.record.id,
                                       "amount": mi(q.energy_amount)})
            if cur.rowcount != 1:
                raise KeyCreditLimit("the vending key's credit limit is reached", field="meter")
        seq = int(after[7])
        receipt_no = f"{seq:010d}"
        toks = res.public()
        receipt = self._receipt(m=m, q=q, vendor=vendor, receipt_no=receipt_no, now=now, kc=kc,
                                tokens_out=toks)
        if extra:
            receipt["request"] = extra
        response = {"purchase_id": purchase_id, "receipt": receipt, "tokens": toks,
                    "slip": receipts.slip(receipt, toks, title="CREDIT VEND - TAX INVOICE")}
        body = canonical(response)
        prev = m.last_hash or GENESIS
        digest = audit.txn_hash(prev, purchase_id, "sale", body)
        created = h.ts_in(now)
        writes: list[tuple[str, dict[str, Any]]] = [
            (hotsql.INSERT_TXN, {
                "seq": seq, "request_id": purchase_id, "kind": "sale", "meter_id": m.id,
                "vendor_id": caller.vendor_id,
                "api_key_id": caller.key_id if caller.key_id > 0 else None,
                "request_hash": rhash, "amount": mi(amount), "vat": mi(q.vat),
                "charges": mi(q.fixed_charge), "debt": mi(q.debt), "units": mi(q.units),
                "month": month, "prev_key": canonical(res.prev_key), "response": body,
                "created_at": created, "prev_hash": prev, "hash": digest}),
            *((hotsql.INSERT_TOKEN, {
                "txn_seq": seq, "meter_id": m.id, "position": i, "token": t["token"],
                "token_class": t["token_class"], "subclass": t["subclass"], "tid": t["tid"],
                "tid_epoch": t["tid_epoch"], "units": mi(t["units"]), "kind": t["kind"],
                "description": t["description"], "key_id": t["key_id"], "kt": t["kt"],
                "ti": t["ti"], "ken": t["ken"], "created_at": created})
              for i, t in enumerate(res.tokens)),
            (hotsql.UPDATE_METER, {
                "id": m.id, "last_hash": digest, "key_id": res.key_id, "ti": res.ti,
                "ken": res.ken, "tid_epoch": res.tid_epoch, "max_epoch": res.max_epoch,
                "last_tid": res.last_tid}),
            (hotsql.UPSERT_MONTH, {"meter_id": m.id, "month": month, "units": mi(q.units),
                              "fixed_paid": mi(q.fixed_charge), "free_units": mi(q.free_units)}),
        ]
        if q.debt > 0 and m.customer_id is not None:
            writes.append((hotsql.CUSTOMER_DEBT, {"id": m.customer_id, "debt": mi(q.debt)}))
        # the vendor row is the hottest row: touch it last, so its lock is held briefly
        writes.append((hotsql.VENDOR_FLOAT, {"id": vendor.id, "amount": mi(amount)}))
        if h.write(cur, writes) != 1:
            raise InsufficientFloat("the vendor's float does not cover this sale", field="amount")
        return body

    def get_purchase(self, purchase_id: str, caller: Caller) -> dict[str, Any]:
        """The stored answer for a purchase id (what a client asks after a timeout)."""
        caller.require("purchase")
        check_request_id(purchase_id, "purchase_id")
        with self.db.read() as conn:
            stored = self._stored(conn, purchase_id)
            # DELIVERY HOOK (sts.delivery): each channel's status, read with the purchase
            delivery = delivery_outbox.for_request(conn, purchase_id)
        if stored is None or stored.kind != "sale":
            raise UnknownRecord(f"no purchase {purchase_id}", field="purchase_id")
        if caller.role == "vendor" and stored.vendor_id != caller.vendor_id:
            raise UnknownRecord(f"no purchase {purchase_id}", field="purchase_id")
        out: dict[str, Any] = json.loads(stored.response)
        out["status"] = stored.status
        out["delivery"] = delivery
        return out

    # --- reprint, reversal -------------------------------------------------------------------

    def reprint(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        caller.require("reprint")
        pan, receipt_no = body.get("meter"), body.get("receipt_no")
        now = self.now()
        t = transactions.c
        with self.db.begin() as conn:
            stmt = select(t.seq, t.request_id, t.response, t.status, t.vendor_id, t.meter_id)
            if receipt_no is not None:
                if not str(receipt_no).isdigit():
                    raise InputError("receipt_no must be digits", field="receipt_no")
                stmt = stmt.where(t.seq == int(str(receipt_no)), t.kind == "sale")
            elif pan is not None:
                m = self.load_meter(conn, str(pan), lock=False)
                stmt = stmt.where(t.meter_id == m.id, t.kind == "sale").order_by(t.seq.desc())
            else:
                raise InputError("give meter or receipt_no", field="meter")
            row = conn.execute(stmt.limit(1)).first()
            if row is None or (caller.role == "vendor" and row.vendor_id != caller.vendor_id):
                raise UnknownRecord("no such purchase to reprint", field="receipt_no")
            audit.append(self.db, conn, at=now, actor=caller.actor, action="reprint",
                         subject=row.request_id, details={"receipt_no": f"{row.seq:010d}"})
        out: dict[str, Any] = json.loads(row.response)
        out["reprint"] = True
        out["status"] = row.status
        if row.status == "reversed":
            for tok in out["tokens"]:
                tok["token"] = "0" * 20
            out["slip"] = "REVERSED - TOKENS CANCELLED\n"
        else:
            out["slip"] = receipts.slip(out["receipt"], out["tokens"],
                                        title="REPRINT - COPY OF TAX INVOICE")
        return out

    def reverse(self, purchase_id: str, reason: str, caller: Caller) -> tuple[dict[str, Any], bool]:
        """Cancel a sale whose tokens never reached the customer; its TIDs stay used."""
        caller.require("reverse")
        check_request_id(purchase_id, "purchase_id")
        if not isinstance(reason, str) or len(reason.strip()) < 3:
            raise InputError("a reversal needs a reason", field="reason")
        reason = reason.strip()
        rid = f"reversal:{purchase_id}"
        rhash = request_hash({"reverses": purchase_id})
        now = self.now()
        t = transactions.c
        with self.db.begin() as conn:
            stored = self._stored(conn, rid)
            if stored is not None:
                return self._repeat(stored, "reversal", rhash, rid), False
            orig = conn.execute(select(transactions).where(t.request_id == purchase_id)).first()
            if orig is None or orig.kind != "sale":
                raise UnknownRecord(f"no purchase {purchase_id}", field="purchase_id")
            pan = conn.scalar(select(meters.c.pan).where(meters.c.id == orig.meter_id))
            m = self.load_meter(conn, str(pan), lock=True)
            stored = self._stored(conn, rid)
            if stored is not None:
                return self._repeat(stored, "reversal", rhash, rid), False
            if orig.status != "completed":
                raise ReversalNotAllowed("the purchase is already reversed", field="purchase_id")
            prev_key = json.loads(orig.prev_key or "{}")
            original = json.loads(orig.response)
            had_kc = original["receipt"].get("key_change") is not None
            if had_kc and m.last_hash != orig.hash:
                raise ReversalNotAllowed(
                    "the purchase changed the meter's key and later tokens were issued; "
                    "it cannot be reversed", field="purchase_id")
            seq = self._next_seq(conn)
            response = {"reversal_id": rid, "purchase_id": purchase_id,
                        "receipt_no": f"{seq:010d}", "reverses_receipt_no": f"{orig.seq:010d}",
                        "date": now.isoformat(), "reason": reason,
                        "amount": money(-orig.amount), "units": units_str(orig.units),
                        "meter": m.pan,
                        "cancelled_tokens": [tk["token"] for tk in original["tokens"]]}
            self._store(conn, seq=seq, request_id=rid, kind="reversal", m=m, caller=caller,
                        rhash=rhash, response=response, now=now, res=None, month=orig.month,
                        amount=-orig.amount, vat=-orig.vat, charges=-orig.charges,
                        debt=-orig.debt, units=-orig.units, reverses=orig.seq, reason=reason)
            conn.execute(update(transactions).where(t.seq == orig.seq).values(status="reversed"))
            conn.execute(update(tokens).where(tokens.c.txn_seq == orig.seq)
                         .values(status="reversed"))
            free = Decimal(original["receipt"].get("free_units", "0"))
            self._upsert_month(conn, m.id, orig.month, -orig.units, -orig.charges, -free)
            if orig.debt and m.customer_id is not None:
                conn.execute(update(customers).where(customers.c.id == m.customer_id)
                             .values(debt_balance=customers.c.debt_balance + orig.debt))
            if orig.vendor_id is not None:
                conn.execute(update(vendors).where(vendors.c.id == orig.vendor_id)
                             .values(float_balance=vendors.c.float_balance + orig.amount))
            if had_kc:  # the KCTs never reached the meter: it still holds the old key
                restore = {"key_id": prev_key["key_id"], "ti": prev_key["ti"],
                           "ken": prev_key["ken"]}
                if prev_key["tid_epoch"] != m.tid_epoch:
                    restore.update(tid_epoch=prev_key["tid_epoch"], last_tid=prev_key["last_tid"])
                conn.execute(update(meters).where(meters.c.id == m.id).values(**restore))
            audit.append(self.db, conn, at=now, actor=caller.actor, action="reversal",
                         subject=purchase_id, details={"reason": reason, "meter": m.pan,
                                                       "amount": money(orig.amount)})
        return response, True

    # --- engineering tokens and key changes ----------------------------------------------------

    def _engineering_plan(self, m: MeterView, body: dict[str, Any]) -> list[Planned]:
        kind = body.get("type")

        def int_field(name: str, default: int | None = None) -> int:
            v = body.get(name, default)
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(f"{name} must be an integer", field=name)
            return v

        if kind == "clear_tamper":
            return [Planned("ENG", 2, 5, {"pad": 0}, label="CLEAR TAMPER")]
        if kind == "clear_credit":
            reg = int_field("register", 0xFFFF)
            return [Planned("ENG", 2, 1, {"register": reg}, label="CLEAR CREDIT")]
        if kind == "power_limit":
            return [Planned("ENG", 2, 0, {"mpl_watts": int_field("watts")},
                            label="SET POWER LIMIT")]
        if kind == "phase_unbalance":
            return [Planned("ENG", 2, 6, {"mppul_watts": int_field("watts")},
                            label="SET PHASE UNBALANCE LIMIT")]
        if kind == "test":
            wide = len(m.mfr_code) == 4
            control = int_field("control", (1 << (28 if wide else 36)) - 1)
            return [Planned("TEST", 1, 1 if wide else 0,
                            {"control": control, "mfr_code": m.mfr_code}, label="TEST TOKEN")]
        if kind == "key_change":
            return []
        raise InputError(f"type must be one of {', '.join(ENGINEERING_TYPES)}", field="type")

    def _explicit_key_change(self, conn: Connection, m: MeterView,
                             body: dict[str, Any]) -> KeyChange | None:
        to_krn, to_ti = body.get("to_krn"), body.get("to_ti")
        if to_krn is None and to_ti is None:
            return self.key_change_due(conn, m)
        target = m.key
        if to_krn is not None:
            kid = conn.scalar(select(vending_keys.c.id).where(
                vending_keys.c.sgc_id == m.sgc_id, vending_keys.c.krn == to_krn))
            if kid is None:
                raise UnknownRecord(f"SGC {m.sgc} has no key with KRN {to_krn}", field="to_krn")
            target = load_key(conn, int(kid))
        ti = m.ti if to_ti is None else to_ti
        if isinstance(ti, bool) or not isinstance(ti, int) or not 0 <= ti <= 99:
            raise InputError("to_ti must be 0..99", field="to_ti")
        ro = bool(body.get("ro", target.record.base_date != m.key.record.base_date))
        return KeyChange(target, ti, ro)

    def engineering(self, request_id: str, body: dict[str, Any],
                    caller: Caller) -> tuple[dict[str, Any], bool]:
        caller.require("engineering")
        check_request_id(request_id, "request_id")
        reason = body.get("reason")
        if not isinstance(reason, str) or len(reason.strip()) < 3:
            raise InputError("engineering tokens need a reason (work order or note)",
                             field="reason")
        pan = body.get("meter")
        if not isinstance(pan, str):
            raise InputError("meter is required", field="meter")
        rhash = request_hash({k: v for k, v in body.items()})
        now = self.now()
        with self.db.begin() as conn:
            stored = self._stored(conn, request_id)
            if stored is not None:
                return self._repeat(stored, "engineering", rhash, request_id), False
            m = self.load_meter(conn, pan, lock=True)
            stored = self._stored(conn, request_id)
            if stored is not None:
                return self._repeat(stored, "engineering", rhash, request_id), False
            plan = self._engineering_plan(m, body)
            kc = None
            if body.get("type") == "key_change":
                kc = self._explicit_key_change(conn, m, body)
                if kc is None:
                    raise InputError("the meter already holds the current key",
                                     field="type")
            res = self._issue(m, plan, kc, now)
            seq = self._next_seq(conn)
            response = {"request_id": request_id, "receipt_no": f"{seq:010d}",
                        "type": body["type"], "reason": reason.strip(), "date": now.isoformat(),
                        "meter": m.describe(), "tokens": res.public()}
            if kc is not None:
                response["key_change"] = {"to": {"sgc": kc.new_key.record.sgc,
                                                 "krn": kc.new_key.record.krn, "ti": kc.new_ti,
                                                 "base_date": kc.new_key.record.base_date},
                                          "rollover": kc.ro}
            self._store(conn, seq=seq, request_id=request_id, kind="engineering", m=m,
                        caller=caller, rhash=rhash, response=response, now=now, res=res,
                        reason=reason.strip())
            # DELIVERY OUTBOX HOOK (sts.delivery): jobs in the issue's own transaction
            delivery_outbox.enqueue(conn, request_id, body.get("deliver"), now)
            audit.append(self.db, conn, at=now, actor=caller.actor,
                         action=f"engineering:{body['type']}", subject=m.pan,
                         details={"request_id": request_id, "reason": reason.strip(),
                                  "receipt_no": f"{seq:010d}"})
        return response, True

    def key_change_meter(self, conn: Connection, m: MeterView, kc: KeyChange, *, request_id: str,
                         actor: str, reason: str) -> dict[str, Any]:
        """A key change set alone (campaigns), inside the caller's transaction."""
        now = self.now()
        res = self._issue(m, [], kc, now)
        seq = self._next_seq(conn)
        response = {"request_id": request_id, "receipt_no": f"{seq:010d}", "type": "key_change",
                    "reason": reason, "date": now.isoformat(), "meter": m.describe(),
                    "key_change": {"to": {"sgc": kc.new_key.record.sgc,
                                          "krn": kc.new_key.record.krn, "ti": kc.new_ti,
                                          "base_date": kc.new_key.record.base_date},
                                   "rollover": kc.ro},
                    "tokens": res.public()}
        self._store(conn, seq=seq, request_id=request_id, kind="key_change", m=m, caller=None,
                    rhash=request_hash({"request_id": request_id}), response=response, now=now,
                    res=res, reason=reason)
        # DELIVERY OUTBOX HOOK (sts.delivery): an AMI meter gets its key change pushed
        delivery_outbox.enqueue(conn, request_id, None, now)
        audit.append(self.db, conn, at=now, actor=actor, action="key_change", subject=m.pan,
                     details={"request_id": request_id, "krn": kc.new_key.record.krn,
                              "ti": kc.new_ti})
        return response

    # --- verification ------------------------------------------------------------------------

    def verify_token(self, pan: str, token: str, caller: Caller) -> dict[str, Any]:
        """Decode a token with the meter's key and say whether and when this server issued it."""
        caller.require("verify")
        if not isinstance(token, str):
            raise InputError("token must be a 20-digit string", field="token")
        digits = token.replace(" ", "").replace("-", "")
        if len(digits) != 20 or not digits.isdigit():
            raise InputError("token must be 20 digits", field="token")
        with self.db.read() as conn:
            m = self.load_meter(conn, str(pan), lock=False)
            tk = tokens.c
            row = conn.execute(
                select(tk.key_id, tk.kt, tk.ti, tk.ken, tk.status, tk.kind, tk.position,
                       tk.created_at, transactions.c.request_id, transactions.c.seq,
                       transactions.c.kind.label("txn_kind"))
                .join(transactions, transactions.c.seq == tk.txn_seq)
                .where(tk.meter_id == m.id, tk.token == digits)
            ).first()
            if row is not None:
                key = load_key(conn, row.key_id)
                ident = MeterIdentity(m.pan, row.kt, row.ti, row.ken, m.mfr_code)
            else:
                key, ident = m.key, m.identity()
        out: dict[str, Any] = {"meter": m.pan, "token": digits, "issued": row is not None}
        try:
            decoded = self.sm.decode(key.record, ident, digits).as_dict()
            decoded.pop("key_part", None)  # KCTs carry decoder key bits: never shown
            decoded.pop("block", None)
            out["decoded"] = decoded
        except CrcError as exc:
            out["decoded"] = None
            out["error"] = {"code": "TOKEN_REJECTED", "reason": exc.code, "message": exc.message}
        except StsError as exc:
            out["decoded"] = None
            out["error"] = {"code": "TOKEN_REJECTED", "reason": exc.code, "message": exc.message}
        if row is not None:
            out["issue"] = {"request_id": row.request_id, "receipt_no": f"{row.seq:010d}",
                            "transaction": row.txn_kind, "kind": row.kind,
                            "position": row.position, "status": row.status,
                            "issued_at": row.created_at.isoformat(),
                            "key": {"sgc": key.record.sgc, "krn": key.record.krn, "ti": row.ti}}
        return out
