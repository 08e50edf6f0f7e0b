"""The vectorised batch path for the common case: credit tokens for EA07 meters.

A batch of JSON Lines is mostly `meter` (DKGA02/04 identity or a bare decoder key, EA07) +
`request` (class 0, subclass 0-3, units).  For those lines every expensive step runs over the
whole chunk at once: PAN checks, DES of DKGA02 (one call per vending key), CRC, STA (numpy),
class-bit transposition.  A line is taken only when it is plainly well-formed; anything else
(other token types, odd values, errors) goes to the generic path, which stays the single
authority for results and error messages.  `tests/engine/test_fast.py` holds the two paths
to identical output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any, TypeGuard

import numpy as np

from sts.codec.crc import TABLE as CRC_TABLE
from sts.codec.layouts import layout_for
from sts.codec.pan import IIN_SHORT, IIN_STS, MeterPan, control_block
from sts.codec.tid import BASE_DATES, MINUTES_PER_DAY, RESERVED_MINUTE_OF_DAY, TID_MAX
from sts.crypto import des
from sts.crypto.dkga import dkga04_input
from sts.crypto.sta import TableSet, table_set
from sts.crypto.sta_batch import batch_cipher

U64 = np.uint64
_CRC = np.array(CRC_TABLE, dtype=np.uint32)
_FULL_KEYS = frozenset({"pan", "dkga", "ea", "vending_key", "kt", "sgc", "ti", "krn", "ken",
                        "base_date", "table_set", "decoder_key"})
_KEY_ONLY = frozenset({"ea", "table_set", "decoder_key", "base_date", "ken"})
_REQUEST_KEYS = frozenset({"class", "subclass", "issued_at", "tid", "rnd", "units"})
_BASE_ORDINAL = {year: dt.toordinal() for year, dt in BASE_DATES.items()}
_TRANSFER_LIMITS = (16383, 16383 * 10 + 16384, 16383 * 100 + 180224)
_OFFSETS = np.array([0, 16384, 180224, 1818624], dtype=np.int64)
_POW = np.array([1, 10, 100, 1000], dtype=np.int64)
_DOUBLE = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int64)
_DESCRIPTIONS = {sub: layout_for(0, sub).description for sub in range(4)}
_KINDS = {sub: layout_for(0, sub).name for sub in range(4)}
_MASK_27_28 = ~((1 << 28) | (1 << 27)) & ((1 << 64) - 1)


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _json_id(value: Any) -> str:
    return encode_basestring_ascii(value) if type(value) is str else _encode(value)


def _is_int(v: Any) -> TypeGuard[int]:
    return type(v) is int


def _tenths(units: Any) -> int | None:
    """Tenths, rounded up, for a plain `123.45` string; None for anything less plain."""
    if type(units) is not str:
        return None
    whole, dot, frac = units.partition(".")
    if not whole.isdigit() or not whole.isascii() or len(whole) > 7 or (dot and not frac):
        return None
    if frac and (not frac.isdigit() or not frac.isascii()):
        return None
    tenths = int(whole) * 10
    if frac:
        tenths += ord(frac[0]) - 48
        if frac[1:].strip("0"):
            tenths += 1
    return tenths if tenths <= 18201624 else None


def _minutes(issued_at: Any, base_date: int) -> int | None:
    if type(issued_at) is not str or len(issued_at) not in (16, 19):
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


class _MeterShape:
    """What a batch's meters share (all but the PAN), checked once per distinct shape."""

    __slots__ = ("base_date", "dk", "dkga", "ken", "krn", "kt", "sgc", "tables", "ti", "vk")
    base_date: int | None
    dk: int | None
    dkga: int | None
    ken: int
    kt: int | None
    krn: int | None
    sgc: str | None
    tables: TableSet
    ti: int | None
    vk: bytes | None


