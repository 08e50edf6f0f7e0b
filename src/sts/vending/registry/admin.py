"""Registry administration (KMC side and operations): utilities, supply groups and their vending
keys, tariffs, customers, meters, vendors, operators and API keys; and the demo data set.

Every change is one transaction with an audit entry.  Raw vending keys go straight into the
security module and are never returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from sts.codec.pan import MeterPan, parse_meter_number
from sts.engine.model import check_identity
from sts.errors import AlreadyExists, ApprovalNeeded, InputError, UnknownRecord
from sts.vending import audit, tariff_history
from sts.vending.access import credentials
from sts.vending.access.api_keys import hash_key, new_key
from sts.vending.access.policy import check_role
from sts.vending.access.usernames import check_username, username_key
from sts.vending.clock import Clock, utc, wall_clock, zone
from sts.vending.floats import KINDS as FLOAT_KINDS
from sts.vending.floats import needs_approval
from sts.vending.i18n import N_
from sts.vending.keys.security_module import VENDING_KEY_BYTES, SecurityModule
from sts.vending.meters import SERVICES, meter_pan
from sts.vending.money_text import check_locale
from sts.vending.registry.importer import Progress, import_meters
from sts.vending.storage.database import Database
from sts.vending.storage.tables import (
    api_keys,
    customers,
    meters,
    operators,
    supply_groups,
    tariffs,
    utilities,
    vending_keys,
    vendor_sgcs,
    vendors,
)
from sts.vending.storage.tables_office import float_movements
from sts.vending.tariff import Block, Tariff, cents, money, parse_decimal

KEY_TYPES = ("VUDK", "VDDK", "VCDK")


def default_table_set(sm: SecurityModule) -> str:
    """The STA table set of a new EA07 key when none is named: the production tables when
    the server was given them (`--sta-tables`), else the standard's sample tables."""
    return "production" if sm.sta_tables else "sample"


