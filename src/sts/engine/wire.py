"""JSON objects <-> engine objects, in the vocabulary of `shared/vectors/FORMAT.md`.

Used by the batch commands, the vector tests and anything else that speaks JSON.  Every
error names the offending field with its path (`meter.pan`, `request.units`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sts.codec.layouts import layout_for
from sts.codec.pan import parse_pan
from sts.codec.tid import parse_datetime, parse_time_zone
from sts.crypto.sta import TableSet, table_set
from sts.engine.model import (
    EA_STA,
    KEN_NO_EXPIRY,
    DecodedToken,
    Issue,
    KeyChangeRequest,
    MeterKey,
    Request,
    TokenRequest,
)
from sts.errors import InputError, KeyDataError, StsError

_IDENTITY_FIELDS = ("pan", "dkga", "ea", "vending_key", "kt", "sgc", "ti", "krn", "base_date")
_METER_FIELDS = frozenset(_IDENTITY_FIELDS) | {"table_set", "ken", "decoder_key", "mfr_code",
                                               "time_zone"}
_REQUEST_BASE = frozenset({"class", "subclass", "issued_at", "tid", "rnd", "key_change", "then"})


def _prefix(exc: StsError, prefix: str) -> StsError:
    if exc.field and not exc.field.startswith(prefix):
        exc.field = f"{prefix}.{exc.field}"
    return exc


def _int(obj: Mapping[str, Any], name: str, path: str, *, required: bool = True) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise InputError(f"{path}.{name} is required", field=f"{path}.{name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{path}.{name} must be an integer, got {value!r}", field=f"{path}.{name}")
    return value


def hex_key(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise KeyDataError(f"{field} must be a hex string", field=field)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise KeyDataError(f"{field} is not valid hexadecimal", field=field) from None
    if not raw:
        raise KeyDataError(f"{field} is empty", field=field)
    return raw


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{path} must be a JSON object", field=path)
    return value


def _unknown(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise InputError(f"{path} has unknown field(s): {', '.join(extra)}", field=f"{path}.{extra[0]}")


def _tables(obj: Mapping[str, Any], ea: int, path: str, tables_file: str | None) -> TableSet | None:
    if ea != EA_STA:
        return None
    name = obj.get("table_set", "production")
    if name not in ("production", "sample") and not isinstance(name, str):
        raise InputError(f"{path}.table_set must be a table set name", field=f"{path}.table_set")
    return table_set(name, tables_file)


def meter_from_json(
    obj: Any, *, tables_file: str | None = None, path: str = "meter"
) -> MeterKey:
    """A MeterKey from a FORMAT.md meter object (full or key-only form)."""
    obj = _object(obj, path)
    _unknown(obj, _METER_FIELDS, path)
    ea = _int(obj, "ea", path)
    tables = _tables(obj, ea, path, tables_file)
    ken = _int(obj, "ken", path, required=False)
    ken = KEN_NO_EXPIRY if ken is None else ken
    base_date = _int(obj, "base_date", path, required=False)
    mfr_code = obj.get("mfr_code")
    try:
        zone = (parse_time_zone(obj["time_zone"], field="time_zone")
                if obj.get("time_zone") is not None else None)
        if "vending_key" in obj:
            pan = parse_pan(obj.get("pan"), field="pan")
            sgc = obj.get("sgc")
            meter = MeterKey.derive(
                dkga=_int(obj, "dkga", path),
                vending_key=hex_key(obj["vending_key"], "vending_key"),
                pan=pan,
                kt=_int(obj, "kt", path),
                sgc=sgc,
                ti=_int(obj, "ti", path),
                krn=_int(obj, "krn", path),
                ea=ea,
                base_date=base_date,
                table_set=tables,
                ken=ken,
                mfr_code=mfr_code,
                time_zone=zone,
            )
            if "decoder_key" in obj and hex_key(obj["decoder_key"], "decoder_key") != meter.decoder_key:
                raise KeyDataError(
                    "decoder_key does not match the key derived from vending_key and the meter "
                    "identity (check pan, sgc, ti, krn, kt, base_date, dkga, ea)",
                    field="decoder_key",
                )
            return meter
        if "decoder_key" not in obj:
            raise InputError(f"{path} needs vending_key (with identity) or decoder_key",
                             field=f"{path}.decoder_key")
        pan_text = obj.get("pan")
        return MeterKey(
            ea=ea,
            decoder_key=hex_key(obj["decoder_key"], "decoder_key"),
            table_set=tables,
            base_date=base_date,
            ken=ken,
            kt=obj.get("kt"),
            krn=obj.get("krn"),
            ti=obj.get("ti"),
            sgc=obj.get("sgc"),
            pan=parse_pan(pan_text) if pan_text is not None else None,
            dkga=obj.get("dkga"),
            mfr_code=mfr_code,
            time_zone=zone,
        )
    except StsError as exc:
        raise _prefix(exc, path) from None


def _token_request(
    obj: Mapping[str, Any], key_bits: int, path: str, zone: ZoneInfo | None
) -> TokenRequest:
    token_class = _int(obj, "class", path)
    subclass = _int(obj, "subclass", path)
    try:
        layout = layout_for(token_class, subclass, key_bits)
    except StsError as exc:
        raise _prefix(exc, path) from None
    names = set(layout.value_names())
    allowed = _REQUEST_BASE | names
    if "rnd" not in names:
        allowed = allowed - {"rnd"}
    if not layout.has_tid:
        allowed = allowed - {"issued_at", "tid"}
    _unknown(obj, allowed - {"key_change", "then"}, path)
    issued_at = None
    if "issued_at" in obj:
        issued_at = parse_datetime(obj["issued_at"], field=f"{path}.issued_at", tz=zone)
    tid = _int(obj, "tid", path, required=False)
    rnd = _int(obj, "rnd", path, required=False)
    if rnd is not None and not 0 <= rnd <= 15:
        raise InputError(f"{path}.rnd must be 0..15, got {rnd}", field=f"{path}.rnd")
    values = {k: v for k, v in obj.items() if k in names and k not in ("tid", "rnd")}
    return TokenRequest(token_class, subclass, values, issued_at, tid, rnd)


def request_from_json(
    obj: Any, meter: MeterKey | None, *, tables_file: str | None = None, path: str = "request"
) -> Request:
    obj = _object(obj, path)
    key_bits = meter.key_bits if meter is not None else 64
    zone = meter.time_zone if meter is not None else None
    if "key_change" not in obj:
        try:
            return _token_request(obj, key_bits, path, zone)
        except StsError as exc:
            raise _prefix(exc, path) from None
    if meter is None:
        raise InputError("a key change needs the meter's current key", field="meter")
    _unknown(obj, _REQUEST_BASE, path)
    kc = _object(obj["key_change"], f"{path}.key_change")
    _unknown(kc, frozenset({"new_meter", "ro", "ken", "third_token"}), f"{path}.key_change")
    kpath = f"{path}.key_change"
    new_obj = _object(kc.get("new_meter"), f"{kpath}.new_meter")
    ken = _int(kc, "ken", kpath, required=False)
    new_key = _new_meter(meter, new_obj, ken, tables_file, f"{kpath}.new_meter")
    ro = kc.get("ro", 0)
    third = kc.get("third_token", False)
    for name, flag in (("ro", ro), ("third_token", third)):
        if flag not in (0, 1):
            raise InputError(f"{kpath}.{name} must be 0/1 or true/false", field=f"{kpath}.{name}")
    then = None
    if obj.get("then") is not None:
        then_obj = _object(obj["then"], f"{path}.then")
        try:
            then = _token_request(then_obj, new_key.key_bits, f"{path}.then", new_key.time_zone)
        except StsError as exc:
            raise _prefix(exc, f"{path}.then") from None
    return KeyChangeRequest(new_key, bool(ro), bool(third), then)


def _new_meter(
    meter: MeterKey, new: Mapping[str, Any], ken: int | None, tables_file: str | None, path: str
) -> MeterKey:
    """The meter after the key change: current identity overridden by `new_meter`."""
    _unknown(new, _METER_FIELDS, path)
    ken = meter.ken if ken is None else ken
    merged: dict[str, Any] = {
        "ea": meter.ea,
        "kt": meter.kt,
        "krn": meter.krn,
        "ti": meter.ti,
        "sgc": meter.sgc,
        "base_date": meter.base_date,
        "dkga": meter.dkga,
    }
    merged.update({k: v for k, v in new.items() if k not in ("vending_key", "decoder_key")})
    tables = meter.table_set
    if merged["ea"] != meter.ea:
        tables = _tables(new, merged["ea"], path, tables_file)
    vending_key = (
        hex_key(new["vending_key"], f"{path}.vending_key") if "vending_key" in new
        else meter.vending_key
    )
    try:
        if vending_key is not None and meter.pan is not None and merged["dkga"] is not None:
            key = MeterKey.derive(
                dkga=merged["dkga"], vending_key=vending_key, pan=meter.pan, kt=merged["kt"],
                sgc=merged["sgc"], ti=merged["ti"], krn=merged["krn"], ea=merged["ea"],
                base_date=merged["base_date"], table_set=tables, ken=ken,
                mfr_code=meter.mfr_code, time_zone=meter.time_zone,
            )
            if "decoder_key" in new and hex_key(new["decoder_key"], "decoder_key") != key.decoder_key:
                raise KeyDataError(
                    "decoder_key does not match the key derived for the new identity",
                    field="decoder_key",
                )
            return key
        if "decoder_key" not in new:
            raise InputError("the new key needs decoder_key (no vending key to derive it)",
                             field="decoder_key")
        return MeterKey(
            ea=merged["ea"], decoder_key=hex_key(new["decoder_key"], "decoder_key"),
            table_set=tables, base_date=merged["base_date"], ken=ken, kt=merged["kt"],
            krn=merged["krn"], ti=merged["ti"], sgc=merged["sgc"], pan=meter.pan,
            dkga=merged["dkga"], mfr_code=meter.mfr_code, time_zone=meter.time_zone,
        )
    except StsError as exc:
        raise _prefix(exc, path) from None


def issue_to_json(issue: Issue) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tokens": [t.token for t in issue.tokens],
        "blocks": [t.block_hex for t in issue.tokens],
    }
    if issue.tid is not None:
        out["tid"] = issue.tid
    return out


def decoded_to_json(decoded: DecodedToken) -> dict[str, Any]:
    out = decoded.as_dict()
    if decoded.tid is not None:
        out["tid"] = decoded.tid
    return out
