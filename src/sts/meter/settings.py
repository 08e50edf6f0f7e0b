"""Meter settings (the numbers of meter-behaviour.md) and the meter config file.

A config is a FORMAT.md meter object plus optional settings, either flat
(`{"pan": ..., "ea": 7, ..., "max_credit": "500"}`) or nested (`{"meter": {...},
"settings": {...}}`).  Every default below is the published default of meter-behaviour.md.
Durations are in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from sts.errors import InputError

SERVICES = ("electricity", "water", "gas", "time")
UNITS = {"electricity": "kWh", "water": "kl", "gas": "m3", "time": "min"}
# credit registers, indexed by the RegisterToClear numbers of a Clear Credit token
REGISTERS = (*SERVICES, *(f"currency_{s}" for s in SERVICES))
KEY_TYPES = (0, 1, 2, 3)

# FORMAT.md meter-object fields (the key); everything else in a config is a setting
METER_FIELDS = frozenset({
    "pan", "dkga", "ea", "table_set", "vending_key", "kt", "sgc", "ti", "krn", "ken",
    "base_date", "decoder_key",
})
# initial non-volatile contents a config may give (applied once, by `new`)
INITIAL_FIELDS = frozenset({
    "tids", "tid_floor", "credit", "tamper", "mpl_watts", "rollover_base_date",
})


@dataclass(frozen=True)
class Settings:
    """What distinguishes one meter model from another: all numbers are configurable."""

    service: str = "electricity"  # the service whose credit the relay (or valve) follows
    mfr_code: str | None = None  # None: from the PAN's DRN, else "00"
    tid_memory_depth: int = 50
    max_credit: Decimal | None = Decimal("99999.9")  # per register, in its unit; None = none
    price_per_unit: Decimal | None = None  # currency per unit; None: currency not drawn
    entry_timeout: float = 20.0
    result_time: float = 3.0
    amount_time: float = 5.0
    toggle_period: float = 2.0
    lockout_threshold: int = 3  # wrong inputs before the first lockout
    lockout_initial: float = 10.0
    lockout_max: float = 1280.0
    kct_timeout: float = 600.0
    overload_delay: float = 30.0
    overload_reconnect: float = 120.0
    overload_trip_limit: int = 5
    overload_window: float = 1800.0
    overload_lockout: float = 1800.0
    nominal_voltage: float = 230.0
    voltage_low_pct: float = 68.0
    voltage_high_pct: float = 132.0
    key_types: tuple[int, ...] = KEY_TYPES  # key types a key change may install
    software_version: str = "sts-vm 1.0"

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise InputError(f"service must be one of {', '.join(SERVICES)}", field="service")
        if self.mfr_code is not None and (
            not isinstance(self.mfr_code, str) or len(self.mfr_code) not in (2, 4)
            or not self.mfr_code.isdigit()
        ):
            raise InputError("mfr_code must be 2 or 4 decimal digits", field="mfr_code")
        for name in ("tid_memory_depth", "lockout_threshold", "overload_trip_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer", field=name)
        for f in fields(self):
            if f.type == "float":
                value = getattr(self, f.name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise InputError(f"{f.name} must be a non-negative number", field=f.name)
                object.__setattr__(self, f.name, float(value))
        if self.nominal_voltage <= 0:
            raise InputError("nominal_voltage must be positive", field="nominal_voltage")
        if not self.voltage_low_pct <= 100 <= self.voltage_high_pct:
            raise InputError("the voltage window must contain 100 % of Un",
                             field="voltage_low_pct")
        if any(kt not in KEY_TYPES for kt in self.key_types):
            raise InputError("key_types must be a list of 0..3", field="key_types")

    @property
    def voltage_window(self) -> tuple[float, float]:
        un = self.nominal_voltage
        return un * self.voltage_low_pct / 100, un * self.voltage_high_pct / 100

    def lockout_seconds(self, wrong: int) -> float | None:
        """Keypad lock after `wrong` consecutive wrong inputs (None: not locked)."""
        extra = wrong - self.lockout_threshold
        if extra < 0:
            return None
        if extra >= 64:
            return self.lockout_max
        return float(min(self.lockout_initial * 2**extra, self.lockout_max))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("max_credit", "price_per_unit"):
            if out[name] is not None:
                out[name] = str(out[name])
        out["key_types"] = list(self.key_types)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, path: str = "settings") -> Settings:
        known = {f.name for f in fields(cls)}
        extra = sorted(set(obj) - known)
        if extra:
            raise InputError(f"unknown meter setting(s): {', '.join(extra)}",
                             field=f"{path}.{extra[0]}")
        values = dict(obj)
        for name in ("max_credit", "price_per_unit"):
            if values.get(name) is not None:
                values[name] = decimal_of(values[name], f"{path}.{name}")
        if "key_types" in values:
            if not isinstance(values["key_types"], list):
                raise InputError("key_types must be a list", field=f"{path}.key_types")
            values["key_types"] = tuple(values["key_types"])
        try:
            return cls(**values)
        except InputError as exc:
            if exc.field and not exc.field.startswith(path):
                exc.field = f"{path}.{exc.field}"
            raise


def decimal_of(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{field} must be a decimal number or string", field=field)
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise InputError(f"{field} {value!r} is not a decimal number", field=field) from None
    if not out.is_finite():
        raise InputError(f"{field} must be finite", field=field)
    return out


@dataclass(frozen=True)
class MeterConfig:
    """A parsed config file: the FORMAT.md meter object, settings, initial memory."""

    meter: Mapping[str, Any]
    settings: Settings
    initial: Mapping[str, Any]


def parse_config(obj: Any) -> MeterConfig:
    if not isinstance(obj, Mapping):
        raise InputError("a meter config must be a JSON object", field="config")
    obj = dict(obj)
    obj.pop("id", None)
    nested_settings = obj.pop("settings", None)
    if "meter" in obj:
        meter = obj.pop("meter")
        if not isinstance(meter, Mapping):
            raise InputError("config.meter must be a JSON object", field="config.meter")
        rest = obj
    else:
        meter = {k: v for k, v in obj.items() if k in METER_FIELDS}
        rest = {k: v for k, v in obj.items() if k not in METER_FIELDS}
    initial = {k: v for k, v in rest.items() if k in INITIAL_FIELDS}
    setting_values = {k: v for k, v in rest.items() if k not in INITIAL_FIELDS}
    if nested_settings is not None:
        if not isinstance(nested_settings, Mapping):
            raise InputError("config.settings must be a JSON object", field="config.settings")
        setting_values.update(nested_settings)
    if "ea" not in meter:
        raise InputError("the config has no meter key (FORMAT.md meter object with ea)",
                         field="config.ea")
    return MeterConfig(dict(meter), Settings.from_json(setting_values, path="config"), initial)
