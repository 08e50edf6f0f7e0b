"""The vectorised batch path for the common case: credit tokens for EA07 and EA11 meters.

A batch of JSON Lines is mostly `meter` (DKGA02/04 identity or a bare decoder key, EA07 or
EA11) + `request` (class 0, subclass 0-3, units).  For those lines every expensive step runs
over the whole chunk at once: PAN checks, key derivation (`sts.engine.fast_keys`: DES of
DKGA02 per vending key, DKGA04 HMAC past precomputed pads), CRC, STA or MISTY1 (numpy),
class-bit transposition.  A line is taken only when it is plainly well-formed; anything else
(other token types, odd values or types, errors) goes to the generic path, which stays the
single authority for results and error messages.  `tests/engine/test_fast.py` holds the two
paths to identical output.

The per-line Python is kept to dictionary reads and caches: a meter's shape (all but its
PAN) is checked once per chunk, an `issued_at` or `units` text is converted once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from typing import Any, TypeGuard

import numpy as np

from sts.codec.amount import TRANSFER_MAX, plain_tenths
from sts.codec.crc import TABLE as CRC_TABLE
from sts.codec.layouts import layout_for
from sts.codec.tid import BASE_DATES, MINUTES_PER_DAY, RESERVED_MINUTE_OF_DAY, TID_MAX
from sts.crypto.sta import TableSet, table_set
from sts.engine.fast_keys import MeterShape, pans_valid, run_ciphers

U64 = np.uint64
_CRC = np.array(CRC_TABLE, dtype=np.uint32)
_FULL_KEYS = frozenset({"pan", "dkga", "ea", "vending_key", "kt", "sgc", "ti", "krn", "ken",
                        "base_date", "table_set", "decoder_key"})
_KEY_ONLY = frozenset({"ea", "table_set", "decoder_key", "base_date", "ken"})
_REQUEST_KEYS = frozenset({"class", "subclass", "issued_at", "tid", "rnd", "units"})
_GENERATE_KEYS = frozenset({"id", "meter", "request"})
_DECODE_KEYS = frozenset({"id", "token", "meter"})
_SHAPE_FIELDS = ("ea", "vending_key", "dkga", "kt", "sgc", "ti", "krn", "ken", "base_date",
                 "table_set", "decoder_key")
_BASE_ORDINAL = {year: dt.toordinal() for year, dt in BASE_DATES.items()}
_TRANSFER_LIMITS = (16383, 16383 * 10 + 16384, 16383 * 100 + 180224)
_OFFSETS = np.array([0, 16384, 180224, 1818624], dtype=np.int64)
_POW = np.array([1, 10, 100, 1000], dtype=np.int64)
_DESCRIPTIONS = {sub: layout_for(0, sub).description for sub in range(4)}
_KINDS = {sub: layout_for(0, sub).name for sub in range(4)}
_MASK_27_28 = ~((1 << 28) | (1 << 27)) & ((1 << 64) - 1)
_KEY_BYTES = {7: 8, 11: 16}
_CACHE_LIMIT = 100_000


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _json_id(value: Any) -> str:
    return encode_basestring_ascii(value) if type(value) is str else _encode(value)


def _tenths(units: str) -> int | None:
    """Tenths, rounded up, for a plain `123.45` string within the TransferAmount range; None
    for anything else (the generic path then says why)."""
    tenths = plain_tenths(units)
    return tenths if tenths is not None and tenths <= TRANSFER_MAX else None


def _minutes(issued_at: str, base_date: int) -> int | None:
    if len(issued_at) not in (16, 19):
        return None
    try:
        dt = datetime.fromisoformat(issued_at)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        return None
    minutes = (dt.toordinal() - _BASE_ORDINAL[base_date]) * MINUTES_PER_DAY + dt.hour * 60 + dt.minute
    if minutes % MINUTES_PER_DAY == RESERVED_MINUTE_OF_DAY:
        minutes += 1
    return minutes if 0 <= minutes <= TID_MAX else None


# pure conversions of request texts, kept across chunks (bounded)
_TENTHS: dict[str, int | None] = {}
_MINUTES: dict[tuple[str, int], int | None] = {}


def _int_in(value: Any, low: int, high: int) -> TypeGuard[int]:
    return type(value) is int and low <= value <= high


def _shape(meter: dict[str, Any], tables_file: str | None,
           tables: dict[str, TableSet]) -> MeterShape | None:
    """The shape of a plainly well-formed EA07/EA11 meter object, else None."""
    ea = meter.get("ea")
    if type(ea) is not int or ea not in (7, 11):
        return None
    ts: TableSet | None = None
    if ea == 7:
        ts_name = meter.get("table_set", "production")
        if type(ts_name) is not str:
            return None
        ts = tables.get(ts_name)
        if ts is None:
            try:
                ts = tables[ts_name] = table_set(ts_name, tables_file)
            except Exception:
                return None
    ken = meter.get("ken", 255)
    bd = meter.get("base_date")
    if not _int_in(ken, 0, 255) or (bd is not None and (type(bd) is not int
                                                        or bd not in _BASE_ORDINAL)):
        return None
    if "vending_key" in meter:
        if not meter.keys() <= _FULL_KEYS:
            return None  # mfr_code, unknown fields: the generic path
        dkga, kt, ti, krn, sgc = (meter.get(k) for k in ("dkga", "kt", "ti", "krn", "sgc"))
        if not (_int_in(dkga, 2, 4) and dkga != 3 and _int_in(kt, 0, 2) and kt != 1
                and _int_in(ti, 0, 99) and _int_in(krn, 1, 9)):
            return None
        if type(sgc) is not str or len(sgc) != 6 or not sgc.isdigit() or not sgc.isascii():
            return None
        if (dkga == 2 and ea != 7) or (dkga == 4 and bd is None):
            return None
        try:
            vk = bytes.fromhex(meter["vending_key"])
        except (TypeError, ValueError):
            return None
        if (dkga == 2 and len(vk) != 8) or (dkga == 4 and not 16 <= len(vk) <= 64):
            return None
        stated = None
        if "decoder_key" in meter:  # checked against the derived key, line by line
            try:
                stated = bytes.fromhex(meter["decoder_key"])
            except (TypeError, ValueError):
                return None
            if len(stated) != _KEY_BYTES[ea]:
                return None
        shape = MeterShape.identity(ea, ken, bd, ts, dkga=dkga, vk=vk, kt=kt, sgc=sgc, ti=ti,
                                    krn=krn)
        if shape is not None:
            shape.stated = stated
        return shape
    if not meter.keys() <= _KEY_ONLY:
        return None
    try:
        dk = bytes.fromhex(meter["decoder_key"])
    except (KeyError, TypeError, ValueError):
        return None
    if len(dk) != _KEY_BYTES[ea]:
        return None
    return MeterShape.keyed(ea, ken, bd, ts, dk)


def _getter(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of a meter object with these keys, all but its PAN, as a tuple."""
    names = [k for k in keys if k != "pan"]
    if len(names) < 2:  # itemgetter returns a bare value for one name, fails for none
        return lambda meter: tuple(meter[name] for name in names)
    getter: Callable[[dict[str, Any]], tuple[Any, ...]] = itemgetter(*names)
    return getter