class _Line:
    """One accepted line: its meter's shape plus the per-line values."""

    __slots__ = (
        "base_date",
        "dk",
        "dkga",
        "ken",
        "krn",
        "kt",
        "pan",
        "rnd",
        "sgc",
        "subclass",
        "tables",
        "tenths",
        "ti",
        "tid",
        "vk",
    )
    base_date: int | None
    dk: int | None
    dkga: int | None
    ken: int
    kt: int | None
    krn: int | None
    pan: str
    rnd: int
    sgc: str | None
    subclass: int
    tables: TableSet
    tenths: int
    ti: int | None
    tid: int
    vk: bytes | None


_SHAPE_FIELDS = ("ea", "vending_key", "dkga", "kt", "sgc", "ti", "krn", "ken", "base_date",
                 "table_set", "decoder_key")


def _shape(meter: dict[str, Any], tables_file: str | None,
           tables: dict[str, TableSet]) -> _MeterShape | None:
    if meter.get("ea") != 7:
        return None
    shape = _MeterShape()
    ts_name = meter.get("table_set", "production")
    if type(ts_name) is not str:
        return None
    ts = tables.get(ts_name)
    if ts is None:
        try:
            ts = tables[ts_name] = table_set(ts_name, tables_file)
        except Exception:
            return None
    shape.tables = ts
    ken = meter.get("ken", 255)
    bd = meter.get("base_date")
    if not _is_int(ken) or not 0 <= ken <= 255 or (bd is not None and bd not in _BASE_ORDINAL):
        return None
    shape.ken, shape.base_date = ken, bd
    if "vending_key" in meter:
        if not meter.keys() <= _FULL_KEYS or "decoder_key" in meter:
            return None  # a stated decoder key is checked by the generic path
        dkga, kt, ti, krn, sgc = (meter.get(k) for k in ("dkga", "kt", "ti", "krn", "sgc"))
        if dkga not in (2, 4) or kt not in (0, 2) or not _is_int(ti) or not 0 <= ti <= 99:
            return None
        if not _is_int(krn) or not 1 <= krn <= 9 or type(sgc) is not str or len(sgc) != 6:
            return None
        if not sgc.isdigit() or not sgc.isascii() or (dkga == 4 and bd is None):
            return None
        try:
            vk = bytes.fromhex(meter["vending_key"])
        except (TypeError, ValueError):
            return None
        if (dkga == 2 and len(vk) != 8) or (dkga == 4 and not 16 <= len(vk) <= 64):
            return None
        shape.dkga, shape.kt, shape.ti, shape.krn, shape.sgc, shape.vk = dkga, kt, ti, krn, sgc, vk
        shape.dk = None
        return shape
    if not meter.keys() <= _KEY_ONLY:
        return None
    try:
        dk = bytes.fromhex(meter["decoder_key"])
    except (KeyError, TypeError, ValueError):
        return None
    if len(dk) != 8:
        return None
    shape.dk = int.from_bytes(dk, "big")
    shape.dkga = shape.kt = shape.ti = shape.krn = shape.sgc = shape.vk = None
    return shape


def _line_for(meter: dict[str, Any], tables_file: str | None, tables: dict[str, TableSet],
              shapes: dict[tuple[Any, ...], _MeterShape | None]) -> _Line | None:
    """A line carrying its meter's (cached) shape and PAN, or None if the meter is not plain."""
    get = meter.get
    key = (len(meter), *(get(k) for k in _SHAPE_FIELDS))
    try:
        shape = shapes[key]
    except KeyError:
        shape = shapes[key] = _shape(meter, tables_file, tables)
    except TypeError:  # unhashable values: let the generic path explain
        return None
    if shape is None:
        return None
    line = _Line()
    if shape.dk is None:
        pan = get("pan")
        if type(pan) is not str or len(pan) != 18 or not pan.isdigit() or not pan.isascii():
            return None
        line.pan = pan
    line.dk = shape.dk
    line.dkga, line.kt, line.ti, line.krn, line.sgc, line.vk = (
        shape.dkga, shape.kt, shape.ti, shape.krn, shape.sgc, shape.vk)
    line.base_date, line.tables, line.ken = shape.base_date, shape.tables, shape.ken
    return line


