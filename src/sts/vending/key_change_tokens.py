"""Key change tokens on request (a POS asking for a meter's KCTs without a purchase).

When the meter's key or tariff index differs from what its supply group and tariff now
require, the KCT set is issued (and stored as a key change transaction, idempotent on its
request id).  When nothing is due but the meter's last transaction carried a KCT set that no
later token has followed, that same set is returned again (the customer may not have entered
it yet): regenerating it would give the same meter two sets.  Otherwise there is nothing to
give: `NoKeyChangeDue`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sts.errors import MeterBlocked, NoKeyChangeDue
from sts.vending.models import transactions
from sts.vending.service import check_request_id

if TYPE_CHECKING:
    from sts.vending.auth import Caller
    from sts.vending.service import VendingService


def request(service: VendingService, request_id: str, pan: str,
            caller: Caller) -> tuple[dict[str, Any], bool]:
    """(answer with `tokens` holding only KCTs, created)."""
    caller.require("purchase")
    check_request_id(request_id, "requestId")
    t = transactions.c
    with service.db.begin() as conn:
        m = service.load_meter(conn, pan, lock=True)
        stored = service._stored(conn, request_id)
        if stored is not None and stored.kind == "key_change":
            return json.loads(stored.response), False
        if m.status != "active":
            raise MeterBlocked(f"meter {m.pan} is blocked: {m.status_reason}", field="meter")
        service._vendor(conn, caller, m.sgc_id)  # the vendor must sell for this supply group
        kc = service.key_change_due(conn, m)
        if kc is not None:
            out = service.key_change_meter(conn, m, kc, request_id=request_id,
                                           actor=caller.actor,
                                           reason="key change tokens requested")
            return json.loads(json.dumps(out, default=str)), True
        last = conn.execute(select(t.response, t.hash, t.request_id, t.status)
                            .where(t.meter_id == m.id).order_by(t.seq.desc()).limit(1)).first()
        if last is not None and last.hash == m.last_hash and last.status == "completed":
            prior: dict[str, Any] = json.loads(last.response)
            kcts = [tk for tk in prior.get("tokens", []) if tk.get("kind") == "KCT"]
            if kcts:
                prior["tokens"] = kcts
                prior["repeat_of"] = last.request_id
                return prior, False
    raise NoKeyChangeDue(f"meter {pan} already holds its supply group's current key",
                         field="meter")