@dataclass
class Registry:
    db: Database
    sm: SecurityModule
    actor: str = "cli"
    clock: Clock = wall_clock

    def _now(self) -> datetime:
        return utc(self.clock())

    def _audit(self, conn: Connection, action: str, subject: str, **details: Any) -> None:
        audit.append(self.db, conn, at=self._now(), actor=self.actor,
                     action=action, subject=subject, details=details)

    def _insert(self, conn: Connection, table: Any, what: str, **values: Any) -> int:
        try:
            with conn.begin_nested():
                return int(conn.execute(insert(table).values(**values)
                                        .returning(table.c.id)).scalar_one())
        except IntegrityError:
            raise AlreadyExists(N_("{what} already exists"), field=what, what=what) from None

    @staticmethod
    def _id(conn: Connection, table: Any, column: Any, value: Any, what: str) -> int:
        found = conn.scalar(select(table.c.id).where(column == value))
        if found is None:
            raise UnknownRecord(N_("{what} {value} does not exist"), field=what, what=what,
                                value=repr(value))
        return int(found)

    # --- utility, SGC, keys ----------------------------------------------------------------

    def add_utility(self, name: str, *, address: str = "", vat_reg_num: str = "",
                    currency: str = "ZAR", time_zone: str = "UTC",
                    locale: str | None = None) -> int:
        zone(time_zone)
        if locale is not None:
            locale = check_locale(locale)
        with self.db.begin() as conn:
            uid = self._insert(conn, utilities, "utility", name=name, address=address,
                               vat_reg_num=vat_reg_num, currency=currency, time_zone=time_zone,
                               locale=locale)
            self._audit(conn, "utility.add", name, time_zone=time_zone, locale=locale)
        return uid

    def set_locale(self, utility: str, locale: str) -> None:
        """How the utility's money is written and its pages' default language (`fr_CI`)."""
        locale = check_locale(locale)
        with self.db.begin() as conn:
            uid = self._id(conn, utilities, utilities.c.name, utility, "utility")
            conn.execute(update(utilities).where(utilities.c.id == uid).values(locale=locale))
            self._audit(conn, "utility.locale", utility, locale=locale)

    def set_time_zone(self, utility: str, time_zone: str) -> None:
        """The IANA zone whose local minutes the utility's TIDs count from now on."""
        zone(time_zone)
        with self.db.begin() as conn:
            uid = self._id(conn, utilities, utilities.c.name, utility, "utility")
            conn.execute(update(utilities).where(utilities.c.id == uid)
                         .values(time_zone=time_zone))
            self._audit(conn, "utility.time_zone", utility, time_zone=time_zone)

    def add_sgc(self, sgc: str, *, utility: str, name: str = "") -> int:
        check_identity(kt=2, sgc=sgc, ti=1, krn=1)
        with self.db.begin() as conn:
            uid = self._id(conn, utilities, utilities.c.name, utility, "utility")
            sid = self._insert(conn, supply_groups, "sgc", sgc=sgc, name=name, utility_id=uid)
            self._audit(conn, "sgc.add", sgc, utility=utility)
        return sid

    def add_key(self, sgc: str, krn: int, *, dkga: int = 4, ea: int = 7, base_date: int = 2014,
                key_type: str = "VUDK", table_set: str | None = None, ken: int = 255,
                issued_until: datetime | None = None, kct_until: datetime | None = None,
                credit_limit: Decimal | None = None, raw: bytes | None = None,
                make_current: bool = True) -> int:
        """A vending key for an SGC: generated by the security module, or imported from `raw`."""
        check_identity(kt=2, sgc=sgc, ti=1, krn=krn)
        if key_type not in KEY_TYPES:
            raise InputError(f"key_type must be one of {', '.join(KEY_TYPES)}", field="key_type")
        if dkga not in VENDING_KEY_BYTES:
            raise InputError("dkga must be 2 or 4", field="dkga")
        if ea not in (7, 11):
            raise InputError("ea must be 7 (STA) or 11 (MISTY1)", field="ea")
        if dkga == 2 and ea != 7:
            raise InputError("DKGA02 makes 64-bit keys: use EA07", field="ea")
        if base_date not in (1993, 2014, 2035):
            raise InputError("base_date must be 1993, 2014 or 2035", field="base_date")
        if ea == 7:
            table_set = table_set or default_table_set(self.sm)
            if table_set not in ("sample", "production"):
                raise InputError("table_set must be sample or production", field="table_set")
        else:
            table_set = None
        with self.db.begin() as conn:
            sid = self._id(conn, supply_groups, supply_groups.c.sgc, sgc, "sgc")
            if raw is None:
                blob, origin = self.sm.create_key(sgc=sgc, krn=krn, dkga=dkga), "generated"
            else:
                blob, origin = self.sm.import_key(raw, sgc=sgc, krn=krn, dkga=dkga), "imported"
            kid = self._insert(
                conn, vending_keys, "key", sgc_id=sid, krn=krn, key_type=key_type, dkga=dkga,
                ea=ea, base_date=base_date, table_set=table_set, ken=ken,
                issued_until=issued_until, kct_until=kct_until, credit_limit=credit_limit,
                credit_used=Decimal(0), module=self.sm.name, blob=blob, origin=origin,
                created_at=self._now())
            if make_current:
                conn.execute(update(supply_groups).where(supply_groups.c.id == sid)
                             .values(current_key_id=kid))
            self._audit(conn, "key.add", f"{sgc}/{krn}", origin=origin, dkga=dkga, ea=ea,
                        base_date=base_date, table_set=table_set, current=make_current)
        return kid

    def set_current_key(self, sgc: str, krn: int) -> None:
        with self.db.begin() as conn:
            sid = self._id(conn, supply_groups, supply_groups.c.sgc, sgc, "sgc")
            kid = conn.scalar(select(vending_keys.c.id).where(vending_keys.c.sgc_id == sid,
                                                             vending_keys.c.krn == krn))
            if kid is None:
                raise UnknownRecord(f"SGC {sgc} has no key KRN {krn}", field="krn")
            conn.execute(update(supply_groups).where(supply_groups.c.id == sid)
                         .values(current_key_id=kid))
            self._audit(conn, "key.current", f"{sgc}/{krn}")

    def list_keys(self) -> list[dict[str, Any]]:
        k = vending_keys.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(supply_groups.c.sgc, k.krn, k.key_type, k.dkga, k.ea, k.base_date,
                       k.table_set, k.ken, k.issued_until, k.kct_until, k.credit_limit,
                       k.credit_used, k.origin, k.module,
                       (supply_groups.c.current_key_id == k.id).label("current"))
                .join(supply_groups, supply_groups.c.id == k.sgc_id)
                .order_by(supply_groups.c.sgc, k.krn))
            return [{key: (str(v) if isinstance(v, Decimal | datetime) else v)
                     for key, v in r._mapping.items()} for r in rows]

    # --- tariffs, customers, meters -----------------------------------------------------------

    def add_tariff(self, name: str, *, price: str | None = None,
                   blocks: list[tuple[str | None, str]] | None = None, vat_rate: str = "0",
                   fixed_monthly: str = "0", debt_share: str = "0", free_units: str = "0",
                   min_amount: str = "0", max_amount: str | None = None, ti: int | None = None,
                   description: str = "") -> int:
        if blocks is None:
            if price is None:
                raise InputError(N_("give a price or blocks"), field="price")
            blocks = [(None, price)]

        def dec(v: Any, f: str) -> Decimal:
            d = parse_decimal(v, f)
            assert d is not None
            return d

        t = Tariff(
            name=name, description=description, ti=ti,
            blocks=tuple(Block(None if u is None else dec(u, "blocks.up_to"),
                               dec(p, "blocks.price")) for u, p in blocks),
            vat_rate=dec(vat_rate, "vat_rate"), fixed_monthly=dec(fixed_monthly, "fixed_monthly"),
            debt_share=dec(debt_share, "debt_share"), free_units=dec(free_units, "free_units"),
            min_amount=dec(min_amount, "min_amount"),
            max_amount=parse_decimal(max_amount, "max_amount", allow_none=True),
        )
        with self.db.begin() as conn:
            tid = self._insert(conn, tariffs, "tariff", name=name, description=description, ti=ti,
                               blocks=t.blocks_json(), vat_rate=t.vat_rate,
                               fixed_monthly=t.fixed_monthly, debt_share=t.debt_share,
                               free_units=t.free_units, min_amount=t.min_amount,
                               max_amount=t.max_amount)
            tariff_history.add_version(conn, tid, t, effective_from=self._now(),
                                       actor=self.actor, now=self._now())
            self._audit(conn, "tariff.add", name)
        return tid

    def add_customer(self, account_no: str, name: str, *, address: str = "", phone: str = "",
                     debt: str = "0") -> int:
        with self.db.begin() as conn:
            cid = self._insert(conn, customers, "customer", account_no=account_no, name=name,
                               address=address, phone=phone,
                               debt_balance=parse_decimal(debt, "debt"))
            self._audit(conn, "customer.add", account_no, debt=debt)
        return cid

    def add_meter(self, pan: str, *, sgc: str, tariff: str, krn: int | None = None, ti: int = 1,
                  kt: int = 2, ken: int | None = None, service: str = "electricity",
                  customer: str | None = None, last_tid: int = 0, ami: bool = False) -> int:
        mp: MeterPan = parse_meter_number(pan, field="pan")
        check_identity(kt=kt, sgc=sgc, ti=ti, krn=krn or 1)
        if service not in SERVICES:
            raise InputError(N_("service must be one of {services}"), field="service",
                             services=", ".join(SERVICES))
        with self.db.begin() as conn:
            sg = conn.execute(select(supply_groups.c.id, supply_groups.c.current_key_id)
                              .where(supply_groups.c.sgc == sgc)).first()
            if sg is None:
                raise UnknownRecord(N_("SGC {sgc} does not exist"), field="sgc", sgc=sgc)
            if krn is None:
                key_id = sg.current_key_id
            else:
                key_id = conn.scalar(select(vending_keys.c.id).where(
                    vending_keys.c.sgc_id == sg.id, vending_keys.c.krn == krn))
            if key_id is None:
                if krn:
                    raise UnknownRecord(N_("SGC {sgc} has no vending key KRN {krn}"),
                                        field="krn", sgc=sgc, krn=krn)
                raise UnknownRecord(N_("SGC {sgc} has no vending key"), field="krn", sgc=sgc)
            key_ken = conn.scalar(select(vending_keys.c.ken).where(vending_keys.c.id == key_id))
            tariff_id = self._id(conn, tariffs, tariffs.c.name, tariff, "tariff")
            cust_id = (self._id(conn, customers, customers.c.account_no, customer, "customer")
                       if customer else None)
            mid = self._insert(conn, meters, "meter", pan=mp.pan, customer_id=cust_id,
                               tariff_id=tariff_id, sgc_id=sg.id, key_id=key_id, ti=ti, kt=kt,
                               ken=key_ken if ken is None else ken, mfr_code=mp.mfr_code,
                               service=service, status="active", status_reason="",
                               last_tid=last_tid, tid_epoch=0, max_epoch=0, last_hash="",
                               created_at=self._now(), ami=ami)
            self._audit(conn, "meter.add", mp.pan, sgc=sgc, ti=ti, kt=kt, ami=ami)
        return mid

    def set_meter_status(self, pan: str, status: str, reason: str = "") -> None:
        if status not in ("active", "blocked"):
            raise InputError(N_("status must be active or blocked"), field="status")
        pan = meter_pan(pan, "pan")
        with self.db.begin() as conn:
            mid = self._id(conn, meters, meters.c.pan, pan, "meter")
            conn.execute(update(meters).where(meters.c.id == mid)
                         .values(status=status, status_reason=reason))
            self._audit(conn, f"meter.{status}", pan, reason=reason)

    def set_meter_ami(self, pan: str, ami: bool) -> None:
        """Mark a meter AMI-connected (its sales are pushed to it: sts.delivery) or not."""
        pan = meter_pan(pan, "pan")
        with self.db.begin() as conn:
            mid = self._id(conn, meters, meters.c.pan, pan, "meter")
            conn.execute(update(meters).where(meters.c.id == mid).values(ami=ami))
            self._audit(conn, "meter.ami", pan, ami=ami)

    # --- vendors, operators, API keys --------------------------------------------------------

    def add_vendor(self, name: str, *, float_balance: str = "0", address: str = "",
                   sgcs: list[str] | None = None) -> int:
        with self.db.begin() as conn:
            vid = self._insert(conn, vendors, "vendor", name=name, address=address,
                               float_balance=parse_decimal(float_balance, "float"),
                               status="active")
            for sgc in sgcs or []:
                sid = self._id(conn, supply_groups, supply_groups.c.sgc, sgc, "sgc")
                conn.execute(insert(vendor_sgcs).values(vendor_id=vid, sgc_id=sid))
            self._audit(conn, "vendor.add", name, float=float_balance, sgcs=sgcs or [])
        return vid

    def authorise_vendor(self, vendor: str, sgc: str) -> None:
        with self.db.begin() as conn:
            vid = self._id(conn, vendors, vendors.c.name, vendor, "vendor")
            sid = self._id(conn, supply_groups, supply_groups.c.sgc, sgc, "sgc")
            conn.execute(insert(vendor_sgcs).values(vendor_id=vid, sgc_id=sid))
            self._audit(conn, "vendor.authorise", vendor, sgc=sgc)

    def top_up(self, vendor: str, amount: str, reference: str = "top-up", *,
               kind: str = "top_up") -> Decimal:
        """Add (or for an adjustment, add or take) money to a vendor's float; the new balance.
        Each movement is kept with its reference in the float ledger (`sts.vending.floats`).
        A top-up above the utility's approval amount is refused here (APPROVAL_NEEDED): the
        faces ask `float_approvals.request_top_up`, which records it for a second approver."""
        value, reference = check_float_move(amount, reference, kind)
        with self.db.begin() as conn:
            limit = needs_approval(conn, vendor, value, kind)
            if limit is not None:
                raise ApprovalNeeded(N_("a top-up above {amount} needs a second approver: "
                                        "request it and have another operator approve it"),
                                     field="amount", amount=cents(limit))
            return self.move_float(conn, vendor, value, reference, kind)

    def move_float(self, conn: Connection, vendor: str, value: Decimal, reference: str,
                   kind: str, *, actor: str | None = None) -> Decimal:
        """The float ledger write, in the caller's transaction: balance and movement row."""
        now = self.clock().replace(microsecond=0)
        row = conn.execute(self.db.locked(select(vendors.c.id, vendors.c.float_balance)
                                         .where(vendors.c.name == vendor))).first()
        if row is None:
            raise UnknownRecord(N_("vendor {name} does not exist"), field="vendor",
                                name=repr(vendor))
        balance = Decimal(row.float_balance) + value
        if balance < 0:
            raise InputError(N_("the float cannot go below zero"), field="amount")
        conn.execute(update(vendors).where(vendors.c.id == row.id)
                     .values(float_balance=vendors.c.float_balance + value))
        conn.execute(insert(float_movements).values(
            vendor_id=row.id, kind=kind, amount=value, balance_after=balance,
            reference=reference, actor=actor or self.actor, created_at=now))
        self._audit(conn, f"vendor.{kind}", vendor, amount=money(value), reference=reference,
                    balance=money(balance))
        return balance

    def set_top_up_approval(self, utility: str, above: str | None) -> None:
        """Float top-ups above `above` (for this utility's vendors) wait for a second
        approver; None: none do."""
        value = None if above in (None, "") else parse_decimal(above, "top_up_approval_above")
        with self.db.begin() as conn:
            uid = self._id(conn, utilities, utilities.c.name, utility, "utility")
            conn.execute(update(utilities).where(utilities.c.id == uid)
                         .values(top_up_approval_above=value))
            self._audit(conn, "utility.top_up_approval", utility,
                        above=None if value is None else money(value))


    def add_operator(self, username: str, role: str, *, name: str = "",
                     vendor: str | None = None) -> int:
        check_role(role)
        username = check_username(username)
        with self.db.begin() as conn:
            vid = self._id(conn, vendors, vendors.c.name, vendor, "vendor") if vendor else None
            taken = conn.scalar(select(operators.c.username)
                                .where(operators.c.username_key == username_key(username)))
            if taken is not None:
                raise AlreadyExists(N_("username {username} is taken by operator {taken} "
                                       "(names that differ only in case or form are the same)"),
                                    field="username", username=repr(username),
                                    taken=repr(taken))
            oid = self._insert(conn, operators, "operator", username=username,
                               username_key=username_key(username), name=name,
                               role=role, vendor_id=vid, active=True)
            self._audit(conn, "operator.add", username, role=role)
        return oid

    def add_api_key(self, role: str, *, label: str = "", vendor: str | None = None,
                    operator: str | None = None) -> str:
        """A new API key; the only time it is shown.  Stored as its SHA-256."""
        check_role(role)
        key = new_key()
        with self.db.begin() as conn:
            vid = self._id(conn, vendors, vendors.c.name, vendor, "vendor") if vendor else None
            oid = (self._id(conn, operators, operators.c.username_key,
                            username_key(operator), "operator")
                   if operator else None)
            kid = self._insert(conn, api_keys, "api_key", key_hash=hash_key(key),
                               prefix=key[:12], role=role, label=label or role,
                               operator_id=oid, vendor_id=vid, created_at=self._now())
            self._audit(conn, "api_key.add", f"key:{kid}", role=role, prefix=key[:12],
                        vendor=vendor)
        return key

    def revoke_api_key(self, prefix: str) -> int:
        with self.db.begin() as conn:
            done = conn.execute(update(api_keys).where(api_keys.c.prefix == prefix,
                                                       api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=self._now()))
            if done.rowcount == 0:
                raise UnknownRecord(N_("no active API key starting {prefix}"), field="prefix",
                                    prefix=prefix)
            self._audit(conn, "api_key.revoke", prefix)
        return int(done.rowcount)

    def is_empty(self) -> bool:
        with self.db.read() as conn:
            return conn.scalar(select(utilities.c.id).limit(1)) is None