def _accept(obj: dict[str, Any], tables_file: str | None, tables: dict[str, TableSet],
            shapes: dict[tuple[Any, ...], _MeterShape | None]) -> _Line | None:
    """The line's fields if it is a plainly well-formed EA07 credit request, else None."""
    meter = obj.get("meter")
    request = obj.get("request")
    if type(meter) is not dict or type(request) is not dict or len(obj) > 3:
        return None
    if request.get("class") != 0 or not request.keys() <= _REQUEST_KEYS:
        return None
    sub = request.get("subclass")
    if type(sub) is not int or not 0 <= sub <= 3:
        return None
    line = _line_for(meter, tables_file, tables, shapes)
    if line is None:
        return None
    bd = line.base_date
    if "issued_at" in request:
        if "tid" in request or bd is None:
            return None
        tid = _minutes(request["issued_at"], bd)
    else:
        tid = request.get("tid")
        if not _is_int(tid) or not 0 <= tid <= TID_MAX:
            return None
    if tid is None or tid >> 16 > line.ken:
        return None
    rnd = request.get("rnd", -1)
    if not _is_int(rnd) or not -1 <= rnd <= 15 or ("rnd" in request and rnd < 0):
        return None
    tenths = _tenths(request.get("units"))
    if tenths is None:
        return None
    line.tid, line.rnd, line.tenths, line.subclass = tid, rnd, tenths, sub
    return line


def _luhn_ok(d: Any, first: int, check: int) -> Any:
    """Rows whose digit `check` is the Luhn check digit of digits first..check-1."""
    digits = d[:, first:check]
    doubled = (check - 1 - np.arange(first, check)) % 2 == 0
    total = np.where(doubled[None, :], _DOUBLE[digits], digits).sum(axis=1)
    return (10 - total % 10) % 10 == d[:, check]


def _pans_valid(pans: list[str]) -> Any:
    """Vectorised MeterPAN checks: IIN, PAN check digit, DRN check digit."""
    d = (np.frombuffer("".join(pans).encode("ascii"), dtype=np.uint8).reshape(-1, 18)
         .astype(np.int64) - 48)
    sts_iin = (d[:, :6] == np.array([6, 0, 0, 7, 2, 7])).all(axis=1)
    short_iin = (d[:, :4] == 0).all(axis=1)
    drn_ok = np.where(sts_iin, _luhn_ok(d, 6, 16), short_iin & _luhn_ok(d, 4, 16))
    return _luhn_ok(d, 0, 17) & drn_ok


def _pan_blocks(pans: list[str]) -> Any:
    d = (np.frombuffer("".join(pans).encode("ascii"), dtype=np.uint8).reshape(-1, 18)[:, 1:17]
         .astype(U64) - U64(48))
    shifts = (U64(4) * np.arange(15, -1, -1, dtype=U64))[None, :]
    return np.bitwise_or.reduce(d << shifts, axis=1)