class _Chunk:
    """Column lists of the accepted lines of a chunk."""

    def __init__(self, tables_file: str | None, tables: dict[str, TableSet]) -> None:
        self.tables_file, self.tables = tables_file, tables
        self.getters: dict[tuple[str, ...], Callable[[dict[str, Any]], tuple[Any, ...]]] = {}
        self.shape_ids: dict[tuple[Any, ...], int] = {}
        self.shapes: list[MeterShape] = []
        self.where: list[int] = []
        self.ids: list[Any] = []
        self.shape_of: list[int] = []
        self.pans: list[str | None] = []

    def meter(self, meter: Any) -> int:
        """The shape index of a plain meter object, else -1.

        The cache key is the object's keys, its other values and their types (2.0 == 2 and
        True == 1 in Python, not in the generic path's checks).  The PAN is read by the caller.
        """
        if type(meter) is not dict:
            return -1
        keys = tuple(meter)
        try:
            getter = self.getters[keys]
        except KeyError:
            getter = self.getters[keys] = _getter(keys)
        values = getter(meter)
        try:
            key = (keys, values, tuple(map(type, values)))
            return self.shape_ids[key]
        except KeyError:
            shape = _shape(meter, self.tables_file, self.tables)
            s = -1
            if shape is not None:
                s = len(self.shapes)
                self.shapes.append(shape)
            self.shape_ids[key] = s
            return s
        except TypeError:  # unhashable values: let the generic path explain
            return -1

    def valid(self) -> Any:
        """Per accepted line: False where its PAN fails a check (the generic path reports it)."""
        ok = np.ones(len(self.where), dtype=bool)
        ident = [i for i, p in enumerate(self.pans) if p is not None]
        if ident:
            ok[ident] = pans_valid([self.pans[i] or "" for i in ident])
        return ok

    def cipher(self, blocks: Any, keep: Any, *, decrypt: bool) -> Any:
        shape_of = np.array(self.shape_of, dtype=np.int64)
        shape_of[~keep] = -1
        out, stated_ok = run_ciphers(self.shapes, shape_of, self.pans, blocks, decrypt=decrypt)
        keep &= stated_ok
        return out


