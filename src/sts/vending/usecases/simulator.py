"""The meter on the screen: a real `sts.meter.Meter` per demo meter, kept in the database.

Each signed-in operator has their own copy of every meter (`sim_meter_states`, keyed by
operator and meter), so a class of trainees on the same meter never see each other's
keystrokes.  The meter's state is stored without its decoder key: on every request the key is derived
again from the vending key (through the security module) for the identity the meter holds
now, so a key change typed into the simulated meter carries over.  The meter runs on the
server's clock plus an offset the trainer can move forward ("fast-forward 1 hour"), which is
also how tests move it without waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sts.codec.pan import parse_pan
from sts.errors import InputError, UnknownMeter
from sts.meter import FakeClock, Meter, parse_config
from sts.meter.clock import to_seconds
from sts.meter.codes import meaning
from sts.meter.state import MeterState
from sts.vending.context import ServiceContext
from sts.vending.i18n import N_
from sts.vending.storage.tables import meters
from sts.vending.storage.tables_office import sim_meter_states
from sts.vending.usecases import key_release

KEYS = {str(d) for d in range(10)} | {"enter", "back"}
MAX_ADVANCE = 7 * 24 * 3600.0


class Simulator:
    """The meters on the screen of one signed-in operator (`owner`: the operator's id)."""

    def __init__(self, service: ServiceContext, owner: int) -> None:
        self.service = service
        self.owner = owner
        self.tables = service.sm.sta_tables

    # --- keys: derived from the vending key, never stored -------------------------------

    def _decoder_key(self, conn: Connection, pan: str, key: dict[str, Any]) -> bytes:
        return key_release.decoder_key(conn, self.service.sm, pan, key)

    def _new(self, conn: Connection, pan: str, now: float) -> MeterState:
        m = self.service.load_meter(conn, pan, lock=False)
        rec = m.key.record
        key = {"sgc": rec.sgc, "krn": rec.krn, "kt": m.kt, "ti": m.ti, "ken": m.ken,
               "mfr_code": m.mfr_code}
        dk = self._decoder_key(conn, m.pan, key)
        cfg = {"pan": m.pan, "ea": rec.ea, "decoder_key": dk.hex(), "kt": m.kt, "sgc": rec.sgc,
               "ti": m.ti, "krn": rec.krn, "ken": m.ken, "base_date": rec.base_date,
               "service": m.service, "mpl_watts": 5000}
        if rec.ea == 7:
            cfg["table_set"] = rec.table_set or "sample"
        config = parse_config(cfg)
        return Meter.create(config, FakeClock(now), tables_file=self.tables).state

    def _load(self, conn: Connection, pan: str, now_wall: float, *, owner: int,
              lock: bool) -> tuple[Meter, float]:
        c = sim_meter_states.c
        stmt = select(c.state).where(c.operator_id == owner, c.pan == pan)
        text = conn.scalar(self.service.db.locked(stmt) if lock else stmt)
        if text is None and lock:
            # first input to this meter: create its row (two first inputs at once: the
            # second waits for the first's row and then works on it), then lock it
            self._create(conn, pan, owner, self._new(conn, pan, now_wall))
            text = conn.scalar(self.service.db.locked(stmt))
        if text is None:
            state = self._new(conn, pan, now_wall)
            offset = 0.0
        else:
            body = json.loads(text)
            offset = float(body.pop("web_offset", 0.0))
            body["key"]["decoder_key"] = self._decoder_key(conn, pan, body["key"]).hex()
            state = MeterState.from_json(body, self.tables)
        clock = FakeClock(max(now_wall + offset, state.env.now))
        meter = Meter(state, clock)
        meter.tick()
        return meter, offset

    @staticmethod
    def _text(state: MeterState, offset: float) -> str:
        body = state.to_json()
        body["key"].pop("decoder_key", None)  # re-derived from the registry on every load
        body["web_offset"] = offset
        return json.dumps(body, separators=(",", ":"))

    def _create(self, conn: Connection, pan: str, owner: int, state: MeterState) -> None:
        t = sim_meter_states
        ins = sqlite.insert(t) if self.service.db.is_sqlite else postgresql.insert(t)
        at = self.service.now().replace(tzinfo=None, microsecond=0)
        conn.execute(ins.values(operator_id=owner, pan=pan, state=self._text(state, 0.0),
                                updated_at=at)
                     .on_conflict_do_nothing(index_elements=[t.c.operator_id, t.c.pan]))

    def _save(self, conn: Connection, pan: str, owner: int, meter: Meter, offset: float,
              at: datetime) -> None:
        c = sim_meter_states.c
        conn.execute(update(sim_meter_states).where(c.operator_id == owner, c.pan == pan)
                     .values(state=self._text(meter.state, offset), updated_at=at))

    def _pan(self, conn: Connection, meter: str) -> str:
        pan = parse_pan(meter, field="meter").pan
        if conn.scalar(select(meters.c.id).where(meters.c.pan == pan)) is None:
            raise UnknownMeter(N_("meter {pan} is not registered"), pan=pan, field="meter")
        return pan

    @contextmanager
    def _live(self, meter: str) -> Iterator[Live]:
        """The operator's meter, locked for one input; saved when the block ends without an
        error."""
        now = self.service.now().replace(tzinfo=None)
        with self.service.db.begin() as conn:
            pan = self._pan(conn, meter)
            m, offset = self._load(conn, pan, to_seconds(now), owner=self.owner, lock=True)
            live = Live(m, offset)
            yield live
            self._save(conn, pan, self.owner, live.meter, live.offset, now.replace(microsecond=0))

    # --- what the page calls -----------------------------------------------------------

    def view(self, meter: str) -> dict[str, Any]:
        """The operator's meter now (read-only: nothing is stored by looking)."""
        now = self.service.now().replace(tzinfo=None)
        with self.service.db.read() as conn:
            pan = self._pan(conn, meter)
            m, offset = self._load(conn, pan, to_seconds(now), owner=self.owner, lock=False)
        return Live(m, offset).out()

    def press(self, meter: str, key: str) -> dict[str, Any]:
        if key not in KEYS:
            raise InputError("key must be 0-9, enter or back", field="key")
        with self._live(meter) as live:
            result = live.meter.press(key)
            out = live.out()
        out["result"] = result.as_dict() if result is not None else None
        return out

    def enter(self, meter: str, token: str) -> dict[str, Any]:
        with self._live(meter) as live:
            result = live.meter.enter(token)
            out = live.out()
        out["result"] = result.as_dict()
        return out

    def set_load(self, meter: str, watts: float) -> dict[str, Any]:
        if not 0 <= watts <= 20000:
            raise InputError("load must be 0-20000 W", field="watts")
        with self._live(meter) as live:
            live.meter.set_load(watts)
            return live.out()

    def advance(self, meter: str, seconds: float) -> dict[str, Any]:
        """Move this meter's time forward (trainer's fast-forward)."""
        if not 0 < seconds <= MAX_ADVANCE:
            raise InputError("advance by 1 second to 7 days", field="seconds")
        with self._live(meter) as live:
            live.offset += seconds
            live.meter.clock = FakeClock(live.meter.state.env.now + seconds)
            live.meter.tick()
            return live.out()

    def reset(self, meter: str) -> None:
        """Forget the operator's simulated meter; the next view starts a new one."""
        c = sim_meter_states.c
        with self.service.db.begin() as conn:
            pan = self._pan(conn, meter)
            conn.execute(sim_meter_states.delete().where(c.operator_id == self.owner,
                                                         c.pan == pan))


@dataclass
class Live:
    meter: Meter
    offset: float

    def out(self) -> dict[str, Any]:
        m, offset = self.meter, self.offset
        snap = m.snapshot()
        display = snap["display"] | {"meaning": meaning(snap["display"]["text"])
                                     if snap["display"].get("powered", True) else
                                     meaning("")}
        return {"display": display, "relay": snap["relay"],
                "registers": snap["registers"], "consumed": snap["consumed"],
                "load_watts": snap["load_watts"], "keypad": snap["keypad"],
                "identity": snap["identity"], "tid_memory": snap["tid_memory"],
                "last_result": snap["last_result"], "offset": offset,
                "events": [e.as_dict() for e in m.take_events()]}
