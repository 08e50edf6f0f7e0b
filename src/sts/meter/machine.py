"""The virtual payment meter: a sans-IO state machine.  Every rule of the meter is here.

Theory of operation
===================

A `Meter` is a `MeterState` (see `state.py`), an injected `Clock` and the rules in this
module.  It performs no I/O and never reads the system clock: a caller (the CLI, the fleet
runner, a test) loads a state, hands it to a `Meter` with a clock, feeds inputs, reads the
outputs and saves the state.  The same inputs at the same clock readings always give the
same outputs.

Inputs (methods)
    `press(key)` one keypad key: "0".."9", "enter", "back";
    `enter(token)` a whole 20-digit token (as typed, spaces and dashes allowed);
    `tick()` time has passed: catch up with the clock;
    `set_load(watts)`, `set_voltage(volts)`, `set_flow(service, units_per_hour)`;
    `tamper(kind)`; `power(on)`.

Outputs
    the `TokenResult` returned by `enter`/`press("enter")` (result name, Conlog result code,
    display text, credited amount); `display()` (text, digit counter, symbols for credit,
    relay, alarm and tamper); `relay_closed`; `take_events()` (what happened, with times).

Time
    Every input first catches up with the clock (`_catch_up`).  Catching up walks from one
    *deadline* to the next - credit running out, the 30 s overload trip, the automatic
    reconnect - integrating consumption at a constant rate in between, so a single
    `advance` of a day gives the same result as 86,400 one-second steps.  Timers that only
    change what is shown (screens, the keypad lockout) are functions of the time and need
    no deadline.

Rules, in the order they are written below
    1. Results: name, Conlog code and display text of every token result (`RESULTS`).
    2. Keypad: digit buffer (20 digits), dash every fourth digit, counter, 20 s timeout.
    3. Token pipeline: power -> format -> keypad lockout (classes 0, 2, 3 are not decrypted
       while locked) -> decrypt + CRC + class/subclass + KEN + DDTK + MfrCode (the engine)
       -> TID memory (Used, Old) -> the token's own action -> result, screens, counters.
    4. Wrong inputs and the keypad lockout (Reject-x, 3 -> 10 s doubling to 1,280 s).
    5. TID memory: depth N (default 50); Used if remembered; Old if below the floor or,
       with the memory full, below the oldest remembered TID; a new TID evicts the oldest.
    6. Credit: per register, Full above the maximum credit (the token stays valid).
    7. Management tokens: MPL, Clear Credit, tariff rate, Clear Tamper, MPPUL, WMF, STS202.
    8. Key change sets: any order, PLS-1St/PLS-2nd, 10 minute gap, 2/3/4 tokens, RO.
    9. Class 1 test/display tokens and the control-bit assignment (`TEST_FUNCTIONS`).
   10. Relay: closed exactly when powered, no tamper, credit left and no load-limit
       disconnection - but it only moves while the supply voltage is within 68-132 % Un.
   11. Load limit: overload 30 s -> open; reconnect after 2 min; the 5th trip within
       30 min -> open for 30 min instead; then the procedure repeats.
   12. Consumption: load (W) draws the electricity register, flows draw water/gas/time;
       an empty unit register falls back to the currency register at `price_per_unit`.
   13. Power: off stops everything and clears RAM (keypad, lockout, half key change);
       on restores the relay to its intended position.
   14. Display: keypad entry, else the current screen, else a load-limit countdown, else
       the credit of the relay's service.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from sts.codec.amount import EXACT
from sts.codec.digits import group, parse_token
from sts.engine.core import decode
from sts.engine.model import DecodedToken
from sts.engine.wire import meter_from_json
from sts.errors import InputError, MeterTimeError, StsError, TokenFormatError, TokenRejected
from sts.meter.clock import Clock, iso
from sts.meter.keys import OwnKey
from sts.meter.settings import REGISTERS, SERVICES, UNITS, MeterConfig, decimal_of
from sts.meter.state import ZERO, Environment, Memory, MeterState, Screen, Volatile

# --- 1. results ---------------------------------------------------------------------------

# name -> (token result register code, display text); "{x}" is the wrong-input count
RESULTS: dict[str, tuple[int, str]] = {
    "accept": (1, "Accept"),
    "key_change_1": (2, "PLS-2nd"),  # first section held; the display names what is missing
    "key_change_2": (3, "PLS-1St"),  # a later section arrived before the first
    "full": (4, "Full"),
    "key_type": (5, "Err-05"),
    "format": (6, "Reject-{x}"),
    "range": (7, "Err-07"),
    "function": (8, "Err-08"),
    "old": (9, "Old"),
    "used": (10, "Used"),
    "key_expired": (11, "Err-11"),
    "ddtk": (12, "Err-12"),
    "reject": (13, "Reject-{x}"),
    "mfr_code": (14, "Err-14"),
    "lockout": (15, "REJECT"),
    "not_ready": (16, ""),
}
# engine rejection (result_code) -> result name
_REJECTIONS = {13: "reject", 7: "range", 8: "function", 5: "key_type", 14: "mfr_code",
               11: "key_expired", 12: "ddtk"}
# results that count as a wrong input towards the keypad lockout
WRONG_INPUTS = frozenset({"reject", "format"})
# results that reset the lockout when a meter-specific (class 0/2) token gets them
ACCEPTED = frozenset({"accept", "key_change_1", "key_change_2"})

# --- 9. class 1 control bits (our documented assignment; the standard's table is not public)

TEST_FUNCTIONS: tuple[tuple[int, str], ...] = (
    (1, "relay"),
    (2, "lcd"),
    (3, "total_energy"),
    (4, "krn"),
    (5, "ti"),
    (6, "power_limit"),
    (7, "tamper_status"),
    (8, "power"),
    (9, "version"),
    (10, "key_type"),
    (11, "phase_unbalance_limit"),
    (12, "tariff_rate"),
    (13, "sgc"),
    (14, "ken"),
    (15, "water_meter_factor"),
    (16, "result_register"),
    (17, "last_tid"),
)
TEST_ALL_BIT = 0

KEYPAD_DIGITS = 20
_EPS = Decimal("1e-9")  # below this a register is empty (float time meets decimal credit)
_QUANT = Decimal("1e-9")
_SHOW = Decimal("0.01")


@dataclass(frozen=True)
class TokenResult:
    result: str
    code: int
    display: str
    message: str = ""
    token_class: int | None = None
    subclass: int | None = None
    kind: str | None = None
    tid: int | None = None
    register: str | None = None
    amount: str | None = None
    unit: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"result": self.result, "code": self.code, "display": self.display}
        for name in ("message", "token_class", "subclass", "kind", "tid", "register", "amount",
                     "unit"):
            value = getattr(self, name)
            if value is not None and value != "":
                out["class" if name == "token_class" else name] = value
        if self.details:
            out.update(self.details)
        return out


@dataclass(frozen=True)
class Display:
    text: str
    counter: int | None = None  # digits entered so far (upper-left counter while typing)
    credit: bool = False  # credit symbol: the relay's service has credit
    relay: bool = False  # relay (or valve) closed
    alarm: bool = False  # load above the limit: alarm and flashing LEDs
    tamper: bool = False  # raised-hand symbol
    powered: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "counter": self.counter, "credit": self.credit,
                "relay": self.relay, "alarm": self.alarm, "tamper": self.tamper,
                "powered": self.powered}


@dataclass(frozen=True)
class Event:
    t: float
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "event": self.name, **self.data}


def _amount_text(amount: Decimal, register: str) -> str:
    unit = UNITS.get(register)
    return f"{amount} {unit}" if unit else f"{amount}"


class Meter:
    """One virtual meter.  See the module docstring for the theory of operation."""

    def __init__(self, state: MeterState, clock: Clock) -> None:
        self.state = state
        self.clock = clock
        self.events: list[Event] = []
        self._handlers: dict[str, Callable[[DecodedToken], TokenResult]] = {
            **{f"credit_{s}": self._credit for s in SERVICES},
            **{f"currency_{s}": self._credit for s in SERVICES},
            "set_max_power_limit": self._management,
            "clear_credit": self._management,
            "set_tariff_rate": self._management,
            "clear_tamper": self._management,
            "set_max_phase_unbalance": self._management,
            "set_water_meter_factor": self._management,
            "sts202_extended": self._management,
            "key_change_1": self._key_change,
            "key_change_2": self._key_change,
            "key_change_3": self._key_change,
            "key_change_3_sgc": self._key_change,
            "key_change_4": self._key_change,
            "test_36": self._test,
            "test_28": self._test,
            "sts202_read": self._test,
        }

    @classmethod
    def create(cls, config: MeterConfig, clock: Clock, *, tables_file: str | None = None) -> Meter:
        """A new meter from a config (FORMAT.md meter object + settings + initial memory)."""
        settings = config.settings
        engine_key = meter_from_json(config.meter, tables_file=tables_file)
        mfr = settings.mfr_code
        if mfr is None:
            pan_mfr = engine_key.pan.mfr_code if engine_key.pan is not None else ""
            mfr = pan_mfr if len(pan_mfr) in (2, 4) else "00"
        key = OwnKey.of(engine_key, mfr_code=mfr)
        table_name = None
        if key.table_set is not None:
            table_name = str(config.meter.get("table_set", "production"))
        memory = Memory(key=key, table_set_name=table_name)
        _apply_initial(memory, config.initial, settings.tid_memory_depth)
        state = MeterState(settings, memory, Volatile(), Environment(now=clock.now()),
                           tables_file)
        meter = cls(state, clock)
        meter._settle()
        meter.events.clear()
        return meter

    # === inputs ============================================================================

    def tick(self) -> None:
        """Time has passed: catch up with the clock."""
        self._catch_up()

    def press(self, key: str) -> TokenResult | None:
        """One keypad key; returns the token result when "enter" completes an entry."""
        self._catch_up()
        return self._key(key)

    def enter(self, token: str) -> TokenResult:
        """A whole token, as if typed and confirmed with enter."""
        self._catch_up()
        v = self.state.volatile
        v.entry, v.entry_at = "", None
        return self._token(token)

    def set_load(self, watts: float) -> None:
        if not math.isfinite(watts) or watts < 0:
            raise InputError("load must be a non-negative number of watts", field="watts")
        self._catch_up()
        self.state.env.load_watts = float(watts)
        self._settle()

    def set_voltage(self, volts: float) -> None:
        if not math.isfinite(volts) or volts < 0:
            raise InputError("voltage must be a non-negative number of volts", field="volts")
        self._catch_up()
        before = self._voltage_ok()
        self.state.env.voltage = float(volts)
        after = self._voltage_ok()
        if before != after:
            lo, hi = self.state.settings.voltage_window
            self._event("voltage_in_window" if after else "voltage_out_of_window",
                        volts=volts, window=[lo, hi])
        self._settle()

    def set_flow(self, service: str, units_per_hour: float) -> None:
        if service not in SERVICES or service == "electricity":
            raise InputError("flow is for water, gas or time (electricity follows the load)",
                             field="service")
        if not math.isfinite(units_per_hour) or units_per_hour < 0:
            raise InputError("flow must be a non-negative rate", field="rate")
        self._catch_up()
        self.state.env.flows[service] = float(units_per_hour)
        self._settle()

    def tamper(self, kind: str = "cover") -> None:
        self._catch_up()
        m = self.state.memory
        m.tamper, m.tamper_kind = True, kind
        self._event("tamper", kind=kind)
        self._settle()

    def power(self, on: bool) -> None:
        self._catch_up()
        m = self.state.memory
        if m.powered == on:
            return
        # 13. a power cycle clears RAM: keypad, screens, lockout counters, half key change
        self.state.volatile = Volatile()
        m.powered = on
        self._event("power_on" if on else "power_off")
        self._settle()

    # === outputs ===========================================================================

    @property
    def relay_closed(self) -> bool:
        return self.state.memory.relay_closed

    def take_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    def display(self) -> Display:
        """14. What the LCD shows at the state's time (call `tick()` first to move on)."""
        s = self.state
        m, v, now = s.memory, s.volatile, s.env.now
        if not m.powered:
            return Display("", powered=False, tamper=m.tamper)
        symbols = {
            "credit": self._has_credit(),
            "relay": m.relay_closed,
            "alarm": v.overload_since is not None,
            "tamper": m.tamper,
        }
        if v.entry:
            return Display(group(v.entry, sep="-"), counter=len(v.entry), **symbols)
        for screen in v.screens:
            if screen.start <= now < screen.end:
                return Display(self._screen_text(screen, now), **symbols)
        if m.overload_open_until is not None and m.overload_open_from is not None:
            screen = Screen(m.overload_open_from, m.overload_open_until, "OVErLOAd", True)
            return Display(self._screen_text(screen, now), **symbols)
        return Display(self._credit_text(), **symbols)

    def snapshot(self) -> dict[str, Any]:
        """Everything a `show` prints: registers, identity (no key), limits, timers."""
        s = self.state
        m, v, e, st = s.memory, s.volatile, s.env, s.settings
        key = m.key
        now = e.now
        locked = self._locked()
        return {
            "time": now,
            "display": self.display().as_dict(),
            "relay": "closed" if m.relay_closed else "open",
            "powered": m.powered,
            "registers": {k: str(_show(x)) for k, x in m.registers.items()},
            "consumed": {k: str(_show(x)) for k, x in m.consumed.items()},
            "identity": {
                "ea": key.ea, "kt": key.kt, "krn": key.krn, "ti": key.ti, "sgc": key.sgc,
                "ken": key.ken, "base_date": key.base_date, "mfr_code": key.mfr_code,
                "pan": str(key.pan) if key.pan is not None else None,
                "table_set": m.table_set_name, "key_bits": key.key_bits,
            },
            "tid_memory": {"depth": st.tid_memory_depth, "count": len(m.tids),
                           "newest": m.tids[-1] if m.tids else None,
                           "oldest": min(m.tids) if m.tids else None, "floor": m.tid_floor},
            "max_power_limit_watts": m.mpl_watts,
            "max_phase_unbalance_watts": m.mppul_watts,
            "tariff_rate": m.tariff_rate,
            "water_meter_factor": m.water_meter_factor,
            "extended": {str(k): x for k, x in m.extended.items()},
            "tamper": m.tamper,
            "tamper_kind": m.tamper_kind,
            "last_result": m.last_result,
            "load_watts": e.load_watts,
            "voltage": e.voltage if e.voltage is not None else st.nominal_voltage,
            "voltage_ok": self._voltage_ok(),
            "flows": e.flows,
            "keypad": {"entry": v.entry, "wrong_inputs": v.wrong,
                       "lockout_remaining": math.ceil(v.lockout_until - now)
                       if locked and v.lockout_until is not None else 0},
            "key_change_pending": sorted(v.kct),
            "overload": {
                "alarm": v.overload_since is not None,
                "trips": m.trips,
                "disconnected_until": m.overload_open_until,
            },
            "next_base_date": m.next_base_date,
        }

    # === 2. keypad =========================================================================

    def _key(self, key: str) -> TokenResult | None:
        s = self.state
        v, now = s.volatile, s.env.now
        if not s.memory.powered:
            return None
        if key in ("enter", "#", "E"):
            if not v.entry:
                return None
            text = v.entry
            v.entry, v.entry_at = "", None
            return self._token(text)
        if key in ("back", "*", "B"):
            v.entry = v.entry[:-1]
            v.entry_at = now if v.entry else None
            return None
        if len(key) != 1 or not key.isdigit():
            raise InputError(f"unknown key {key!r}: use 0-9, enter (#) or back (*)", field="key")
        if len(v.entry) < KEYPAD_DIGITS:  # further digits are ignored
            v.entry += key
        v.entry_at = now
        v.screens.clear()  # typing replaces whatever was shown
        return None

    # === 3. the token pipeline =============================================================

    def _token(self, text: str) -> TokenResult:
        m = self.state.memory
        if not m.powered:
            return self._result("not_ready", "the meter is not powered")
        try:
            number = parse_token(text)
        except TokenFormatError as exc:
            if self._locked():
                return self._lockout()
            return self._wrong("format", exc.message, None)
        token_class = (number >> 27) & 3
        if token_class != 1 and self._locked():
            return self._lockout()
        try:
            decoded = decode(number, m.key)
        except TokenRejected as exc:
            name = _REJECTIONS.get(exc.result_code, "reject")
            if name in WRONG_INPUTS or token_class == 3:
                return self._wrong(name, exc.message, token_class)
            return self._result(name, exc.message, token_class=token_class)
        except StsError as exc:  # a field the engine cannot even decode
            return self._wrong("format", exc.message, token_class)
        handler = self._handlers.get(decoded.kind)
        if handler is None:
            return self._result("function", f"{decoded.kind} is not supported by this meter",
                                token_class=token_class, subclass=decoded.subclass)
        return handler(decoded)

    def _result(self, name: str, message: str = "", *, screens: list[Screen] | None = None,
                text: str | None = None, **info: Any) -> TokenResult:
        """Record a result: result register, screens, lockout reset; build the output."""
        s = self.state
        v, now = s.volatile, s.env.now
        code, template = RESULTS[name]
        if text is None:
            text = template.format(x=v.wrong)
        s.memory.last_result = code
        if name != "not_ready":
            v.screens = screens if screens is not None else [
                Screen(now, now + s.settings.result_time, text)
            ]
        if name in ACCEPTED and info.get("token_class") in (0, 2):
            v.wrong, v.lockout_until = 0, None  # 4. an accepted meter-specific token
        result = TokenResult(name, code, text, message, **info)
        self._event("token", result=name, code=code)
        return result

    def _info(self, d: DecodedToken) -> dict[str, Any]:
        return {"token_class": d.token_class, "subclass": d.subclass, "kind": d.kind,
                "tid": d.tid}

    # === 4. wrong inputs and keypad lockout ================================================

    def _locked(self) -> bool:
        until = self.state.volatile.lockout_until
        return until is not None and self.state.env.now < until

    def _wrong(self, name: str, message: str, token_class: int | None) -> TokenResult:
        s = self.state
        v, now = s.volatile, s.env.now
        if not self._locked():  # inputs while locked are not counted (nothing was tried)
            v.wrong += 1
            seconds = s.settings.lockout_seconds(v.wrong)
            if seconds is not None:
                v.lockout_until = now + seconds
                self._event("keypad_lockout", seconds=seconds, wrong_inputs=v.wrong)
        # every wrong input shows Reject-x, whatever its result code
        return self._result(name, message, text=f"Reject-{v.wrong}", token_class=token_class)

    def _lockout(self) -> TokenResult:
        s = self.state
        v, now = s.volatile, s.env.now
        assert v.lockout_until is not None
        remaining = math.ceil(v.lockout_until - now)
        screens = [Screen(now, v.lockout_until, RESULTS["lockout"][1], toggle=True)]
        return self._result("lockout", f"keypad locked for another {remaining} s",
                            screens=screens, details={"lockout_remaining": remaining})

    # === 5. TID memory =====================================================================

    def _tid_refusal(self, tid: int) -> str | None:
        m = self.state.memory
        if tid in m.tids:
            return "used"
        if tid < m.tid_floor or (
            len(m.tids) >= self.state.settings.tid_memory_depth and tid < min(m.tids)
        ):
            return "old"
        return None

    def _remember(self, tid: int) -> None:
        m = self.state.memory
        m.tids.append(tid)
        while len(m.tids) > self.state.settings.tid_memory_depth:
            m.tids.remove(min(m.tids))  # the new TID replaces the oldest

    def _accept_screens(self, value_text: str | None) -> list[Screen]:
        st, now = self.state.settings, self.state.env.now
        screens = [Screen(now, now + st.result_time, RESULTS["accept"][1])]
        if value_text is not None:
            start = now + st.result_time
            screens.append(Screen(start, start + st.amount_time, value_text))
        return screens

    # === 6. credit =========================================================================

    def _credit(self, d: DecodedToken) -> TokenResult:
        m, st = self.state.memory, self.state.settings
        info = self._info(d)
        assert d.tid is not None
        register = REGISTERS[d.subclass]
        text = d.fields["units"] if d.subclass < 4 else d.fields["currency"]
        amount = Decimal(text)
        unit = UNITS.get(register)
        refusal = self._tid_refusal(d.tid)
        if refusal is not None:
            return self._result(refusal, f"TID {d.tid} is {refusal}", **info)
        new = EXACT.add(m.registers[register], amount)  # exact over the whole currency range
        if st.max_credit is not None and amount > 0 and new > st.max_credit:
            return self._result(
                "full", f"{register} credit would be {new}, above the maximum {st.max_credit}",
                register=register, amount=text, unit=unit, **info,
            )
        m.registers[register] = new
        self._remember(d.tid)
        screens = self._accept_screens(_amount_text(amount, register))
        result = self._result("accept", screens=screens, register=register, amount=text,
                              unit=unit, **info)
        self._event("credit", register=register, amount=text)
        if amount < 0 or not m.relay_closed:
            self._settle()  # only then can the relay move
        return result

    # === 7. management tokens ==============================================================

    def _management(self, d: DecodedToken) -> TokenResult:
        m, v = self.state.memory, self.state.volatile
        info = self._info(d)
        assert d.tid is not None
        refusal = self._tid_refusal(d.tid)
        if refusal is not None:
            return self._result(refusal, f"TID {d.tid} is {refusal}", **info)
        f = d.fields
        shown: str | None = None
        details: dict[str, Any] = {}
        if d.kind == "set_max_power_limit":
            m.mpl_watts = int(f["mpl_watts"])
            v.overload_since = None  # a new limit restarts the overload timing
            shown = f"PL {m.mpl_watts} W"
            details["mpl_watts"] = m.mpl_watts
        elif d.kind == "clear_credit":
            register = int(f["register"])
            names = REGISTERS if register == 0xFFFF else (REGISTERS[register],)
            for name in names:
                m.registers[name] = ZERO
            shown = "CLr ALL" if register == 0xFFFF else f"CLr {register}"
            details["cleared"] = list(names)
        elif d.kind == "set_tariff_rate":
            m.tariff_rate = int(f["rate"])
            shown, details["rate"] = f"rAtE {m.tariff_rate}", m.tariff_rate
        elif d.kind == "clear_tamper":
            m.tamper, m.tamper_kind = False, None
            shown = "tAMPEr CLr"
        elif d.kind == "set_max_phase_unbalance":
            m.mppul_watts = int(f["mppul_watts"])
            shown, details["mppul_watts"] = f"PU {m.mppul_watts} W", m.mppul_watts
        elif d.kind == "set_water_meter_factor":
            m.water_meter_factor = int(f["wmf"])
            shown, details["wmf"] = f"F {m.water_meter_factor}", m.water_meter_factor
        else:  # sts202_extended
            m.extended[int(f["index"])] = int(f["value"])
            shown = f"E{f['index']} {f['value']}"
            details.update(index=f["index"], value=f["value"])
        self._remember(d.tid)
        result = self._result("accept", screens=self._accept_screens(shown), details=details,
                              **info)
        self._event("management", kind=d.kind, **details)
        self._settle()
        return result

    # === 8. key change sets ================================================================

    def _kct_needed(self) -> set[int]:
        kct = self.state.volatile.kct
        if self.state.memory.key.key_bits == 128:
            return {3, 4, 8, 9}
        third = bool(kct[3]["third_token"]) if 3 in kct else 8 in kct
        return {3, 4, 8} if third else {3, 4}

    def _key_change(self, d: DecodedToken) -> TokenResult:
        s = self.state
        v, now, st = s.volatile, s.env.now, s.settings
        info = self._info(d)
        f = dict(d.fields)
        # KRN 1..9 and TI 0..99 are refused by the decoder (the layouts' one rule)
        if d.kind == "key_change_1" and f["kt"] not in st.key_types:
            return self._result("key_type", f"key type {f['kt']} may not be installed", **info)
        if v.kct_at is not None and now - v.kct_at > st.kct_timeout:
            self._forget_key_change(v.kct_at + st.kct_timeout)
        v.kct[d.subclass] = f
        v.kct_at = now
        missing = sorted(self._kct_needed() - set(v.kct))
        if missing:
            ordinal = {3: "1St", 4: "2nd", 8: "3rd", 9: "4th"}[missing[0]]
            name = "key_change_1" if 3 in v.kct else "key_change_2"
            text = f"PLS-{ordinal}"
            screens = [Screen(now, now + st.result_time, text)]
            return self._result(name, f"key change section held; waiting for {missing}",
                                screens=screens, text=text, details={"missing": missing},
                                **info)
        return self._complete_key_change(info)

    def _complete_key_change(self, info: dict[str, Any]) -> TokenResult:
        s = self.state
        m, v = s.memory, s.volatile
        kct = v.kct
        key = m.key
        k1, k2 = kct[3], kct[4]
        sgc = key.sgc
        if key.key_bits == 128:
            key_int = (k1["key_part"] << 96 | kct[8]["key_part"] << 64
                       | kct[9]["key_part"] << 32 | k2["key_part"])
            sgc_number = kct[9]["sgc_high"] << 12 | kct[8]["sgc_low"]
            if sgc_number > 999_999:
                v.kct.clear()
                return self._result("range", f"SGC {sgc_number} is not 6 digits", **info)
            sgc = f"{sgc_number:06d}"
        else:
            key_int = k1["key_part"] << 32 | k2["key_part"]
            if k1["third_token"]:
                sgc = kct[8]["sgc"]
        ro = bool(k1["ro"])
        base_date = key.base_date
        if ro and m.next_base_date is not None:
            base_date, m.next_base_date = m.next_base_date, None
        m.key = OwnKey.of(
            key,
            decoder_key=key_int.to_bytes(key.key_bits // 8, "big"),
            kt=k1["kt"], krn=k1["krn"], ti=k2["ti"], ken=k1["ken_high"] << 4 | k2["ken_low"],
            sgc=sgc, base_date=base_date,
        )
        if ro:
            m.tids.clear()
            m.tid_floor = 0
        v.kct.clear()
        v.kct_at = None
        changed = {"krn": m.key.krn, "ti": m.key.ti, "kt": m.key.kt, "sgc": m.key.sgc,
                   "ken": m.key.ken, "ro": ro, "base_date": m.key.base_date}
        self._event("key_changed", **changed)
        return self._result("accept", details={"key_change": changed}, **info)

    def _forget_key_change(self, at: float) -> None:
        v = self.state.volatile
        if v.kct:
            self.events.append(Event(at, "key_change_timeout", {"held": sorted(v.kct)}))
        v.kct.clear()
        v.kct_at = None

    # === 9. class 1 test / display tokens ==================================================

    def _test(self, d: DecodedToken) -> TokenResult:
        s = self.state
        m, st, now = s.memory, s.settings, s.env.now
        info = self._info(d)
        control = int(d.fields["control"])
        if d.kind == "sts202_read":
            shown = [("read", f"rEAd {control:x}")]
        else:
            every = control >> TEST_ALL_BIT & 1
            shown = [(name, self._test_text(name)) for bit, name in TEST_FUNCTIONS
                     if every or control >> bit & 1]
        if any(name == "relay" for name, _ in shown):
            self._event("relay_test", relay="closed" if m.relay_closed else "open")
        screens = [Screen(now, now + st.result_time, RESULTS["accept"][1])]
        for _name, text in shown:
            start = screens[-1].end
            screens.append(Screen(start, start + st.result_time, text))
        tests = [{"function": name, "display": text} for name, text in shown]
        return self._result("accept", screens=screens,
                            details={"control": control, "tests": tests}, **info)

    def _test_text(self, name: str) -> str:
        s = self.state
        m, e, st = s.memory, s.env, s.settings
        key = m.key
        power = e.load_watts if m.relay_closed and m.powered else 0.0
        texts: dict[str, Callable[[], str]] = {
            "relay": lambda: "rELAY " + ("On" if m.relay_closed else "OFF"),
            "lcd": lambda: "8" * 16,
            "total_energy": lambda: f"E {_show(m.consumed[st.service])} {UNITS[st.service]}",
            "krn": lambda: f"KRN {key.krn}",
            "ti": lambda: f"TI {key.ti:02d}" if key.ti is not None else "TI --",
            "power_limit": lambda: f"PL {m.mpl_watts} W" if m.mpl_watts is not None
            else "PL nonE",
            "tamper_status": lambda: "tAMPEr " + ("On" if m.tamper else "OFF"),
            "power": lambda: f"P {power:g} W",
            "version": lambda: f"VEr {st.software_version}",
            "key_type": lambda: f"Kt {key.kt}",
            "phase_unbalance_limit": lambda: f"PU {m.mppul_watts} W"
            if m.mppul_watts is not None else "PU nonE",
            "tariff_rate": lambda: f"rAtE {m.tariff_rate}" if m.tariff_rate is not None
            else "rAtE nonE",
            "sgc": lambda: f"SGC {key.sgc}",
            "ken": lambda: f"KEN {key.ken}",
            "water_meter_factor": lambda: f"F {m.water_meter_factor}"
            if m.water_meter_factor is not None else "F nonE",
            "result_register": lambda: f"rES {m.last_result}",
            "last_tid": lambda: f"tid {m.tids[-1]}" if m.tids else "tid nonE",
        }
        return texts[name]()

    # === 10. relay ==========================================================================

    def _voltage_ok(self) -> bool:
        volts = self.state.env.voltage
        if volts is None:
            return True
        lo, hi = self.state.settings.voltage_window
        return lo <= volts <= hi

    def _has_credit(self) -> bool:
        m, st = self.state.memory, self.state.settings
        if m.registers[st.service] > 0:
            return True
        return st.price_per_unit is not None and m.registers[f"currency_{st.service}"] > 0

    def _relay_reasons(self) -> list[str]:
        """Why the relay should be open (empty: it should be closed)."""
        m = self.state.memory
        reasons = []
        if m.tamper:
            reasons.append("tamper")
        if not self._has_credit():
            reasons.append("no_credit")
        if m.overload_open_until is not None:
            reasons.append("overload")
        return reasons

    def _update_relay(self) -> None:
        m = self.state.memory
        if not m.powered or not self._voltage_ok():
            return  # the relay does not operate without a supply within the window
        reasons = self._relay_reasons()
        closed = not reasons
        if closed != m.relay_closed:
            m.relay_closed = closed
            if closed:
                self._event("relay_closed")
            else:
                self._event("relay_open", reasons=reasons)

    # === 11. load limit ====================================================================

    def _overloaded(self) -> bool:
        m, e = self.state.memory, self.state.env
        return (m.powered and m.relay_closed and m.overload_open_until is None
                and m.mpl_watts is not None and e.load_watts > m.mpl_watts)

    def _trip(self) -> None:
        s = self.state
        m, v, st, now = s.memory, s.volatile, s.settings, s.env.now
        v.overload_since = None
        m.trips = [t for t in m.trips if now - t < st.overload_window] + [now]
        lockout = len(m.trips) >= st.overload_trip_limit
        wait = st.overload_lockout if lockout else st.overload_reconnect
        if lockout:
            m.trips = []  # after the lockout the procedure starts again
        m.overload_open_from, m.overload_open_until = now, now + wait
        self._event("overload_trip", lockout=lockout, seconds=wait)

    # === time: settle, deadlines, consumption ==============================================

    def _event(self, name: str, **data: Any) -> None:
        self.events.append(Event(self.state.env.now, name, data))

    def _settle(self) -> None:
        """Apply every rule that is due at the current time; idempotent."""
        s = self.state
        m, v, st, now = s.memory, s.volatile, s.settings, s.env.now
        # keypad entry abandoned after the timeout; key change set forgotten after the gap
        if v.entry_at is not None and now - v.entry_at >= st.entry_timeout:
            self.events.append(Event(v.entry_at + st.entry_timeout, "entry_timeout",
                                     {"digits": len(v.entry)}))
            v.entry, v.entry_at = "", None
        if v.kct_at is not None and now - v.kct_at > st.kct_timeout:
            self._forget_key_change(v.kct_at + st.kct_timeout)
        if not m.powered:
            v.overload_since = None
            return
        for name in (st.service, f"currency_{st.service}"):
            if ZERO < m.registers[name] < _EPS:
                m.registers[name] = ZERO
        if m.overload_open_until is not None and now >= m.overload_open_until:
            m.overload_open_from = m.overload_open_until = None
            self._event("overload_reconnect")
        self._update_relay()
        if self._overloaded():
            if v.overload_since is None:
                v.overload_since = now
                self._event("overload_alarm", load_watts=s.env.load_watts, limit=m.mpl_watts)
            elif now >= v.overload_since + st.overload_delay:
                self._trip()
                self._update_relay()
        elif v.overload_since is not None:
            v.overload_since = None
            self._event("overload_alarm_off")

    def _rates(self) -> dict[str, float]:
        """Consumption per second by service while the relay is closed."""
        e = self.state.env
        rates = {"electricity": e.load_watts / 3_600_000.0}
        for service, per_hour in e.flows.items():
            rates[service] = per_hour / 3600.0
        return rates

    def _next_deadline(self) -> float | None:
        s = self.state
        m, v, st, now = s.memory, s.volatile, s.settings, s.env.now
        if not m.powered:
            return None
        times = []
        if m.overload_open_until is not None:
            times.append(m.overload_open_until)
        if v.overload_since is not None:
            times.append(v.overload_since + st.overload_delay)
        if m.relay_closed:
            rate = self._rates().get(st.service, 0.0)
            if rate > 0:
                units = m.registers[st.service]
                if units > 0:
                    times.append(now + float(units) / rate)
                elif st.price_per_unit is not None:
                    money = m.registers[f"currency_{st.service}"]
                    if money > 0:
                        times.append(now + float(money) / (rate * float(st.price_per_unit)))
        later = [t for t in times if t > now]
        return min(later) if later else None

    def _consume(self, dt: float) -> None:
        s = self.state
        m, st = s.memory, s.settings
        if dt <= 0 or not m.powered or not m.relay_closed:
            return
        for service, rate in self._rates().items():
            if rate <= 0:
                continue
            used = Decimal(rate * dt)
            m.consumed[service] = (m.consumed[service] + used).quantize(_QUANT, ROUND_HALF_EVEN)
            left = m.registers[service]
            if left > 0:
                take = min(left, used)
                left = (left - take).quantize(_QUANT, ROUND_HALF_EVEN)
                m.registers[service] = ZERO if left < _EPS else left
                used -= take
            if used > 0 and st.price_per_unit is not None:
                money_name = f"currency_{service}"
                money = m.registers[money_name]
                if money > 0:
                    left = (money - used * st.price_per_unit).quantize(_QUANT, ROUND_HALF_EVEN)
                    m.registers[money_name] = ZERO if left < _EPS else left

    def _catch_up(self) -> None:
        """Walk from deadline to deadline up to the clock's time."""
        s = self.state
        target = self.clock.now()
        if target == s.env.now:
            return  # every input leaves the state settled: nothing can be due
        if target < s.env.now:
            raise MeterTimeError(
                f"the meter's time is {iso(s.env.now)}; it cannot go back to {iso(target)}",
                field="at",
            )
        self._settle()
        for _ in range(1_000_000):
            nxt = self._next_deadline()
            if nxt is None or nxt >= target:
                self._consume(target - s.env.now)
                s.env.now = target
                self._settle()
                return
            self._consume(nxt - s.env.now)
            s.env.now = nxt
            self._settle()
        raise AssertionError("catch-up did not converge")  # pragma: no cover

    # === 14. display texts =================================================================

    def _screen_text(self, screen: Screen, now: float) -> str:
        if not screen.toggle:
            return screen.text
        period = self.state.settings.toggle_period
        phase = int((now - screen.start) // period) % 2 if period > 0 else 0
        return screen.text if phase == 0 else str(math.ceil(screen.end - now))

    def _credit_text(self) -> str:
        m, st = self.state.memory, self.state.settings
        units = m.registers[st.service]
        money = m.registers[f"currency_{st.service}"]
        if units <= 0 and money > 0:
            return f"{_show(money)}"
        return f"{_show(units)} {UNITS[st.service]}"


def _show(value: Decimal) -> Decimal:
    return value.quantize(_SHOW, ROUND_DOWN)


def _apply_initial(memory: Memory, initial: Mapping[str, Any], depth: int) -> None:
    """Initial non-volatile contents from a config: TIDs, TID floor, credit, limits."""
    tids = initial.get("tids", [])
    if not isinstance(tids, list) or any(
        isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 1 << 24 for t in tids
    ):
        raise InputError("tids must be a list of 24-bit TIDs", field="config.tids")
    if len(tids) > depth:
        raise InputError(f"tids holds more than the TID memory depth {depth}",
                         field="config.tids")
    memory.tids = list(tids)
    floor = initial.get("tid_floor", 0)
    if isinstance(floor, bool) or not isinstance(floor, int) or not 0 <= floor < 1 << 24:
        raise InputError("tid_floor must be a 24-bit TID", field="config.tid_floor")
    memory.tid_floor = floor
    credit = initial.get("credit", {})
    if not isinstance(credit, Mapping):
        raise InputError("credit must map register names to amounts", field="config.credit")
    for name, value in credit.items():
        if name not in REGISTERS:
            raise InputError(f"unknown credit register {name!r}", field=f"config.credit.{name}")
        memory.registers[name] = decimal_of(value, f"config.credit.{name}")
    memory.tamper = bool(initial.get("tamper", False))
    mpl = initial.get("mpl_watts")
    if mpl is not None and (isinstance(mpl, bool) or not isinstance(mpl, int) or mpl < 0):
        raise InputError("mpl_watts must be a non-negative integer", field="config.mpl_watts")
    memory.mpl_watts = mpl
    base = initial.get("rollover_base_date")
    if base not in (None, 1993, 2014, 2035):
        raise InputError("rollover_base_date must be 1993, 2014 or 2035",
                         field="config.rollover_base_date")
    memory.next_base_date = base