def _request(request: Any, shape: MeterShape) -> tuple[int, int, int, int] | None:
    """(subclass, tid, rnd or -1, tenths) of a plain class 0 credit request, else None."""
    if type(request) is not dict or not request.keys() <= _REQUEST_KEYS:
        return None
    cls, sub = request.get("class"), request.get("subclass")
    if type(cls) is not int or cls != 0 or type(sub) is not int or not 0 <= sub <= 3:
        return None
    if "issued_at" in request:
        issued_at, bd = request["issued_at"], shape.base_date
        if "tid" in request or bd is None or type(issued_at) is not str:
            return None
        try:
            tid = _MINUTES[issued_at, bd]
        except KeyError:
            if len(_MINUTES) > _CACHE_LIMIT:
                _MINUTES.clear()
            tid = _MINUTES[issued_at, bd] = _minutes(issued_at, bd)
        if tid is None:
            return None
    else:
        tid = request.get("tid")
        if type(tid) is not int or not 0 <= tid <= TID_MAX:
            return None
    if tid >> 16 > shape.ken:
        return None
    rnd = request.get("rnd", -1)
    if type(rnd) is not int or not -1 <= rnd <= 15 or ("rnd" in request and rnd < 0):
        return None
    units = request.get("units")
    if type(units) is not str:
        return None
    try:
        tenths = _TENTHS[units]
    except KeyError:
        if len(_TENTHS) > _CACHE_LIMIT:
            _TENTHS.clear()
        tenths = _TENTHS[units] = _tenths(units)
    if tenths is None:
        return None
    return sub, tid, rnd, tenths


