"""Token layouts: each class/subclass as a small declaration (spec digest §1).

A `Layout` lists the raw bit fields of the 44-bit payload (block bits 59..16) and the
`Value`s that map the request's named fields (FORMAT.md names: `units`, `mpl_watts`,
`register`, ...) onto those raw fields.  Packing adds subclass and CRC; unpacking checks the
CRC and maps the raw fields back.  Nothing here knows about keys or encryption.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sts.codec import amount as amt
from sts.codec.crc import block_crc
from sts.codec.describe import describe
from sts.errors import CrcError, FunctionError, InputError, TokenRangeError


@dataclass(frozen=True, slots=True)
class Field:
    """A raw bit field of the block: bits lo .. lo+width-1."""

    name: str
    lo: int
    width: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


# --- values: request field <-> raw fields ---------------------------------------------------


class Value:
    """Maps one request field to raw fields and back."""

    name: str

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        raise NotImplementedError

    def check(self, raw: Mapping[str, int], layout: Layout) -> None:
        """Raise TokenRangeError when a meter would refuse the decoded value (default: never)."""

    def decode(self, raw: Mapping[str, int]) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Value):
    """A request integer stored as is in the raw field of the same name.

    `lo_limit`/`hi_limit`/`accepted` are what a meter accepts, not only what the bits hold:
    the generator refuses (InputError) exactly what a meter's decoder rejects (TokenRangeError),
    so nothing is issued that a meter would refuse.  One rule, used both ways.
    """

    name: str
    lo_limit: int = 0
    hi_limit: int | None = None  # default: what the field width allows
    accepted: frozenset[int] | None = None  # when only some values of the range are meaningful
    rule: str = ""  # the accepted values in words, for messages

    def _rule(self, layout: Layout) -> str:
        if self.rule:
            return self.rule
        hi = layout.field(self.name).mask if self.hi_limit is None else self.hi_limit
        return f"an integer {self.lo_limit}..{hi}"

    def _accepts(self, value: int, hi: int) -> bool:
        return self.lo_limit <= value <= hi and (self.accepted is None or value in self.accepted)

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        hi = layout.field(self.name).mask if self.hi_limit is None else self.hi_limit
        if isinstance(value, bool) or not isinstance(value, int) or not self._accepts(value, hi):
            raise InputError(
                f"{self.name} must be {self._rule(layout)}, got {describe(value)}",
                field=self.name,
            )
        raw[self.name] = value

    def check(self, raw: Mapping[str, int], layout: Layout) -> None:
        """TokenRangeError if a decoded value is outside what a meter accepts."""
        if self.hi_limit is None and self.lo_limit == 0 and self.accepted is None:
            return
        value = raw[self.name]
        hi = layout.field(self.name).mask if self.hi_limit is None else self.hi_limit
        if not self._accepts(value, hi):
            raise TokenRangeError(
                f"{self.name} {value} is out of range: a meter accepts {self._rule(layout)}",
                field=self.name,
            )

    def decode(self, raw: Mapping[str, int]) -> Any:
        return raw[self.name]


# registers a clear-credit token may name (spec digest §1.6): 0-3 units, 4-7 currency, all
CREDIT_REGISTERS = frozenset(range(8)) | {0xFFFF}


@dataclass(frozen=True)
class Flag(Value):
    """A one-bit raw field; the request may say true/false or 0/1 (decoded as FORMAT.md has it)."""

    name: str
    as_bool: bool = False

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        if value not in (0, 1):  # True == 1, False == 0
            raise InputError(f"{self.name} must be 0/1 or true/false, got {value!r}", field=self.name)
        raw[self.name] = int(value)

    def decode(self, raw: Mapping[str, int]) -> Any:
        return bool(raw[self.name]) if self.as_bool else raw[self.name]


@dataclass(frozen=True)
class Units(Value):
    """Credit in kWh/kl/m3/min as a decimal string; TransferAmount in tenths, rounded up."""

    name: str = "units"
    raw_name: str = "amount"

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        raw[self.raw_name] = amt.encode_units(value, field=self.name)

    def decode(self, raw: Mapping[str, int]) -> Any:
        return amt.format_units(amt.decode_units(raw[self.raw_name]))


@dataclass(frozen=True)
class Watts(Value):
    """Power limits in whole watts, TransferAmount without scaling."""

    name: str
    raw_name: str = "amount"

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        raw[self.raw_name] = amt.encode_watts(value, field=self.name)

    def decode(self, raw: Mapping[str, int]) -> Any:
        return amt.decode_transfer(raw[self.raw_name])


@dataclass(frozen=True)
class Currency(Value):
    """Signed currency: sign bit 59, exponent bits 58..56 (e4..e2) and 31..30 (e1, e0)."""

    name: str = "currency"

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        sign, exponent, mantissa = amt.encode_currency(value, field=self.name)
        raw["sign"] = sign
        raw["exp_high"] = exponent >> 2
        raw["amount"] = ((exponent & 3) << 14) | mantissa

    def decode(self, raw: Mapping[str, int]) -> Any:
        exponent = (raw["exp_high"] << 2) | (raw["amount"] >> 14)
        value = amt.decode_currency(raw["sign"], exponent, raw["amount"] & 0x3FFF)
        return amt.format_currency(value)


@dataclass(frozen=True)
class MfrCode(Value):
    """Manufacturer code: 2 or 4 decimal digits, stored as a binary integer."""

    digits: int
    name: str = "mfr_code"

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:0{self.digits}d}"
        if not isinstance(value, str) or len(value) != self.digits or not value.isdigit():
            raise InputError(
                f"mfr_code must be {self.digits} decimal digits for class 1 subclass "
                f"{layout.subclass}, got {value!r}",
                field=self.name,
            )
        raw[self.name] = int(value)

    def decode(self, raw: Mapping[str, int]) -> Any:
        return f"{raw[self.name]:0{self.digits}d}"


@dataclass(frozen=True)
class Sgc(Value):
    """Supply group code (6 digits) as a binary integer in one raw field or split in two."""

    name: str
    raw_high: str | None = None  # when split: raw name of bits 23..12; `name` holds 11..0

    def encode(self, value: Any, raw: dict[str, int], layout: Layout) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:06d}"
        if not isinstance(value, str) or len(value) != 6 or not value.isdigit():
            raise InputError(f"sgc must be 6 decimal digits, got {value!r}", field="sgc")
        number = int(value)
        if self.raw_high is None:
            raw[self.name] = number
        else:
            raw[self.name] = number & 0xFFF
            raw[self.raw_high] = number >> 12

    def decode(self, raw: Mapping[str, int]) -> Any:
        if self.raw_high is None:
            return f"{raw[self.name]:06d}"
        return raw[self.name]  # half an SGC means nothing alone; the set joins the halves


# --- layouts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    token_class: int
    subclass: int
    name: str
    description: str
    fields: tuple[Field, ...]
    values: tuple[Value, ...]
    crc_c: bool = False
    variant: str = ""  # "64"/"128" where a subclass means different things per key size

    @property
    def encrypted(self) -> bool:
        return self.token_class != 1

    @property
    def has_tid(self) -> bool:
        return any(f.name == "tid" for f in self.fields)

    @property
    def is_key_change(self) -> bool:
        return self.token_class == 2 and self.subclass in (3, 4, 8, 9)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def value_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.values)

    def pack_raw(self, raw: Mapping[str, int]) -> int:
        """64-bit plain block (subclass, payload, CRC) from raw field values."""
        block = self.subclass << 60
        for f in self.fields:
            v = raw.get(f.name, 0)
            if not 0 <= v <= f.mask:
                raise InputError(f"{f.name} {v} does not fit {f.width} bits", field=f.name)
            block |= v << f.lo
        return block | block_crc(self.token_class, block, self.crc_c)

    def pack(self, request: Mapping[str, Any]) -> int:
        """64-bit plain block from a request's named fields (missing names are errors)."""
        raw: dict[str, int] = {}
        for value in self.values:
            if value.name not in request:
                raise InputError(
                    f"{value.name} is required for class {self.token_class} subclass "
                    f"{self.subclass} ({self.description})",
                    field=value.name,
                )
            value.encode(request[value.name], raw, self)
        return self.pack_raw(raw)

    def unpack_raw(self, block: int) -> dict[str, int]:
        return {f.name: (block >> f.lo) & f.mask for f in self.fields}

    def check_crc(self, block: int) -> None:
        check_crc(self.token_class, block, self.crc_c)

    def unpack(self, block: int) -> dict[str, Any]:
        """Request fields from a plain block; CrcError if the block does not authenticate."""
        self.check_crc(block)
        raw = self.unpack_raw(block)
        for v in self.values:
            v.check(raw, self)
        return {v.name: v.decode(raw) for v in self.values}


