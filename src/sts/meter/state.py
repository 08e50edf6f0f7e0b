"""Everything a meter is at one instant, and its JSON form for the state file.

Three parts, kept apart on purpose:

* `Memory` - what a real meter keeps in non-volatile memory: credit, TID memory, key and
  identity, management values, tamper flag, relay position and the load-limit timers.
  It survives a power cycle.
* `Volatile` - RAM: the keypad buffer, the screens on the LCD, the wrong-input counter and
  keypad lockout, a half-entered key change set, the running overload timer.  A power cycle
  clears it (the lockout is meant to reset that way).  The state file still records it, so
  that one CLI call can pick up where the previous one stopped.
* `Environment` - the simulated world around the meter: time, load, supply voltage, flows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sts.meter.keys import OwnKey, key_from_json, key_to_json
from sts.meter.settings import REGISTERS, SERVICES, Settings

STATE_FORMAT = "sts-meter-state"
STATE_VERSION = 1
ZERO = Decimal(0)


@dataclass
class Screen:
    """One LCD screen: `text` from `start` until `end`; a toggle screen alternates `text`
    with the seconds left until `end` every toggle period."""

    start: float
    end: float
    text: str
    toggle: bool = False

    def to_json(self) -> list[Any]:
        return [self.start, self.end, self.text, self.toggle]

    @classmethod
    def from_json(cls, obj: list[Any]) -> Screen:
        return cls(float(obj[0]), float(obj[1]), str(obj[2]), bool(obj[3]))


def _registers() -> dict[str, Decimal]:
    return dict.fromkeys(REGISTERS, ZERO)


@dataclass
class Memory:
    key: OwnKey
    table_set_name: str | None
    tids: list[int] = field(default_factory=list)  # accepted TIDs, at most the depth
    tid_floor: int = 0  # TIDs below this are Old (manufacture TID; 0 = none)
    registers: dict[str, Decimal] = field(default_factory=_registers)
    consumed: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(SERVICES, ZERO))
    mpl_watts: int | None = None
    mppul_watts: int | None = None
    tariff_rate: int | None = None
    water_meter_factor: int | None = None
    extended: dict[int, int] = field(default_factory=dict)  # STS202-5 index -> value
    tamper: bool = False
    tamper_kind: str | None = None
    relay_closed: bool = False
    trips: list[float] = field(default_factory=list)  # load-limit disconnections
    overload_open_from: float | None = None
    overload_open_until: float | None = None
    last_result: int = 0  # the token result register (Conlog numbering)
    powered: bool = True
    next_base_date: int | None = None  # base date a key change with RO=1 moves to


@dataclass
class Volatile:
    entry: str = ""
    entry_at: float | None = None
    screens: list[Screen] = field(default_factory=list)
    wrong: int = 0
    lockout_until: float | None = None
    kct: dict[int, dict[str, Any]] = field(default_factory=dict)
    kct_at: float | None = None
    overload_since: float | None = None


@dataclass
class Environment:
    now: float
    load_watts: float = 0.0
    voltage: float | None = None  # None: nominal
    flows: dict[str, float] = field(default_factory=dict)  # service -> units per hour


@dataclass
class MeterState:
    settings: Settings
    memory: Memory
    volatile: Volatile
    env: Environment
    sta_tables: str | None = None  # table file the key's table set came from (a path)

    # --- JSON -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        m, v, e = self.memory, self.volatile, self.env
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "sta_tables": self.sta_tables,
            "settings": self.settings.to_json(),
            "key": key_to_json(m.key, m.table_set_name),
            "memory": {
                "tids": m.tids,
                "tid_floor": m.tid_floor,
                "registers": {k: str(x) for k, x in m.registers.items()},
                "consumed": {k: str(x) for k, x in m.consumed.items()},
                "mpl_watts": m.mpl_watts,
                "mppul_watts": m.mppul_watts,
                "tariff_rate": m.tariff_rate,
                "water_meter_factor": m.water_meter_factor,
                "extended": {str(k): x for k, x in m.extended.items()},
                "tamper": m.tamper,
                "tamper_kind": m.tamper_kind,
                "relay_closed": m.relay_closed,
                "trips": m.trips,
                "overload_open_from": m.overload_open_from,
                "overload_open_until": m.overload_open_until,
                "last_result": m.last_result,
                "powered": m.powered,
                "next_base_date": m.next_base_date,
            },
            "volatile": {
                "entry": v.entry,
                "entry_at": v.entry_at,
                "screens": [s.to_json() for s in v.screens],
                "wrong": v.wrong,
                "lockout_until": v.lockout_until,
                "kct": {str(k): x for k, x in v.kct.items()},
                "kct_at": v.kct_at,
                "overload_since": v.overload_since,
            },
            "environment": {
                "now": e.now,
                "load_watts": e.load_watts,
                "voltage": e.voltage,
                "flows": e.flows,
            },
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], tables_file: str | None) -> MeterState:
        """Inverse of `to_json`; KeyError/TypeError/ValueError mean a malformed file."""
        tables = tables_file or obj.get("sta_tables")
        key_obj = obj["key"]
        mo, vo, eo = obj["memory"], obj["volatile"], obj["environment"]
        memory = Memory(
            key=key_from_json(key_obj, tables),
            table_set_name=key_obj.get("table_set"),
            tids=[int(t) for t in mo["tids"]],
            tid_floor=int(mo["tid_floor"]),
            registers={k: Decimal(mo["registers"].get(k, "0")) for k in REGISTERS},
            consumed={k: Decimal(mo["consumed"].get(k, "0")) for k in SERVICES},
            mpl_watts=mo["mpl_watts"],
            mppul_watts=mo["mppul_watts"],
            tariff_rate=mo["tariff_rate"],
            water_meter_factor=mo["water_meter_factor"],
            extended={int(k): int(x) for k, x in mo["extended"].items()},
            tamper=bool(mo["tamper"]),
            tamper_kind=mo.get("tamper_kind"),
            relay_closed=bool(mo["relay_closed"]),
            trips=[float(t) for t in mo["trips"]],
            overload_open_from=mo["overload_open_from"],
            overload_open_until=mo["overload_open_until"],
            last_result=int(mo["last_result"]),
            powered=bool(mo["powered"]),
            next_base_date=mo["next_base_date"],
        )
        volatile = Volatile(
            entry=str(vo["entry"]),
            entry_at=vo["entry_at"],
            screens=[Screen.from_json(s) for s in vo["screens"]],
            wrong=int(vo["wrong"]),
            lockout_until=vo["lockout_until"],
            kct={int(k): dict(x) for k, x in vo["kct"].items()},
            kct_at=vo["kct_at"],
            overload_since=vo["overload_since"],
        )
        env = Environment(
            now=float(eo["now"]),
            load_watts=float(eo["load_watts"]),
            voltage=None if eo["voltage"] is None else float(eo["voltage"]),
            flows={str(k): float(x) for k, x in eo["flows"].items()},
        )
        return cls(Settings.from_json(obj["settings"]), memory, volatile, env,
                   obj.get("sta_tables"))
