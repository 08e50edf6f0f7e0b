"""The counter's amount presets: the amounts a utility's customers buy most, shown as buttons at
the point of sale.  One list per utility (`counter_settings`), set by an administrator; a
utility without its own list gets `DEFAULT`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from sts.errors import InputError, StsError, UnknownRecord
from sts.vending import audit
from sts.vending.access.policy import Caller
from sts.vending.storage.database import Database
from sts.vending.storage.tables import meters, supply_groups, utilities
from sts.vending.storage.tables_counter import counter_settings
from sts.vending.tariff import money, parse_amount

DEFAULT = ("20.00", "50.00", "100.00", "200.00")
MOST = 8
SEPARATORS = re.compile(r"[\s;]+")


def parse(text: object) -> tuple[str, ...]:
    """The presets as typed ("20 50 100 200" or "20; 50; 100"): 1-8 amounts, each a sale amount
    (greater than zero, cents), kept in ascending order without repeats."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("give one to eight amounts separated by spaces, e.g. 20 50 100 200",
                         field="presets")
    amounts = set()
    for word in SEPARATORS.split(text.strip()):
        try:
            amounts.add(parse_amount(word, field_name="presets"))
        except StsError:
            raise InputError(f"{word!r} is not an amount: give amounts separated by spaces, "
                             "e.g. 20 50 100 200", field="presets") from None
    if len(amounts) > MOST:
        raise InputError(f"at most {MOST} presets", field="presets")
    return tuple(money(a) for a in sorted(amounts))


def for_meter(db: Database, pan: str) -> tuple[str, ...]:
    """The presets of the utility that supplies meter `pan`."""
    with db.read() as conn:
        text = conn.execute(
            select(counter_settings.c.amount_presets)
            .join(supply_groups, supply_groups.c.utility_id == counter_settings.c.utility_id)
            .join(meters, meters.c.sgc_id == supply_groups.c.id)
            .where(meters.c.pan == pan)).scalar()
    return tuple(text.split()) if text else DEFAULT


def every_utility(db: Database) -> list[dict[str, Any]]:
    """Each utility with its presets (the administrator's page)."""
    with db.read() as conn:
        rows = conn.execute(select(utilities.c.id, utilities.c.name,
                                   counter_settings.c.amount_presets)
                            .outerjoin(counter_settings,
                                       counter_settings.c.utility_id == utilities.c.id)
                            .order_by(utilities.c.name)).all()
    return [{"utility": r.name, "presets": r.amount_presets.split() if r.amount_presets
             else list(DEFAULT), "own": r.amount_presets is not None} for r in rows]


def set_presets(db: Database, caller: Caller, utility: object, text: object, *,
                actor: str, now: datetime) -> tuple[str, ...]:
    """Set a utility's presets (an administrator), audited under `actor`."""
    caller.require("counter_settings")
    presets = parse(text)
    at = now.replace(tzinfo=None, microsecond=0)
    with db.begin() as conn:
        uid = conn.execute(select(utilities.c.id).where(utilities.c.name == utility)).scalar()
        if uid is None:
            raise UnknownRecord(f"no utility {utility!r}", field="utility")
        values = {"amount_presets": " ".join(presets), "updated_at": at, "updated_by": actor}
        if conn.execute(update(counter_settings).where(counter_settings.c.utility_id == uid)
                        .values(**values)).rowcount == 0:
            conn.execute(insert(counter_settings).values(utility_id=uid, **values))
        audit.append(db, conn, at=at, actor=actor, action="counter.presets",
                     subject=f"utility:{uid}", details={"presets": list(presets)})
    return presets
