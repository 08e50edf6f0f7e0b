"""Make tokens for a meter and a request; decode a token for a meter.

Generation order for a request: TID (issue time + base date, reserved minute skipped),
KEN check, DDTK check, layout packing with CRC, encryption (not for class 1), class-bit
transposition.  Decoding runs the same steps backwards and reports what a meter would.
"""

from __future__ import annotations

import secrets
from typing import Any

from sts.codec.digits import extract_class, insert_class, parse_token, to_digits
from sts.codec.layouts import Layout, check_crc, layout_for
from sts.codec.tid import check_tid, local_vending_time, tid_at, time_of
from sts.engine.model import (
    DecodedToken,
    Issue,
    IssuedToken,
    KeyChangeRequest,
    MeterKey,
    Request,
    TokenRequest,
)
from sts.errors import (
    DdtkError,
    FunctionError,
    InputError,
    KeyExpired,
    MfrCodeError,
    TokenDdtk,
    TokenKeyExpired,
)

KT_DDTK = 1


def _resolve_tid(meter: MeterKey | None, request: TokenRequest) -> int:
    if request.issued_at is not None:
        if meter is None or meter.base_date is None:
            raise InputError(
                "issued_at needs the meter's base_date to compute a TID", field="base_date"
            )
        local = local_vending_time(request.issued_at, meter.time_zone, field="issued_at")
        return tid_at(local, meter.base_date)
    if request.tid is not None:
        return check_tid(request.tid)
    raise InputError("a TID-bearing token needs issued_at (or a raw tid)", field="issued_at")


def _check_ken(tid: int, ken: int) -> None:
    if tid >> 16 > ken:
        raise KeyExpired(
            f"TID {tid} is past the key's expiry: TID>>16 = {tid >> 16} > KEN {ken}; the meter "
            "needs a key change first",
            field="issued_at",
        )


def _finish(meter: MeterKey | None, layout: Layout, block: int, tid: int | None) -> IssuedToken:
    if layout.encrypted:
        if meter is None:
            raise InputError("a class 0/2 token needs the meter's key", field="meter")
        cipher_block = meter.encrypt(block)
    else:
        cipher_block = block
    number = insert_class(cipher_block, layout.token_class)
    return IssuedToken(to_digits(number), layout.token_class, layout.subclass, block, tid,
                       layout.description)


def build_token(meter: MeterKey | None, request: TokenRequest) -> IssuedToken:
    """One non-key-change token."""
    key_bits = meter.key_bits if meter is not None else 64
    layout = layout_for(request.token_class, request.subclass, key_bits)
    if layout.is_key_change:
        raise InputError("key change tokens are made as a set: use a key_change request",
                         field="key_change")
    fields: dict[str, Any] = dict(request.values)
    tid: int | None = None
    if layout.has_tid:
        tid = _resolve_tid(meter, request)
        assert meter is not None
        _check_ken(tid, meter.ken)
        if layout.token_class == 0 and meter.kt == KT_DDTK:
            raise DdtkError(
                "the meter holds a default key (DDTK, KT 1), which may not carry credit; "
                "change it to a unique key first",
                field="meter.kt",
            )
        fields["tid"] = tid
        if "rnd" in layout.value_names():
            fields["rnd"] = secrets.randbelow(16) if request.rnd is None else request.rnd
    return _finish(meter, layout, layout.pack(fields), tid)