def _derive(lines: list[_Line]) -> list[bool]:
    """Fill line.dk for identity lines; False where the PAN fails or decoder_key disagrees."""
    ok = [True] * len(lines)
    ident = [i for i, ln in enumerate(lines) if ln.dk is None]
    if not ident:
        return ok
    pans = [lines[i].pan for i in ident]
    valid = _pans_valid(pans).tolist()
    blocks = _pan_blocks(pans).tolist()
    controls: dict[tuple[int, str, int, int], int] = {}
    groups: dict[bytes, list[int]] = {}
    for pos, i in enumerate(ident):
        ln = lines[i]
        if not valid[pos]:
            ok[i] = False
            continue
        kt, sgc, ti, krn, vk = ln.kt, ln.sgc, ln.ti, ln.krn, ln.vk
        assert kt is not None and sgc is not None and ti is not None and krn is not None
        assert vk is not None  # identity lines always carry these (see _shape)
        if ln.dkga == 4:
            assert ln.base_date is not None
            iin = IIN_STS if ln.pan.startswith(IIN_STS) else IIN_SHORT
            msg = dkga04_input(MeterPan(iin, ln.pan[len(iin):17]), kt, sgc, ti, krn, 7,
                               ln.base_date, 64)
            ln.dk = int.from_bytes(hmac.digest(vk, msg, hashlib.sha256)[:8], "big")
        else:
            ck = (kt, sgc, ti, krn)
            cb = controls.get(ck)
            if cb is None:
                cb = controls[ck] = control_block(*ck)
            ln.dk = blocks[pos] ^ cb  # X for now; finished below per vending key
            groups.setdefault(vk, []).append(i)
    for vk, members in groups.items():
        x = np.array([lines[i].dk for i in members], dtype=U64)
        enc = np.frombuffer(des.encrypt_blocks(vk, x.astype(">u8").tobytes()), dtype=">u8")
        dks = (enc.astype(U64) ^ x ^ U64(int.from_bytes(vk, "big"))).tolist()
        for i, dk in zip(members, dks, strict=True):
            lines[i].dk = dk
    return ok


