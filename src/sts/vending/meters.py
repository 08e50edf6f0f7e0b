"""What a meter row brings: the meter, its key, tariff, customer, utility and (for a sale) the
selling vendor, read by name from one query (`sts.vending.storage.statements.METER_COLUMNS`).

`read_meter` is the one way every use case finds a meter; `meter_pan` is the one rule for how
a meter may be named (the number printed on the meter or its 18-digit PAN).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sts.codec.pan import parse_meter_number
from sts.errors import UnknownMeter, UnknownRecord
from sts.vending.i18n import N_
from sts.vending.keys.security_module import KeyRecord, MeterIdentity
from sts.vending.storage.statements import KEY_COLUMNS, HotSQL, Row
from sts.vending.tariff import Block, Tariff

SERVICES = ("electricity", "water", "gas", "time")
UNIT_NAMES = {"electricity": "kWh", "water": "kl", "gas": "m3", "time": "min"}


@dataclass(frozen=True)
class KeyInfo:
    record: KeyRecord
    ken: int
    credit_limit: Decimal | None


@dataclass(frozen=True)
class VendorView:
    """The vendor of the caller, as the meter query sees it (authorised for the meter's SGC?)."""

    id: int
    name: str
    address: str
    status: str
    float_balance: Decimal
    authorised: bool


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
    time_zone: str = "UTC"
    vendor: VendorView | None = None
    ami: bool = False  # AMI-connected: its tokens are pushed to it (sts.delivery)
    # a scheduled tariff version takes effect at this UTC time (`sts.vending.tariff_history`)
    tariff_pending_from: datetime | None = None

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


@lru_cache(maxsize=256)
def _blocks(text: str) -> tuple[Block, ...]:
    """A tariff's parsed blocks, by their JSON text (immutable, so safe to share)."""
    return Tariff.blocks_from_json(text)


def key_info(r: Row, hot: HotSQL) -> KeyInfo:
    """A vending key from a row with the `key_*` columns of `hotsql.KEY_COLUMNS`."""
    rec = KeyRecord(
        id=r["key_id"], sgc=r["sgc"], krn=r["key_krn"], key_type=r["key_type"],
        dkga=r["key_dkga"], ea=r["key_ea"], base_date=r["key_base_date"],
        table_set=r["key_table_set"], module=r["key_module"], blob=bytes(r["key_blob"]),
        issued_until=hot.ts_out(r["key_issued_until"]), kct_until=hot.ts_out(r["key_kct_until"]))
    return KeyInfo(rec, r["key_ken"], hot.money_out(r["key_credit_limit"]))


_KEY_NAMES = tuple(n for n, _ in KEY_COLUMNS)
_TARIFF_NAMES = ("tariff_id", "tariff_name", "tariff_description", "tariff_ti", "tariff_blocks",
                 "vat_rate", "fixed_monthly", "debt_share", "free_units", "min_amount",
                 "max_amount")


def _tariff(r: Row, hot: HotSQL) -> Tariff:
    dec = hot.money
    return Tariff(
        name=r["tariff_name"], description=r["tariff_description"], ti=r["tariff_ti"],
        blocks=_blocks(r["tariff_blocks"]), vat_rate=dec(r["vat_rate"]),
        fixed_monthly=dec(r["fixed_monthly"]), debt_share=dec(r["debt_share"]),
        free_units=dec(r["free_units"]), min_amount=dec(r["min_amount"]),
        max_amount=hot.money_out(r["max_amount"]),
    )


def meter_views(rows: list[Row], hot: HotSQL) -> list[MeterView]:
    """`meter_view` of many rows (a campaign chunk): rows naming the same key or tariff with
    the same columns share one (immutable) KeyInfo or Tariff, built once."""
    keys: dict[tuple[Any, ...], KeyInfo] = {}
    tariffs: dict[tuple[Any, ...], Tariff] = {}
    out = []
    for r in rows:
        kv = tuple([r[n] for n in _KEY_NAMES])
        key = keys.get(kv)
        if key is None:
            key = keys[kv] = key_info(r, hot)
        tv = tuple([r[n] for n in _TARIFF_NAMES])
        tariff = tariffs.get(tv)
        if tariff is None:
            tariff = tariffs[tv] = _tariff(r, hot)
        out.append(meter_view(r, hot, key=key, tariff=tariff))
    return out


def meter_view(r: Row, hot: HotSQL, *, key: KeyInfo | None = None,
               tariff: Tariff | None = None) -> MeterView:
    """A meter from a row of `hotsql.METER_COLUMNS` (`key`, `tariff`: already built from
    this row's columns)."""
    dec = hot.money
    if tariff is None:
        tariff = _tariff(r, hot)
    customer = None
    if r["customer_id"] is not None:
        customer = {"account_no": r["account_no"], "name": r["customer_name"],
                    "address": r["customer_address"]}
    vendor = None
    if r["vendor_id"] is not None:
        vendor = VendorView(r["vendor_id"], r["vendor_name"], r["vendor_address"],
                            r["vendor_status"], dec(r["float_balance"]),
                            r["vendor_authorised"] is not None)
    return MeterView(
        id=r["meter_id"], pan=r["pan"], status=r["status"], status_reason=r["status_reason"],
        service=r["service"], kt=r["kt"], ti=r["ti"], ken=r["ken"], mfr_code=r["mfr_code"],
        last_tid=r["last_tid"], tid_epoch=r["tid_epoch"], max_epoch=r["max_epoch"],
        last_hash=r["last_hash"], key=key or key_info(r, hot), sgc_id=r["sgc_id"],
        current_key_id=r["current_key_id"], tariff_id=r["tariff_id"], tariff=tariff,
        customer=customer, customer_id=r["customer_id"], debt_balance=dec(r["debt_balance"]),
        utility={"name": r["utility_name"], "address": r["utility_address"],
                 "vat_reg_num": r["vat_reg_num"], "currency": r["currency"],
                 "locale": r["locale"] or ""},
        time_zone=r["time_zone"] or "UTC", vendor=vendor, ami=bool(r["ami"]),
        tariff_pending_from=hot.ts_out(r["tariff_pending_from"]),
    )


def meter_pan(value: object, field: str = "meter") -> str:
    """The 18-digit PAN of a meter named by the number printed on it (11 or 13 digits, spaces
    or dashes allowed) or by its PAN; a malformed number or a wrong check digit is
    INVALID_METER_NUMBER (`sts.codec.pan.parse_meter_number`: the one rule)."""
    return parse_meter_number(value, field=field).pan


def read_meter(hot: HotSQL, cur: Any, meter: object, *, lock: bool,
               vendor_id: int | None = None, field: str = "meter") -> MeterView:
    """The meter named `meter`, locked for the transaction when `lock`; with `vendor_id`, the
    view carries that vendor as the sale sees it."""
    pan = meter_pan(meter, field)
    q = hot.meter_locked if lock else hot.meter
    row = q.one(cur, {"pan": pan, "vendor_id": vendor_id})
    if row is None:
        raise UnknownMeter(N_("meter {pan} is not registered"), pan=pan, field=field)
    return meter_view(row, hot)


def read_key(hot: HotSQL, cur: Any, key_id: int) -> KeyInfo:
    row = hot.key.one(cur, {"id": key_id})
    if row is None:
        raise UnknownRecord(f"vending key {key_id} does not exist", field="key")
    return key_info(row, hot)