def check_crc(token_class: int, block: int, currency: bool = False) -> None:
    """CrcError unless the block's CRC field matches (how a wrong key or meter shows up)."""
    if block & 0xFFFF != block_crc(token_class, block, currency):
        raise CrcError(
            "token failed authentication: CRC mismatch (wrong meter or key, or a mistyped token)",
            field="token",
        )


def _register_family(subclass: int, name: str, description: str, value: Value) -> Layout:
    raw_name = getattr(value, "raw_name", value.name)
    return Layout(
        2,
        subclass,
        name,
        description,
        (Field("rnd", 56, 4), Field("tid", 32, 24), Field(raw_name, 16, 16)),
        (Int("rnd"), Int("tid"), value),
    )


_CREDIT_FIELDS = (Field("rnd", 56, 4), Field("tid", 32, 24), Field("amount", 16, 16))
_CURRENCY_FIELDS = (
    Field("sign", 59, 1),
    Field("exp_high", 56, 3),
    Field("tid", 32, 24),
    Field("amount", 16, 16),
)
_SERVICES = ("electricity", "water", "gas", "time")
_UNIT_NAMES = ("kWh", "kl", "m3", "min")

_ALL: list[Layout] = []
for _sub, _service in enumerate(_SERVICES):
    _ALL.append(
        Layout(0, _sub, f"credit_{_service}", f"transfer {_service} credit ({_UNIT_NAMES[_sub]})",
               _CREDIT_FIELDS, (Int("rnd"), Int("tid"), Units()))
    )
    _ALL.append(
        Layout(0, _sub + 4, f"currency_{_service}", f"transfer {_service} currency credit",
               _CURRENCY_FIELDS, (Int("tid"), Currency()), crc_c=True)
    )