def check_float_move(amount: str, reference: str, kind: str) -> tuple[Decimal, str]:
    """A float movement's amount and reference, checked (the rules of every face)."""
    value = parse_decimal(amount, "amount")
    assert value is not None
    if kind not in FLOAT_KINDS:
        raise InputError(N_("kind must be one of {kinds}"), field="kind",
                         kinds=", ".join(FLOAT_KINDS))
    if kind == "top_up" and value <= 0:
        raise InputError(N_("a top-up must be more than 0"), field="amount")
    if value == 0 or abs(value) > Decimal("1e12"):
        raise InputError(N_("the amount must be non-zero and below 10^12"), field="amount")
    reference = (reference or "").strip()
    if not 3 <= len(reference) <= 80:
        raise InputError(N_("give the payment reference (3-80 characters): deposit slip, EFT "
                            "reference or note"), field="reference")
    return value, reference


DEMO_SGC = "999910"
DEMO_UTILITY = "Demo Utility"
DEMO_VENDOR = "Demo Vendor"
DEMO_XMLVEND_CLIENT = "6009990000018"


def demo_pans(count: int) -> list[str]:
    return [MeterPan.from_drn(_drn(i)).pan for i in range(1, count + 1)]


def _drn(i: int) -> str:
    from sts.codec.pan import luhn_check_digit

    body = f"04{10000000 + i:08d}"
    return body + str(luhn_check_digit(body))