def build_key_change(meter: MeterKey, request: KeyChangeRequest) -> list[IssuedToken]:
    """The KCT set, encrypted under the current key, in issue order."""
    new = request.new_key
    if new.key_bits != meter.key_bits:
        raise InputError(
            f"a key change cannot move a {meter.key_bits}-bit key to a {new.key_bits}-bit key",
            field="key_change.new_meter.ea",
        )
    if new.kt is None or new.krn is None or new.ti is None:
        raise InputError("the new key needs kt, krn and ti", field="key_change.new_meter")
    key = new.key_int
    ken = new.ken
    wide = meter.key_bits == 128
    third = request.third_token and not wide
    if request.third_token and new.sgc is None:
        raise InputError("third_token needs the new sgc", field="key_change.new_meter.sgc")
    high = key >> (96 if wide else 32)
    low = key & 0xFFFFFFFF
    specs: list[tuple[int, dict[str, Any]]] = [
        (3, {"ken_high": ken >> 4, "krn": new.krn, "ro": int(request.ro),
             "third_token": int(third), "kt": new.kt, "key_part": high}),
        (4, {"ken_low": ken & 15, "ti": new.ti, "key_part": low}),
    ]
    if wide:
        if new.sgc is None:
            raise InputError("a 128-bit key change carries the new sgc",
                             field="key_change.new_meter.sgc")
        sgc = int(new.sgc)
        specs.append((8, {"sgc_low": sgc & 0xFFF, "key_part": (key >> 64) & 0xFFFFFFFF}))
        specs.append((9, {"sgc_high": sgc >> 12, "key_part": (key >> 32) & 0xFFFFFFFF}))
    elif third:
        specs.append((8, {"sgc": new.sgc}))
    out = []
    for subclass, fields in specs:
        layout = layout_for(2, subclass, meter.key_bits)
        out.append(_finish(meter, layout, layout.pack(fields), None))
    return out


def generate(meter: MeterKey | None, request: Request) -> Issue:
    """Tokens for one request: a single token, or a key change set (+ its follow-up)."""
    if isinstance(request, KeyChangeRequest):
        if meter is None:
            raise InputError("a key change needs the meter's current key", field="meter")
        tokens = build_key_change(meter, request)
        tid = None
        if request.then is not None:
            follow = build_token(request.new_key, request.then)
            tokens.append(follow)
            tid = follow.tid
        return Issue(tuple(tokens), tid)
    token = build_token(meter, request)
    return Issue((token,), token.tid)


# --- decoding ---------------------------------------------------------------------------------


def decode(token: str | int, meter: MeterKey | None = None, *, check_ken: bool = True) -> DecodedToken:
    """Typed fields of a token, or the error a meter holding `meter` would report."""
    number = parse_token(token) if isinstance(token, str) else token
    token_class, cipher_block = extract_class(number)
    if token_class == 3:
        raise FunctionError("class 3 is reserved for the STS Association", field="token")
    if token_class == 1:
        block = cipher_block
        key_bits = 64
    else:
        if meter is None:
            raise InputError("a class 0/2 token needs the meter's key to decode", field="meter")
        block = meter.decrypt(cipher_block)
        key_bits = meter.key_bits
    subclass = block >> 60
    try:
        layout = layout_for(token_class, subclass, key_bits)
    except FunctionError:
        # authenticate first: a wrong key is a CRC failure, not an unknown function
        check_crc(token_class, block)
        raise
    fields = layout.unpack(block)
    tid = fields.get("tid")
    if token_class == 1:
        if meter is not None and meter.mfr_code is not None and fields["mfr_code"] != meter.mfr_code:
            raise MfrCodeError(
                f"test token for manufacturer {fields['mfr_code']}, meter is {meter.mfr_code}",
                field="mfr_code",
            )
    elif tid is not None:
        assert meter is not None
        if check_ken and tid >> 16 > meter.ken:
            raise TokenKeyExpired(f"TID>>16 = {tid >> 16} exceeds the key's KEN {meter.ken}",
                                  field="tid")
        if token_class == 0 and meter.kt == KT_DDTK:
            raise TokenDdtk("credit token refused: the meter holds a default key (DDTK)",
                            field="kt")
    issued_at = None
    if tid is not None and meter is not None and meter.base_date is not None:
        issued_at = time_of(tid, meter.base_date)
    return DecodedToken(to_digits(number), token_class, subclass, block, layout.name,
                        layout.description, fields, tid, issued_at)