_ALL += [
    Layout(1, 0, "test_36", "initiate meter test/display (2-digit MfrCode)",
           (Field("control", 24, 36), Field("mfr_code", 16, 8)), (Int("control"), MfrCode(2))),
    Layout(1, 1, "test_28", "initiate meter test/display (4-digit MfrCode)",
           (Field("control", 32, 28), Field("mfr_code", 16, 16)), (Int("control"), MfrCode(4))),
    Layout(1, 2, "sts202_read", "STS202-5 read control/flag (observed layout)",
           (Field("control", 24, 36), Field("mfr_code", 16, 8)), (Int("control"), MfrCode(2))),
    _register_family(0, "set_max_power_limit", "set maximum power limit", Watts("mpl_watts")),
    _register_family(1, "clear_credit", "clear credit register",
                     Int("register", accepted=CREDIT_REGISTERS,
                         rule="a credit register: 0-7 (0-3 units, 4-7 currency) or 65535 (all)")),
    _register_family(2, "set_tariff_rate", "set tariff rate", Int("rate")),
    _register_family(5, "clear_tamper", "clear tamper condition", Int("pad")),
    _register_family(6, "set_max_phase_unbalance", "set maximum phase power unbalance limit",
                     Watts("mppul_watts")),
    _register_family(7, "set_water_meter_factor", "set water meter factor", Int("wmf")),
    Layout(2, 10, "sts202_extended", "STS202-5 extended token (observed layout)",
           (Field("rnd", 56, 4), Field("tid", 32, 24), Field("index", 26, 6),
            Field("value", 16, 10)),
           (Int("rnd"), Int("tid"), Int("index"), Int("value"))),
    Layout(2, 3, "key_change_1", "set 1st section decoder key",
           (Field("ken_high", 56, 4), Field("krn", 52, 4), Field("ro", 51, 1),
            Field("third_token", 50, 1), Field("kt", 48, 2), Field("key_part", 16, 32)),
           (Int("ken_high"), Int("krn", lo_limit=1, hi_limit=9), Flag("ro"),
            Flag("third_token", as_bool=True), Int("kt"), Int("key_part"))),
    Layout(2, 4, "key_change_2", "set 2nd section decoder key",
           (Field("ken_low", 56, 4), Field("ti", 48, 8), Field("key_part", 16, 32)),
           (Int("ken_low"), Int("ti", hi_limit=99), Int("key_part"))),
    Layout(2, 8, "key_change_3_sgc", "set 3rd section (new SGC of a 64-bit key change)",
           (Field("sgc", 36, 24),), (Sgc("sgc"),), variant="64"),
    Layout(2, 8, "key_change_3", "set 3rd section decoder key (128-bit)",
           (Field("sgc_low", 48, 12), Field("key_part", 16, 32)),
           (Int("sgc_low"), Int("key_part")), variant="128"),
    Layout(2, 9, "key_change_4", "set 4th section decoder key (128-bit)",
           (Field("sgc_high", 48, 12), Field("key_part", 16, 32)),
           (Int("sgc_high"), Int("key_part")), variant="128"),
]

LAYOUTS: dict[tuple[int, int, str], Layout] = {
    (lay.token_class, lay.subclass, lay.variant): lay for lay in _ALL
}


_KEY_SIZE_DEPENDENT = {(2, 8), (2, 9)}


def layout_for(token_class: int, subclass: int, key_bits: int = 64) -> Layout:
    """The layout of a class/subclass; subclasses 2/8 and 2/9 depend on the key size."""
    variant = str(key_bits) if (token_class, subclass) in _KEY_SIZE_DEPENDENT else ""
    try:
        return LAYOUTS[(token_class, subclass, variant)]
    except KeyError:
        size = f" with a {key_bits}-bit decoder key" if variant else ""
        raise FunctionError(
            f"class {token_class} subclass {subclass} is reserved or not supported{size}",
            field="subclass",
        ) from None
