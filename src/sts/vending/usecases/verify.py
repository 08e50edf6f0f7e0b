"""Token verification: decode a token with the meter's key (or the key it was issued under)
and say whether, when and on which receipt this server issued it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sts.errors import InputError, SecurityModuleUnavailable, StsError
from sts.vending.access.policy import Caller
from sts.vending.clock import zone
from sts.vending.keys.security_module import MeterIdentity
from sts.vending.meters import read_meter
from sts.vending.storage.tables import tokens, transactions

if TYPE_CHECKING:
    from sts.vending.context import ServiceContext


def token_digits(token: object) -> str:
    if not isinstance(token, str):
        raise InputError("token must be a string of 20 digits (spaces or dashes allowed)",
                         field="token")
    digits = token.replace(" ", "").replace("-", "")
    if len(digits) != 20 or not digits.isascii() or not digits.isdigit():
        raise InputError("token must be 20 digits (spaces or dashes allowed)", field="token")
    return digits


def verify_token(svc: ServiceContext, meter: object, token: object,
                 caller: Caller) -> dict[str, Any]:
    caller.require("verify")
    digits = token_digits(token)
    hot = svc.hot
    with svc.db.read() as conn:
        cur = hot.cursor(conn)
        try:
            m = read_meter(hot, cur, meter, lock=False)
            tk = tokens.c
            row = conn.execute(
                select(tk.key_id, tk.kt, tk.ti, tk.ken, tk.status, tk.kind, tk.position,
                       tk.created_at, transactions.c.request_id, transactions.c.seq,
                       transactions.c.kind.label("txn_kind"))
                .join(transactions, transactions.c.seq == tk.txn_seq)
                .where(tk.meter_id == m.id, tk.token == digits)
            ).first()
            if row is not None:
                key = svc.key_loader(cur)(row.key_id)
                ident = MeterIdentity(m.pan, row.kt, row.ti, row.ken, m.mfr_code)
            else:
                key, ident = m.key, m.identity()
        finally:
            cur.close()
    out: dict[str, Any] = {"meter": m.pan, "token": digits, "issued": row is not None}
    try:
        decoded = svc.sm.decode(key.record, ident, digits).as_dict()
        decoded.pop("key_part", None)  # KCTs carry decoder key bits: never shown
        decoded.pop("block", None)
        out["decoded"] = decoded
    except SecurityModuleUnavailable:
        raise  # not the token's fault: the whole request answers 503
    except StsError as exc:
        out["decoded"] = None
        out["error"] = {"code": "TOKEN_REJECTED", "reason": exc.code, "message": exc.message}
    if row is not None:
        out["issue"] = {"request_id": row.request_id, "receipt_no": f"{row.seq:010d}",
                        "transaction": row.txn_kind, "kind": row.kind,
                        "position": row.position, "status": row.status,
                        "issued_at": row.created_at.replace(tzinfo=zone(m.time_zone))
                        .isoformat(),
                        "key": {"sgc": key.record.sgc, "krn": key.record.krn, "ti": row.ti}}
    return out