def _transfer(tenths: Any) -> Any:
    e = ((tenths > _TRANSFER_LIMITS[0]).astype(np.int64) + (tenths > _TRANSFER_LIMITS[1])
         + (tenths > _TRANSFER_LIMITS[2]))
    m = np.maximum(-((_OFFSETS[e] - tenths) // _POW[e]), 0)
    return (e << 14) | m


def _crc(values56: Any) -> Any:
    reg = np.full(values56.shape, 0xFFFF, dtype=np.uint32)
    for shift in (48, 40, 32, 24, 16, 8, 0):
        b = ((values56 >> U64(shift)) & U64(0xFF)).astype(np.uint32)
        reg = (reg >> 8) ^ _CRC[(reg ^ b) & 0xFF]
    return ((reg & 0xFF) << 8) | (reg >> 8)


def _sta(lines: list[_Line], keys: Any, blocks: Any, *, decrypt: bool) -> Any:
    """STA over the chunk, one vectorised call per table set in use."""
    out = np.empty(len(lines), dtype=U64)
    by_tables: dict[int, list[int]] = {}
    for i, ln in enumerate(lines):
        by_tables.setdefault(id(ln.tables), []).append(i)
    for members in by_tables.values():
        cipher = batch_cipher(lines[members[0]].tables.cipher)
        sel = np.array(members)
        run = cipher.decrypt if decrypt else cipher.encrypt
        out[sel] = run(keys[sel], blocks[sel])
    return out


def generate_chunk(objs: list[tuple[int, dict[str, Any]]], tables_file: str | None,
                   tables: dict[str, TableSet]) -> dict[int, str]:
    """JSON output lines for the chunk's fast-path lines, by position; others are left out."""
    lines: list[_Line] = []
    where: list[int] = []
    ids: list[Any] = []
    shapes: dict[tuple[Any, ...], _MeterShape | None] = {}
    for pos, obj in objs:
        ln = _accept(obj, tables_file, tables, shapes)
        if ln is not None:
            lines.append(ln)
            where.append(pos)
            ids.append(obj.get("id"))
    if not lines:
        return {}
    ok = _derive(lines)
    keep = [i for i, good in enumerate(ok) if good]
    lines = [lines[i] for i in keep]
    where = [where[i] for i in keep]
    ids = [ids[i] for i in keep]
    if not lines:
        return {}
    n = len(lines)
    rnd_bytes = secrets.token_bytes(n)
    rnd = np.array([ln.rnd if ln.rnd >= 0 else rnd_bytes[i] & 15 for i, ln in enumerate(lines)],
                   dtype=U64)
    sub = np.array([ln.subclass for ln in lines], dtype=U64)
    tid = np.array([ln.tid for ln in lines], dtype=U64)
    amount = _transfer(np.array([ln.tenths for ln in lines], dtype=np.int64)).astype(U64)
    block = (sub << U64(60)) | (rnd << U64(56)) | (tid << U64(32)) | (amount << U64(16))
    block |= _crc(block >> U64(16)).astype(U64)
    keys = np.array([ln.dk for ln in lines], dtype=U64)
    enc = _sta(lines, keys, block, decrypt=False)
    # class 0: bits 28..27 move to 65..64 and become 00
    high = ((enc >> U64(27)) & U64(3)).tolist()
    low = (enc & U64(_MASK_27_28)).tolist()
    blocks = block.tolist()
    out: dict[int, str] = {}
    for i in range(n):
        token = f"{(high[i] << 64) | low[i]:020d}"
        out[where[i]] = (f'{{"id":{_json_id(ids[i])},"tokens":["{token}"],'
                         f'"blocks":["{blocks[i]:016x}"],"tid":{lines[i].tid}}}')
    return out


def _decode_accept(obj: dict[str, Any], tables_file: str | None, tables: dict[str, TableSet],
                   shapes: dict[tuple[Any, ...], _MeterShape | None]) -> tuple[_Line, int] | None:
    token = obj.get("token")
    meter = obj.get("meter")
    if type(token) is not str or len(token) != 20 or not token.isdigit() or not token.isascii():
        return None
    if type(meter) is not dict or len(obj) > 3:
        return None
    number = int(token)
    if number >> 66 or (number >> 27) & 3:  # only class 0 here
        return None
    line = _line_for(meter, tables_file, tables, shapes)
    if line is None:
        return None
    return line, number


def decode_chunk(objs: list[tuple[int, dict[str, Any]]], tables_file: str | None,
                 tables: dict[str, TableSet]) -> dict[int, str]:
    """JSON output for the chunk's plain class 0 credit tokens (subclasses 0-3), by position."""
    shapes: dict[tuple[Any, ...], _MeterShape | None] = {}
    lines: list[_Line] = []
    numbers: list[int] = []
    where: list[int] = []
    ids: list[Any] = []
    for pos, obj in objs:
        found = _decode_accept(obj, tables_file, tables, shapes)
        if found is not None:
            lines.append(found[0])
            numbers.append(found[1])
            where.append(pos)
            ids.append(obj.get("id"))
    if not lines:
        return {}
    ok = _derive(lines)
    n = len(lines)
    cipher_blocks = np.array([(x & _MASK_27_28) | ((x >> 64) << 27) for x in numbers], dtype=U64)
    keys = np.array([ln.dk if ok[i] else 0 for i, ln in enumerate(lines)], dtype=U64)
    plain = _sta(lines, keys, cipher_blocks, decrypt=True)
    sub = (plain >> U64(60)).astype(np.int64)
    crc_ok = _crc(plain >> U64(16)).astype(U64) == (plain & U64(0xFFFF))
    tid = ((plain >> U64(32)) & U64(0xFFFFFF)).astype(np.int64)
    field = ((plain >> U64(16)) & U64(0xFFFF)).astype(np.int64)
    e = field >> 14
    tenths = (field & 0x3FFF) * _POW[e] + _OFFSETS[e]
    good = (sub <= 3) & crc_ok & np.array(ok)
    ken = np.array([ln.ken for ln in lines], dtype=np.int64)
    good &= (tid >> 16) <= ken
    stamps: list[str | None] = [None] * n
    for bd in {ln.base_date for ln in lines if ln.base_date is not None}:
        sel = np.array([i for i, ln in enumerate(lines) if ln.base_date == bd])
        when = np.datetime64(f"{bd}-01-01T00:00:00") + tid[sel].astype("timedelta64[m]")
        for i, text in zip(sel.tolist(), np.datetime_as_string(when, unit="s").tolist(),
                           strict=True):
            stamps[i] = text
    out: dict[int, str] = {}
    blocks, subs, tids, amounts, goods = (plain.tolist(), sub.tolist(), tid.tolist(),
                                          tenths.tolist(), good.tolist())
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