def _transfer(tenths: Any) -> Any:
    e = ((tenths > _TRANSFER_LIMITS[0]).astype(np.int64) + (tenths > _TRANSFER_LIMITS[1])
         + (tenths > _TRANSFER_LIMITS[2]))
    m = np.maximum(-((_OFFSETS[e] - tenths) // _POW[e]), 0)
    return (e << 14) | m


def crc_fields(values56: Any) -> Any:
    reg = np.full(values56.shape, 0xFFFF, dtype=np.uint32)
    for shift in (48, 40, 32, 24, 16, 8, 0):
        b = ((values56 >> U64(shift)) & U64(0xFF)).astype(np.uint32)
        reg = (reg >> 8) ^ _CRC[(reg ^ b) & 0xFF]
    return ((reg & 0xFF) << 8) | (reg >> 8)


def generate_chunk(objs: list[tuple[int, dict[str, Any]]], tables_file: str | None,
                   tables: dict[str, TableSet]) -> dict[int, str]:
    """JSON output lines for the chunk's fast-path lines, by position; others are left out."""
    chunk = _Chunk(tables_file, tables)
    fields: list[tuple[int, int, int, int]] = []
    shapes, shape_of, pans, where, ids = (chunk.shapes, chunk.shape_of, chunk.pans, chunk.where,
                                          chunk.ids)
    for pos, obj in objs:
        if not obj.keys() <= _GENERATE_KEYS:
            continue
        meter: Any = obj.get("meter")
        s = chunk.meter(meter)
        if s < 0:
            continue
        shape = shapes[s]
        pan = None
        if shape.dk is None:
            pan = meter.get("pan")
            if type(pan) is not str or len(pan) != 18:
                continue
        req = _request(obj.get("request"), shape)
        if req is None:
            continue
        where.append(pos)
        ids.append(obj.get("id"))
        shape_of.append(s)
        pans.append(pan)
        fields.append(req)
    if not fields:
        return {}
    n = len(fields)
    cols = np.array(fields, dtype=np.int64).reshape(n, 4)
    sub, tid, rnd = cols[:, 0].astype(U64), cols[:, 1].astype(U64), cols[:, 2]
    drawn = np.frombuffer(secrets.token_bytes(n), dtype=np.uint8).astype(np.int64) & 15
    rnd = np.where(rnd < 0, drawn, rnd).astype(U64)
    amount = _transfer(cols[:, 3]).astype(U64)
    block = (sub << U64(60)) | (rnd << U64(56)) | (tid << U64(32)) | (amount << U64(16))
    block |= crc_fields(block >> U64(16)).astype(U64)
    keep = chunk.valid()
    enc = chunk.cipher(block, keep, decrypt=False)
    # class 0: bits 28..27 move to 65..64 and become 00
    high = ((enc >> U64(27)) & U64(3)).tolist()
    low = (enc & U64(_MASK_27_28)).tolist()
    blocks, tids, keeps = block.tolist(), cols[:, 1].tolist(), keep.tolist()
    out: dict[int, str] = {}
    ids, where = chunk.ids, chunk.where
    for i in range(n):
        if keeps[i]:
            out[where[i]] = (f'{{"id":{_json_id(ids[i])},"tokens":["{(high[i] << 64) | low[i]:020d}"],'
                             f'"blocks":["{blocks[i]:016x}"],"tid":{tids[i]}}}')
    return out


def decode_chunk(objs: list[tuple[int, dict[str, Any]]], tables_file: str | None,
                 tables: dict[str, TableSet]) -> dict[int, str]:
    """JSON output for the chunk's plain class 0 credit tokens (subclasses 0-3), by position."""
    chunk = _Chunk(tables_file, tables)
    numbers: list[int] = []
    shapes, shape_of, pans, where, ids = (chunk.shapes, chunk.shape_of, chunk.pans, chunk.where,
                                          chunk.ids)
    for pos, obj in objs:
        token = obj.get("token")
        if (type(token) is not str or len(token) != 20 or not token.isdigit()
                or not token.isascii() or not obj.keys() <= _DECODE_KEYS):
            continue
        number = int(token)
        if number >> 66 or (number >> 27) & 3:  # only class 0 here
            continue
        meter: Any = obj.get("meter")
        s = chunk.meter(meter)
        if s < 0:
            continue
        pan = None
        if shapes[s].dk is None:
            pan = meter.get("pan")
            if type(pan) is not str or len(pan) != 18:
                continue
        where.append(pos)
        ids.append(obj.get("id"))
        shape_of.append(s)
        pans.append(pan)
        numbers.append(number)
    if not numbers:
        return {}
    n = len(numbers)
    keep = chunk.valid()
    cipher_blocks = np.array([(x & _MASK_27_28) | ((x >> 64) << 27) for x in numbers], dtype=U64)
    plain = chunk.cipher(cipher_blocks, keep, decrypt=True)
    sub = (plain >> U64(60)).astype(np.int64)
    crc_ok = crc_fields(plain >> U64(16)).astype(U64) == (plain & U64(0xFFFF))
    tid = ((plain >> U64(32)) & U64(0xFFFFFF)).astype(np.int64)
    field = ((plain >> U64(16)) & U64(0xFFFF)).astype(np.int64)
    e = field >> 14
    tenths = (field & 0x3FFF) * _POW[e] + _OFFSETS[e]
    kens = np.array([shape.ken for shape in shapes], dtype=np.int64)[chunk.shape_of]
    good = (sub <= 3) & crc_ok & keep & ((tid >> 16) <= kens)
    stamps: list[str | None] = [None] * n
    bds = np.array([chunk.shapes[s].base_date or 0 for s in chunk.shape_of], dtype=np.int64)
    for bd in set(bds.tolist()) - {0}:
        sel = np.flatnonzero(bds == bd)
        when = np.datetime64(f"{bd}-01-01T00:00:00") + tid[sel].astype("timedelta64[m]")
        for i, text in zip(sel.tolist(), np.datetime_as_string(when, unit="s").tolist(),
                           strict=True):
            stamps[i] = text
    out: dict[int, str] = {}
    blocks, subs, tids, amounts, goods = (plain.tolist(), sub.tolist(), tid.tolist(),
                                          tenths.tolist(), good.tolist())
    ids, where = chunk.ids, chunk.where
    for i in range(n):
        if not goods[i]:
            continue
        s = subs[i]
        stamp = f',"issued_at":"{stamps[i]}"' if stamps[i] is not None else ""
        out[where[i]] = (
            f'{{"id":{_json_id(ids[i])},"class":0,"subclass":{s},"block":"{blocks[i]:016x}",'
            f'"kind":"{_KINDS[s]}","description":"{_DESCRIPTIONS[s]}","rnd":{(blocks[i] >> 56) & 15},'
            f'"tid":{tids[i]},"units":"{amounts[i] // 10}.{amounts[i] % 10}"{stamp}}}'
        )
    return out
