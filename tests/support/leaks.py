"""Scans for a raw vending key: the forms it could leak in (raw, hex either case, a prefix), the
answers of the calls that follow a sale, and every value in every table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import MetaData, select


def needles(raw: bytes) -> list[bytes]:
    hx = raw.hex()
    return [raw, hx.encode(), hx.upper().encode(), raw[:10], hx[:20].encode()]


def after_sale_texts(demo: Any, pan: str) -> list[str]:
    """The answers of the calls that follow a sale (lookup, reprint, verify, an engineering
    key change), for the caller's scan."""
    return [resp.text for resp in (
        demo.client.get(f"/v1/meters/{pan}?amount=10", headers=demo.h("vendor")),
        demo.client.post("/v1/reprints", json={"meter": pan}, headers=demo.h("vendor")),
        demo.client.post("/v1/tokens/verify", json={"meter": pan, "token": "0" * 20},
                         headers=demo.h("vendor")),
        demo.client.post(f"/v1/engineering/{uuid.uuid4()}", headers=demo.h("engineer"),
                         json={"meter": pan, "type": "key_change", "reason": "check",
                               "to_ti": 2}),
    )]


def database_text(db: Any, banned: list[bytes]) -> list[str]:
    """Every value in every table as text (bytes as hex) for the caller's scan; a binary
    value holding any of `banned` as raw bytes fails here."""
    seen: list[str] = []
    md = MetaData()
    md.reflect(db.engine)
    with db.read() as conn:
        for table in md.sorted_tables:
            for row in conn.execute(select(table)):
                for v in row:
                    seen.append(v.hex() if isinstance(v, bytes) else str(v))
                    if isinstance(v, bytes):
                        assert not any(n in v for n in banned)
    return seen
