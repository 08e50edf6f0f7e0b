"""Service answers -> interface bodies (the business part; the envelope is `envelope.py`).

Pure functions of the stored answer of a sale, so a retry, a reprint or a notification of the
same sale produce the same tokens, receipt numbers and charges every time.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sts.electrum.models import Customer, Meter, SlipData, Utility
from sts.vending.currency import Currency

SERVICE_TYPES = {"electricity": "ELEC", "water": "WATER", "gas": "GAS", "time": "TIME"}
UTILITY_TYPES = {"electricity": "ELECTRICITY", "water": "WATER", "gas": "GAS", "time": "TIME"}
TOKEN_TYPES = {"STD": "STD", "FBE": "BSST", "KCT": "KC"}
TOKEN_TECH_NUMERIC = "02"  # keypad (numeric) tokens: every token this server issues


def minor(cur: Currency, value: str | int | Decimal | None) -> int:
    if value is None:
        return 0
    return int((Decimal(value).scaleb(cur.exponent)).to_integral_value(rounding=ROUND_HALF_UP))


def ledger(cur: Currency, value: str | int | Decimal | None) -> dict[str, Any]:
    return {"amount": minor(cur, value), "currency": cur.numeric}


def _clip(text: str | None, n: int) -> str | None:
    return text[:n] if text else None


def meter(meter_id: str, current: dict[str, Any], new: dict[str, Any] | None = None) -> Meter:
    """The request's meterId exactly as sent, with our registry's details; `new` fills
    keyChangeData when key change tokens come with the answer."""
    body: dict[str, Any] = {
        "meterId": meter_id,
        "serviceType": SERVICE_TYPES.get(str(current.get("service"))),
        "supplyGroupCode": current["sgc"],
        "keyRevisionNum": str(current["krn"]),
        "tariffIndex": f"{int(current['ti']):02d}",
        "tokenTechCode": TOKEN_TECH_NUMERIC,
        "algorithmCode": f"{int(current['ea']):02d}" if "ea" in current else None,
    }
    if new is not None:
        body["keyChangeData"] = {"newSupplyGroupCode": new["sgc"],
                                 "newKeyRevisionNumber": str(new["krn"]),
                                 "newTariffIndex": f"{int(new['ti']):02d}"}
    return Meter.model_validate(body)


def customer(c: dict[str, Any] | None) -> Customer:
    if not c:
        return Customer.model_validate({})
    name = str(c.get("name") or "").split()
    first, last = (" ".join(name[:-1]), name[-1]) if len(name) > 1 else ("", " ".join(name))
    return Customer.model_validate({"firstName": _clip(first, 40), "lastName": _clip(last, 40),
                                    "address": _clip(c.get("address"), 80)})


def utility(u: dict[str, Any] | None, message: str | None = None) -> Utility:
    u = u or {}
    return Utility.model_validate({"name": _clip(u.get("name"), 40),
                                   "address": _clip(u.get("address"), 80),
                                   "vatRegNum": _clip(u.get("vat_reg_num"), 10),
                                   "message": _clip(message, 80)})


def slip(text: str, reference: str | None) -> SlipData:
    lines = [{"text": line} for line in text.rstrip("\n").split("\n")] if text else []
    return SlipData.model_validate({"messageLines": lines or None, "slipWidth": 40,
                                    "issuerReference": reference or None})


def _meter_of_receipt(meter_id: str, receipt: dict[str, Any]) -> Meter:
    kc = receipt.get("key_change")
    if kc:
        current = dict(receipt["meter"]) | kc["from"]
        return meter(meter_id, current, kc["to"])
    return meter(meter_id, receipt["meter"])


def purchase_body(sale: dict[str, Any], meter_id: str, cur: Currency, *,
                  utility_type: str | None = None, trial: bool = False) -> dict[str, Any]:
    """The PurchaseResponse fields (all but the envelope) of a sale, trial or reprint."""
    r = sale["receipt"]
    rate = Decimal(r["vat"]["rate"]) if r.get("vat") else Decimal(0)
    energy_net = Decimal(r.get("energy_net") or 0)
    energy_vat = Decimal(r.get("energy_amount") or 0) - energy_net
    receipt_no = r.get("receipt_no") or None
    tax_rate = (rate * 100).normalize()
    toks: list[dict[str, Any]] = []
    for t in sale["tokens"]:
        kind = TOKEN_TYPES.get(t["kind"], "STD")
        units = Decimal(t.get("units") or 0)
        item: dict[str, Any] = {"tokenType": kind, "units": units,
                                "token": t.get("token") or "0" * 20,
                                "receiptNum": receipt_no}
        if kind == "STD":
            item["amount"] = ledger(cur, energy_net) | {
                "tax": minor(cur, energy_vat), "taxType": "VAT", "taxRate": tax_rate}
            item["tariffCalc"] = [{"units": Decimal(s["units"]),
                                   "rate": (Decimal(s["price"]) * (10 ** cur.exponent)
                                            ).normalize()} for s in r.get("steps", [])]
        else:
            item["amount"] = ledger(cur, 0)
        toks.append(item)
    fixed_vat = Decimal(r["vat"]["amount"]) - energy_vat if r.get("vat") else Decimal(0)
    service_charges = []
    for ch in r.get("charges") or []:
        gross = Decimal(ch["amount"])
        service_charges.append({
            "amount": ledger(cur, gross - fixed_vat) | {"tax": minor(cur, fixed_vat),
                                                        "taxType": "VAT", "taxRate": tax_rate},
            "description": ch["description"][:40]})
    debts = [{"amount": ledger(cur, d["amount"]), "description": d["description"][:40],
              "balance": ledger(cur, d["balance"]), "receiptNum": receipt_no}
             for d in r.get("debt") or []]
    body: dict[str, Any] = {
        "meter": _meter_of_receipt(meter_id, r).dump(),
        "customer": customer(r.get("customer")).dump(),
        "utility": utility(r.get("utility"),
                           "Trial: these tokens are not valid" if trial else None).dump(),
        "utilityType": utility_type or UTILITY_TYPES.get(str(r["meter"].get("service"))),
        "tokens": toks,
        "debtRecoveryCharges": debts or None,
        "serviceCharges": service_charges or None,
        "purchaseTotal": ledger(cur, energy_net),
        "taxTotal": ledger(cur, r["vat"]["amount"] if r.get("vat") else 0),
        "amounts": {"approvedAmount": ledger(cur, r.get("amount") or 0)},
        "vatInvoiceNumber": receipt_no,
        "slipData": slip(sale.get("slip") or "", receipt_no).dump(),
    }
    return body


def lookup_body(look: dict[str, Any], meter_id: str, cur: Currency) -> dict[str, Any]:
    new = look.get("new_key")
    m = meter(meter_id, look["meter"], new)
    body: dict[str, Any] = {
        "meter": m.dump(),
        "customer": customer(look.get("customer")).dump(),
        "utility": utility(look.get("utility")).dump(),
        "minAmount": ledger(cur, look.get("min_amount")),
        "arrearsAmount": ledger(cur, look.get("arrears")),
        "bsstDue": Decimal(look.get("free_units_due") or 0) > 0,
    }
    if look.get("max_amount") is not None:
        body["maxAmount"] = ledger(cur, look["max_amount"])
    return body


def key_change_body(out: dict[str, Any], meter_id: str, cur: Currency) -> dict[str, Any]:
    """KeyChangeTokenResponse fields from a key change transaction (or a sale's KCT set)."""
    kc = out.get("key_change") or (out.get("receipt") or {}).get("key_change") or {}
    current = dict(out.get("meter") or (out.get("receipt") or {}).get("meter") or {})
    if "from" in kc:
        current |= kc["from"]
    m = meter(meter_id, current, kc.get("to"))
    toks = [{"tokenType": "KC", "units": 0, "amount": ledger(cur, 0), "token": t["token"],
             "receiptNum": out.get("receipt_no") or (out.get("receipt") or {}).get("receipt_no")}
            for t in out["tokens"] if t.get("kind") == "KCT"]
    lines = [f"KEY CHANGE TOKEN {i}: {t['token']}" for i, t in enumerate(toks, 1)]
    lines.append("Enter the tokens in the order shown.")
    return {"meter": m.dump(), "tokens": toks,
            "slipData": slip("\n".join(lines), toks[0]["receiptNum"] if toks else None).dump()}