DEMO_CHANNEL = "M-Pesa"


def add_demo_channel(reg: Registry, name: str = DEMO_CHANNEL) -> str:
    """The demo's mobile-money channel: a vendor whose float pays for paybill sales."""
    reg.add_vendor(name, float_balance="1000000", sgcs=[DEMO_SGC],
                   address="M-Pesa paybill (demo)")
    return name


def add_demo_phones(reg: Registry) -> dict[str, str]:
    """Numbers on record for the demo's customers that have none (+2547110000NN for ACCnnNN):
    the self-service page's "my tokens" sends its one-time code there."""
    out = {}
    with reg.db.begin() as conn:
        for row in conn.execute(select(customers.c.id, customers.c.account_no).where(
                customers.c.account_no.like("ACC%"), customers.c.phone == "")).all():
            digits = "".join(ch for ch in row.account_no if ch.isdigit())[-2:].rjust(2, "0")
            phone = f"+2547110000{digits}"
            conn.execute(update(customers).where(customers.c.id == row.id).values(phone=phone))
            out[row.account_no] = phone
    return out


def fill_demo(reg: Registry, *, production_tables: bool, meters_count: int = 5,
              progress: Progress | None = None) -> dict[str, Any]:
    """A demo utility in an empty database; returns the API keys (shown once) and meters.
    The meters go in through the bulk import (`sts.vending.registry.importer`)."""
    if not reg.is_empty():
        raise AlreadyExists("the database already holds data; demo needs an empty one",
                            field="db")
    table = "production" if production_tables else default_table_set(reg.sm)
    reg.add_utility(DEMO_UTILITY, address="1 Demo Street, Demo Town", vat_reg_num="4000000001")
    reg.add_sgc(DEMO_SGC, utility=DEMO_UTILITY, name="Demo supply group")
    reg.add_key(DEMO_SGC, 1, dkga=4, ea=7, base_date=2014, table_set=table)
    reg.add_tariff("Flat", price="2.50", vat_rate="0.15", min_amount="5", max_amount="5000",
                   description="flat rate 2.50/kWh excl. VAT", ti=1)
    reg.add_vendor(DEMO_VENDOR, float_balance="1000000", sgcs=[DEMO_SGC],
                   address="Demo Mall, shop 4")
    reg.set_top_up_approval(DEMO_UTILITY, "10000")  # four-eyes above 10 000
    pans = demo_pans(meters_count)
    rows = ((i, {"meter": pan, "sgc": DEMO_SGC, "krn": 1, "ti": 1, "kt": 2, "tariff": "Flat",
                 "account_no": f"ACC{i:04d}", "name": f"Demo Customer {i}",
                 "address": f"{i} Demo Road"}) for i, pan in enumerate(pans, 1))
    done = import_meters(reg.db, rows, actor=reg.actor, at=reg._now(), source="demo",
                         progress=progress)
    if not done.ok:  # cannot happen with the rows above; never leave a half demo silently
        raise InputError(f"demo meters refused: {done.rejected[0].message}", field="meters")
    with reg.db.begin() as conn:  # the demo's meters are AMI-connected (docs/delivery.md)
        for start in range(0, len(pans), 5000):
            conn.execute(update(meters).where(meters.c.pan.in_(pans[start:start + 5000]))
                         .values(ami=True))
    keys = {}
    for role in ("vendor", "supervisor", "engineer", "admin", "auditor"):
        reg.add_operator(f"demo-{role}", role, vendor=DEMO_VENDOR
                         if role in ("vendor", "supervisor") else None)
        keys[role] = reg.add_api_key(role, label=f"demo {role}", operator=f"demo-{role}",
                                     vendor=DEMO_VENDOR if role in ("vendor", "supervisor")
                                     else None)
    user, password = credentials.issue(reg.db, vendor=DEMO_VENDOR, username="demo-electrum",
                                       label="demo Electrum switch", actor=reg.actor,
                                       now=reg.clock())
    from sts.vending.access import vend_clients  # XMLVend: a demo client system (Hexing profile)

    vend_clients.add_client(reg.db, client_id=DEMO_XMLVEND_CLIENT, vendor=DEMO_VENDOR,
                            profile="hexing", label="demo XMLVend client", actor=reg.actor,
                            now=reg.clock())
    op_password = vend_clients.add_operator(reg.db, client_id=DEMO_XMLVEND_CLIENT,
                                            op_name="demo-op", actor=reg.actor, now=reg.clock())
    return {"api_keys": keys, "meters": pans, "sgc": DEMO_SGC, "vendor": DEMO_VENDOR,
            "table_set": table, "tariff": "Flat",
            "electrum": {"username": user, "password": password},
            "xmlvend": {"client_id": DEMO_XMLVEND_CLIENT, "terminal_id": "0000000000001",
                        "operator": "demo-op", "password": op_password, "profile": "hexing",
                        "url": "http://127.0.0.1:8062/xmlvend"}}
