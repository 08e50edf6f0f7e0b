"""Receipts: the structured receipt of a sale and its printable slip (40 columns)."""

from __future__ import annotations

from typing import Any

WIDTH = 40


def group_token(token: str) -> str:
    return " ".join(token[i : i + 4] for i in range(0, len(token), 4))


def _line(left: str, right: str = "") -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}" if right else left[:WIDTH]


def slip(receipt: dict[str, Any], tokens: list[dict[str, Any]], *, title: str) -> str:
    """A ready-to-print slip; the POS prints it as given."""
    u = receipt.get("utility") or {}
    v = receipt.get("vendor") or {}
    m = receipt.get("meter") or {}
    c = receipt.get("customer") or {}
    out = [title.center(WIDTH), _line(u.get("name", ""), f"VAT {u.get('vat_reg_num', '')}")]
    if u.get("address"):
        out.append(u["address"][:WIDTH])
    out += [
        _line(f"Vendor: {v.get('name', '')}"),
        _line(f"Receipt {receipt.get('receipt_no', '')}", receipt.get("date", "")[:16]),
        _line(f"Meter {group_token(m.get('pan', ''))}"),
        _line(f"SGC {m.get('sgc', '')} KRN {m.get('krn', '')} TI {m.get('ti', '')}"),
    ]
    if c:
        out.append(_line(f"Customer {c.get('name', '')}", c.get("account_no", "")))
    if receipt.get("tariff"):
        out.append(_line(f"Tariff {receipt['tariff'].get('name', '')}"))
    out.append("-" * WIDTH)
    unit = receipt.get("unit", "")
    if "energy_amount" in receipt:
        out.append(_line(f"Energy {receipt.get('units', '')} {unit}",
                         receipt.get("energy_net", "")))
        vat = receipt.get("vat") or {}
        out.append(_line(f"VAT {vat.get('rate', '')}", vat.get("amount", "")))
    for ch in receipt.get("charges") or []:
        out.append(_line(ch["description"], ch["amount"]))
    for d in receipt.get("debt") or []:
        out.append(_line(d["description"], d["amount"]))
        out.append(_line("  debt balance", d["balance"]))
    if "amount" in receipt:
        out.append(_line("TOTAL", receipt["amount"]))
    out.append("-" * WIDTH)
    for t in tokens:
        label = t.get("label") or t["description"]
        units = f" {t['units']} {unit}" if t.get("units") else ""
        out.append(_line(f"{label}{units}"))
        out.append("  " + group_token(t["token"]) if t.get("token") else "  (no token)")
    if len(tokens) > 1:
        out.append("Enter the tokens in the order shown.")
    return "\n".join(out) + "\n"
