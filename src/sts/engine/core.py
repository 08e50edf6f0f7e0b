"""Make tokens for a meter and a request; decode a token for a meter.

Generation order for a request: TID (issue time + base date, reserved minute skipped),
KEN check, DDTK check, layout packing with CRC, encryption (not for class 1), class-bit
transposition.  Decoding runs the same steps backwards and reports what a meter would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sts.codec.amount import TRANSFER_MAX, encode_transfer, plain_tenths
from sts.codec.crc import crc_field_of
from sts.codec.describe import describe
from sts.codec.digits import (
    check_token_number,
    extract_class,
    insert_class,
    parse_token,
    to_digits,
)
from sts.codec.layouts import Layout, check_crc, layout_for
from sts.codec.tid import TID_MAX, check_tid, local_vending_time, next_tid, tid_at, time_of
from sts.engine.model import (
    DecodedToken,
    Issue,
    IssuedToken,
    KeyChangeRequest,
    MeterKey,
    Request,
    TokenRequest,
    built,
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

# random nibbles for RND: bytes from the OS generator, drawn a block at a time (one system call
# per 4,096 tokens instead of one per token); each byte is used once, a forked child starts afresh
_random_pool: Iterator[int] = iter(())


def _drop_random_pool() -> None:
    global _random_pool
    _random_pool = iter(())


os.register_at_fork(after_in_child=_drop_random_pool)


def random_nibble() -> int:
    """A uniformly random 0..15 from os.urandom (256 is a multiple of 16)."""
    global _random_pool
    try:
        return next(_random_pool) & 15
    except StopIteration:
        _random_pool = iter(os.urandom(4096))
        return next(_random_pool) & 15


def _resolve_tid(meter: MeterKey | None, request: TokenRequest, after_tid: int | None) -> int:
    """The token's TID; with `after_tid` (an earlier token of the same issue for the same
    meter) never at or below it: same-minute tokens get successive TIDs (spec digest §4.2),
    or the meter would answer Used and the credit would be lost."""
    if request.issued_at is not None:
        if meter is None or meter.base_date is None:
            raise InputError(
                "issued_at needs the meter's base_date to compute a TID", field="base_date"
            )
        local = local_vending_time(request.issued_at, meter.time_zone, field="issued_at")
        tid = tid_at(local, meter.base_date)
        return next_tid(after_tid) if after_tid is not None and tid <= after_tid else tid
    if request.tid is not None:
        tid = check_tid(request.tid)
        if after_tid is not None and tid <= after_tid:
            raise InputError(
                f"tid {tid} is not above {after_tid}, the TID of an earlier token for this meter "
                "in the same issue: the meter would refuse it as Used or Old",
                field="tid",
            )
        return tid
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
    return built(IssuedToken, token=to_digits(number), token_class=layout.token_class,
                 subclass=layout.subclass, block=block, tid=tid, description=layout.description)


def credit_block(subclass: int, fields: dict[str, Any]) -> int | None:
    """The plain block of a class 0 credit token (subclass 0-3) straight from its values, when
    they are plainly valid (units a plain decimal string in range, int tid and rnd); None sends
    the caller to `Layout.pack`, which it equals (tests/engine/test_single_forms.py)."""
    units, tid, rnd = fields.get("units"), fields.get("tid"), fields.get("rnd")
    if type(units) is not str or type(tid) is not int or type(rnd) is not int:
        return None
    tenths = plain_tenths(units)
    if tenths is None or tenths > TRANSFER_MAX or not 0 <= tid <= TID_MAX or not 0 <= rnd <= 15:
        return None
    block = (subclass << 60) | (rnd << 56) | (tid << 32) | (encode_transfer(tenths) << 16)
    return block | crc_field_of(block >> 16)


def _check_request(request: TokenRequest) -> None:
    """Python API callers get the project's errors for wrong types, never a guess."""
    if (type(request.token_class) is int and type(request.subclass) is int
            and type(request.values) is dict and request.issued_at is None):
        return  # the plain case (a raw TID and a dict of values)
    for name, value in (("class", request.token_class), ("subclass", request.subclass)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{name} must be an integer, got {describe(value)}", field=name)
    if type(request.values) is not dict and not isinstance(request.values, Mapping):
        raise InputError(f"values must be a mapping of field names, got {describe(request.values)}",
                         field="values")
    if request.issued_at is not None and not isinstance(request.issued_at, datetime):
        raise InputError(f"issued_at must be a datetime, got {describe(request.issued_at)}",
                         field="issued_at")


def build_token(meter: MeterKey | None, request: TokenRequest, *,
                after_tid: int | None = None) -> IssuedToken:
    """One non-key-change token (TID above `after_tid` when given)."""
    _check_request(request)
    key_bits = meter.key_bits if meter is not None else 64
    layout = layout_for(request.token_class, request.subclass, key_bits)
    if layout.is_key_change:
        raise InputError("key change tokens are made as a set: use a key_change request",
                         field="key_change")
    fields: dict[str, Any] = dict(request.values)
    tid: int | None = None
    if layout.has_tid:
        if meter is None:
            raise InputError(
                f"a class {layout.token_class} token ({layout.description}) needs the meter's key",
                field="meter",
            )
        tid = _resolve_tid(meter, request, after_tid)
        _check_ken(tid, meter.ken)
        if layout.token_class == 0 and meter.kt == KT_DDTK:
            raise DdtkError(
                "the meter holds a default key (DDTK, KT 1), which may not carry credit; "
                "change it to a unique key first",
                field="meter.kt",
            )
        fields["tid"] = tid
        if "rnd" in layout.value_names():
            fields["rnd"] = random_nibble() if request.rnd is None else request.rnd
    block = None
    if layout.token_class == 0 and layout.subclass <= 3:
        block = credit_block(layout.subclass, fields)
    return _finish(meter, layout, layout.pack(fields) if block is None else block, tid)


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


def generate(meter: MeterKey | None, request: Request, *, after_tid: int | None = None) -> Issue:
    """Tokens for one request: a single token, or a key change set (+ its follow-up).

    `after_tid`: the TID of a token already issued for this meter in the same sale/command;
    this issue's TID-bearing token then gets a later TID (see `generate_many`).
    """
    if meter is not None and not isinstance(meter, MeterKey):
        raise InputError(f"meter must be a MeterKey, got {describe(meter)}", field="meter")
    if not isinstance(request, (TokenRequest, KeyChangeRequest)):
        raise InputError(f"request must be a TokenRequest or KeyChangeRequest, got "
                         f"{describe(request)}", field="request")
    if isinstance(request, KeyChangeRequest):
        if meter is None:
            raise InputError("a key change needs the meter's current key", field="meter")
        tokens = build_key_change(meter, request)
        tid = None
        if request.then is not None:
            # RO=1 clears the meter's TID memory: earlier TIDs no longer matter
            follow = build_token(request.new_key, request.then,
                                 after_tid=None if request.ro else after_tid)
            tokens.append(follow)
            tid = follow.tid
        return Issue(tuple(tokens), tid)
    token = build_token(meter, request, after_tid=after_tid)
    return built(Issue, tokens=(token,), tid=token.tid)


def generate_many(meter: MeterKey | None, requests: Sequence[Request]) -> list[Issue]:
    """Several requests for one meter, in entry order, as one command or sale issues them.

    Two tokens never share a TID: a token in the same minute as an earlier one gets the next
    TID (the meter would answer Used and the credit would be lost).  After a key change the
    later requests are made under the new key, as the meter will hold it.
    """
    issues: list[Issue] = []
    last: int | None = None
    current = meter
    for request in requests:
        issue = generate(current, request, after_tid=last)
        issues.append(issue)
        if issue.tid is not None:
            last = issue.tid
        if isinstance(request, KeyChangeRequest):
            current = request.new_key
    return issues


# --- decoding ---------------------------------------------------------------------------------


def decode(token: str | int, meter: MeterKey | None = None, *, check_ken: bool = True) -> DecodedToken:
    """Typed fields of a token, or the error a meter holding `meter` would report.

    `token` is the text a person typed or the 66-bit number; anything else (a bool, a float,
    a number of 2^66 or more) is a TokenFormatError, never a guess.
    """
    number = parse_token(token) if isinstance(token, str) else check_token_number(token)
    if meter is not None and not isinstance(meter, MeterKey):
        raise InputError(f"meter must be a MeterKey, got {describe(meter)}", field="meter")
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
